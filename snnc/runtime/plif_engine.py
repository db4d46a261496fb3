"""PLIF engines: which one runs (`select_engine`), the PyTorch one, and what they share.

An engine computes one PLIF layer on x2d [T, N] for k = sigmoid(w) given as [channels]
in the compute dtype, neuron n using k[(n // inner) % channels] (channels = inner = 1 for one
decay per layer):

- `forward(x2d, k, channels, inner, cfg, store_h) -> (spikes [T, N], h [T, N] or None)`
- `backward(grad_s, h, x2d, k, channels, inner, cfg, sg_params, mask, out) -> (dL/dx [T, N], dL/dk [N])`:
  the reverse recurrence of snnc/runtime/plif.py; x2d is read only with decay_input; `out` may
  be h itself; dL/dk is per neuron, summed over t, in the compute dtype. `mask` is the MSG key
  (key, iteration) of snnc.ops.mask.

Engines: the generated C kernel (`snnc.backends.cpu.plif`), the Triton kernels
(`snnc.backends.triton.plif_launch`) and this module's loops with torch ops (`forward`,
`backward`), which also serve float16/bfloat16 on the CPU and machines without a C compiler.
Arithmetic is in the compute dtype (float32, float64 for float64); h is rounded to the storage
dtype before firing, so spikes recomputed from the saved h are the forward's, as for LIF.
"""

from __future__ import annotations

import sys

import torch

from snnc.diagnostics import SnncError
from snnc.ops import torch_engine
from snnc.ops.config import LifConfig, compute_dtype
from snnc.ops.function import engine_for
from snnc.ops.mask import keep_mask_torch
from snnc.ops.surrogate import surrogate_grad


def select_engine(x: torch.Tensor, backend: str, cfg: LifConfig):
    """The PLIF engine for `backend` ("auto", "cpu", "triton", "torch") and x, chosen as LIF's is:
    auto is the C kernel on the CPU and Triton on CUDA; the C kernel falls back to this module for
    float16/bfloat16 or without a compiler."""
    lif_engine = engine_for(x, backend)  # resolves "auto" and raises LIF's errors for impossible choices
    if lif_engine is torch_engine:
        return sys.modules[__name__]
    if lif_engine.__name__.endswith("cpu.launch"):
        from snnc.backends.cpu import plif as cpu_plif

        return cpu_plif if cpu_plif.library(cfg, x.dtype, x.device) is not None else sys.modules[__name__]
    from snnc.backends.triton import plif_launch

    return plif_launch


def layout(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(k [channels] in x's compute dtype, channels, inner) for x [T, B, C, ...] and w (a scalar or [C])."""
    k = torch.sigmoid(w.detach()).to(device=x.device, dtype=compute_dtype(x.dtype))
    if w.dim() == 0:
        return k.reshape(1), 1, 1
    if x.dim() < 3 or x.shape[2] != w.shape[0]:
        raise SnncError(f"a per-channel PLIF of {w.shape[0]} channels needs x [T, B, {w.shape[0]}, ...], "
                        f"got shape {tuple(x.shape)}")
    return k, w.shape[0], x[0, 0, 0].numel()


def reduce_gk(gk: torch.Tensor, w: torch.Tensor, channels: int, inner: int) -> torch.Tensor:
    """dL/dk per neuron [N] -> w's shape: the total, or per channel. torch's reductions are
    deterministic (no atomics), so the result is the same run to run."""
    if w.dim() == 0:
        return gk.sum()
    return gk.view(-1, channels, inner).sum((0, 2))


def _per_neuron(k: torch.Tensor, channels: int, inner: int, N: int) -> torch.Tensor:
    if channels == 1:
        return k.reshape(1)
    return k[torch.arange(N, device=k.device).floor_divide_(inner).remainder_(channels)]


def forward(x2d: torch.Tensor, k: torch.Tensor, channels: int, inner: int, cfg: LifConfig, store_h: bool = True):
    """Spikes and (if store_h) h, both [T, N] in x's dtype."""
    T, N = x2d.shape
    cdt = compute_dtype(x2d.dtype)
    kn = _per_neuron(k.to(device=x2d.device, dtype=cdt), channels, inner, N)
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    hs = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    v = torch.zeros(N, dtype=cdt, device=x2d.device)
    for t in range(T):
        x = x2d[t].to(cdt)
        h = v + (x - v) * kn if cfg.decay_input else v - v * kn + x
        if x2d.dtype != cdt:
            h = h.to(x2d.dtype).to(cdt)  # rounded to the storage dtype before firing
        s = h >= cfg.vth
        spikes[t] = s
        if store_h:
            hs[t] = h
        v = torch.where(s, 0.0, h) if cfg.reset == "hard" else torch.where(s, h - cfg.vth, h)
    return spikes, hs


def backward(grad_s: torch.Tensor, h: torch.Tensor, x2d: torch.Tensor | None, k: torch.Tensor, channels: int,
             inner: int, cfg: LifConfig, sg_params: torch.Tensor, mask: tuple, out: torch.Tensor | None = None):
    """(dL/dx [T, N] in h's dtype, dL/dk [N] in the compute dtype); `out` may be h itself."""
    T, N = h.shape
    cdt = compute_dtype(h.dtype)
    kn = _per_neuron(k.to(device=h.device, dtype=cdt), channels, inner, N)
    params = [float(p) for p in sg_params.tolist()]
    keep = keep_mask_torch(mask[0], int(mask[1]), T, N, cfg.mask_p, h.device) if cfg.masked else None
    gx = torch.empty((T, N), dtype=h.dtype, device=h.device) if out is None else out
    gv = torch.zeros(N, dtype=cdt, device=h.device)
    gk = torch.zeros(N, dtype=cdt, device=h.device)
    for t in reversed(range(T)):
        ht = h[t].to(cdt)
        h_prev = h[t - 1].to(cdt) if t > 0 else torch.zeros_like(ht)
        gs = grad_s[t].to(cdt)
        sg = surrogate_grad(cfg.surrogate.name, ht - cfg.vth, params)
        if keep is not None:  # docs/methods.md §3
            sg = torch.where(keep[t], sg * cfg.keep_scale if cfg.rescale else sg, 0.0)
        s = ht >= cfg.vth
        if cfg.reset == "hard":
            gh = (sg * gs if cfg.detach_reset else sg * (gs - gv * ht)) + torch.where(s, 0.0, gv)
            v_prev = torch.where(h_prev >= cfg.vth, 0.0, h_prev)
        else:
            gh = (sg * gs if cfg.detach_reset else sg * (gs - cfg.vth * gv)) + gv
            v_prev = torch.where(h_prev >= cfg.vth, h_prev - cfg.vth, h_prev)
        if cfg.decay_input:
            gk = gk + gh * (x2d[t].to(cdt) - v_prev)
            gx_t = gh * kn
        else:
            gk = gk - gh * v_prev
            gx_t = gh
        gv = gh * (1.0 - kn)
        gx[t] = gx_t  # h[t] and h[t-1] were read above
    return gx, gk
