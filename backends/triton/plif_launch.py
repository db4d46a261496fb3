"""Launches the generated PLIF Triton kernels: the engine behind `snnc.runtime.plif` on CUDA (and "triton").

The contract of every PLIF engine (see snnc/runtime/plif.py):
- `forward(x2d, k, channels, inner, cfg, store_h) -> (spikes [T, N], h [T, N] or None)`;
- `backward(grad_s, h, x2d, k, channels, inner, cfg, sg_params, mask, out) -> (dL/dx [T, N], dL/dk [N])`,
  dL/dk per neuron summed over t in the compute dtype (the caller reduces it per channel).
k is [channels] in the compute dtype; neuron n uses k[(n // inner) % channels]. x2d (read in
backward only with decay_input) may have any stride between steps, unit stride inside a row.
Scalars, masks (the LIF kernels' Philox draws, which `launch.keep_mask` returns), the block size
and the 2^31 limit are the LIF launcher's.
"""

from __future__ import annotations

import dataclasses

import torch

from snnc.backends.triton import launch
from snnc.backends.triton.loader import load_kernel
from snnc.ops.config import LifConfig, compute_dtype


def spec_for(cfg: LifConfig, dtype: torch.dtype, T: int):
    return dataclasses.replace(launch.spec_for(cfg, dtype, T, False), learn_decay=True)


def forward(x2d: torch.Tensor, k: torch.Tensor, channels: int, inner: int, cfg: LifConfig, store_h: bool = True):
    """Spikes and (if store_h) h, both [T, N] in x's dtype."""
    T, N = x2d.shape
    launch._check_size(T, N)
    spec = spec_for(cfg, x2d.dtype, T)
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    h = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    k = k.to(device=x2d.device, dtype=compute_dtype(x2d.dtype)).contiguous()
    launch._launch(load_kernel(spec, "fwd"), N, x2d, spikes, h if store_h else spikes, k, channels, inner,
                   launch.scalars(cfg, x2d.dtype, x2d.device), N, x2d.stride(0), STORE_H=store_h, T=T)
    return spikes, h


def backward(grad_s: torch.Tensor, h: torch.Tensor, x2d: torch.Tensor | None, k: torch.Tensor, channels: int,
             inner: int, cfg: LifConfig, sg_params: torch.Tensor, mask: tuple, out: torch.Tensor | None = None):
    """(dL/dx [T, N] in h's dtype, dL/dk [N] in the compute dtype); `out` may be h itself."""
    T, N = h.shape
    launch._check_size(T, N)
    spec = spec_for(cfg, h.dtype, T)
    cdt = compute_dtype(h.dtype)
    grad_s = grad_s.contiguous()
    gx = torch.empty((T, N), dtype=h.dtype, device=h.device) if out is None else out
    gk = torch.empty((N,), dtype=cdt, device=h.device)
    x_args = (x2d[T - 1],) if cfg.decay_input else ()  # the last row: the kernel walks back from it
    stride = (x2d.stride(0),) if cfg.decay_input else ()
    mask_args = ()
    if spec.masked:
        key, iteration = mask
        mask_args = (launch._iteration_tensor(iteration, h.device), key)
    sg = sg_params.to(device=h.device).contiguous()  # any float dtype; the kernel converts
    k = k.to(device=h.device, dtype=cdt).contiguous()
    launch._launch(load_kernel(spec, "bwd"), N, grad_s, h, *x_args, gx, gk, sg, k, channels, inner,
                   launch.scalars(cfg, h.dtype, h.device), *mask_args, N, *stride, T=T)
    return gx, gk
