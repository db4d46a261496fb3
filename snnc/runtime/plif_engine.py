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
from snnc.ops.surrogate import surrogate_grad_


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
    """Spikes and (if store_h) h, both [T, N] in x's dtype. Each step is a few in-place torch ops
    into preallocated rows; every operation rounds as the kernels' (unfused) lines do."""
    T, N = x2d.shape
    cdt = compute_dtype(x2d.dtype)
    kn = _per_neuron(k.to(device=x2d.device, dtype=cdt), channels, inner, N)
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    hs = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    v, h_buf, s_buf = torch.zeros((3, N), dtype=cdt, device=x2d.device)
    for t in range(T):
        x = x2d[t].to(cdt)
        h = hs[t] if store_h and x2d.dtype == cdt else h_buf
        if cfg.decay_input:  # h = v + (x - v) * k
            torch.sub(x, v, out=h).mul_(kn).add_(v)
        else:  # h = v - v * k + x
            torch.sub(v, torch.mul(v, kn, out=h), out=h).add_(x)
        if x2d.dtype != cdt:
            h.copy_(h.to(x2d.dtype))  # rounded to the storage dtype before firing
            if store_h:
                hs[t].copy_(h)
        s = torch.ge(h, cfg.vth, out=s_buf)  # 0/1 in the compute dtype
        spikes[t].copy_(s)
        if cfg.reset == "hard":  # v = h * (1 - s): h - h * s is h or exactly 0
            torch.addcmul(h, h, s, value=-1.0, out=v)
        else:  # v = h - vth * s
            torch.add(h, s, alpha=-cfg.vth, out=v)
    return spikes, hs


def backward(grad_s: torch.Tensor, h: torch.Tensor, x2d: torch.Tensor | None, k: torch.Tensor, channels: int,
             inner: int, cfg: LifConfig, sg_params: torch.Tensor, mask: tuple, out: torch.Tensor | None = None):
    """(dL/dx [T, N] in h's dtype, dL/dk [N] in the compute dtype); `out` may be h itself."""
    T, N = h.shape
    cdt = compute_dtype(h.dtype)
    kn = _per_neuron(k.to(device=h.device, dtype=cdt), channels, inner, N)
    decay = torch.sub(1.0, kn)
    params = [float(p) for p in sg_params.tolist()]
    keep = keep_mask_torch(mask[0], int(mask[1]), T, N, cfg.mask_p, h.device) if cfg.masked else None
    gx = torch.empty((T, N), dtype=h.dtype, device=h.device) if out is None else out
    gv, gk, sg, gh, v_prev, fired, ht, h_prev = torch.zeros((8, N), dtype=cdt, device=h.device)
    h_prev.copy_(h[T - 1])
    for t in reversed(range(T)):
        ht.copy_(h_prev)  # h[t]
        if t > 0:
            h_prev.copy_(h[t - 1])
        else:
            h_prev.zero_()  # v[-1] = 0
        gs = grad_s[t].to(cdt)
        surrogate_grad_(cfg.surrogate.name, torch.sub(ht, cfg.vth, out=sg), params)
        if keep is not None:  # docs/methods.md §3
            sg.mul_(keep[t])
            if cfg.rescale:
                sg.mul_(cfg.keep_scale)
        torch.ge(h_prev, cfg.vth, out=fired)  # s[t-1]
        if cfg.reset == "hard":
            if not cfg.detach_reset:  # dv/ds = -h
                torch.mul(gv, ht, out=gh)
                torch.sub(gs, gh, out=gh).mul_(sg)
            else:
                torch.mul(sg, gs, out=gh)
            gh.add_(gv.mul_(torch.lt(ht, cfg.vth, out=v_prev)))  # + gv * (1 - s[t]); v_prev is scratch here
            torch.addcmul(h_prev, h_prev, fired, value=-1.0, out=v_prev)  # v[t-1] = h[t-1] * (1 - s[t-1])
        else:
            if not cfg.detach_reset:  # dv/ds = -vth
                torch.mul(gv, cfg.vth, out=gh)
                torch.sub(gs, gh, out=gh).mul_(sg)
            else:
                torch.mul(sg, gs, out=gh)
            gh.add_(gv)
            torch.add(h_prev, fired, alpha=-cfg.vth, out=v_prev)  # v[t-1] = h[t-1] - vth * s[t-1]
        if cfg.decay_input:  # gk += gh * (x - v[t-1]); gx = gh * k
            gk.add_(torch.sub(x2d[t].to(cdt), v_prev, out=v_prev).mul_(gh))
            torch.mul(gh, kn, out=gx[t]) if gx.dtype == cdt else gx[t].copy_(gh * kn)
        else:  # gk -= gh * v[t-1]; gx = gh
            gk.sub_(v_prev.mul_(gh))
            gx[t].copy_(gh)
        torch.mul(gh, decay, out=gv)  # gv = gh * (1 - k)
    return gx, gk
