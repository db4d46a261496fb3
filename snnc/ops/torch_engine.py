"""The PyTorch path of the fused LIF op: the Triton kernels' loops, written with torch ops.

Used for CPU tensors (backend "auto" or "torch"). Like a Triton program, it
walks the neurons in blocks of CHUNK and runs the whole time loop for one
block before the next. Scratch rows come from a per-thread workspace that
outlives the call: on the CPU, touching freshly allocated pages costs more
than the arithmetic, so steps and calls allocate nothing but their outputs.
Masks are 0/1 floats: float comparisons and products are much faster on the
CPU than bool tensors with masked_fill or where.

Same contract as `snnc.backends.triton.launch`:
- `forward(x2d, cfg, bn, store_h) -> (spikes [T, N], h [T, N] or None)`
- `backward(grad_s, state, cfg, sg_params, mask, bn) -> grad [T, N]` w.r.t.
  the LIF input (the BN output when `bn` is given). `state` is h, or x when
  `bn` is given, in which case h is recomputed into the gradient buffer first.
x2d may have any stride between time steps; rows must have unit stride.
"""

from __future__ import annotations

import threading

import torch

from snnc.ops.config import BnAffine, LifConfig, compute_dtype
from snnc.ops.mask import CHUNK, uniform_block_torch
from snnc.ops.surrogate import surrogate_grad_


_LOCAL = threading.local()


def _workspace(rows: int, n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """[rows, n] scratch, reused across calls on this thread (at most rows x CHUNK elements)."""
    cache = _LOCAL.__dict__.setdefault("workspaces", {})
    key = (dtype, torch.device(device))
    ws = cache.get(key)
    if ws is None or ws.shape[0] < rows or ws.shape[1] < n:
        old_rows, old_n = (0, 0) if ws is None else ws.shape
        ws = cache[key] = torch.empty((max(rows, old_rows), max(n, old_n)), dtype=dtype, device=device)
    return ws[:rows, :n]


def _blocks(N: int):
    for n0 in range(0, N, CHUNK):
        yield n0, min(N, n0 + CHUNK)


class _BnRows:
    """The folded BN's per-channel (scale, shift) laid out per element, once per call, over one
    period of channels (C * inner elements) plus one block: a block of neurons n0..n1 reads its
    values as a slice at n0 mod the period, with no per-element index arithmetic or gather."""

    def __init__(self, bn: BnAffine, n: int):
        period = bn.channels * bn.inner
        self.period = period
        reps = -(-(period + n) // period)
        self.scale, self.shift = (v.repeat_interleave(bn.inner).repeat(reps) for v in (bn.scale, bn.shift))

    def block(self, n0: int, n1: int):
        o = n0 % self.period
        return self.scale[o:o + n1 - n0], self.shift[o:o + n1 - n0]


def _normalize_into(out: torch.Tensor, x2d: torch.Tensor, bn: BnAffine) -> None:
    """out = x * scale[c] + shift[c] over [T, N], the per-channel values broadcast (never expanded)."""
    shape = (x2d.shape[0], -1, bn.channels, bn.inner)
    torch.addcmul(bn.shift.view(bn.channels, 1), x2d.reshape(shape), bn.scale.view(bn.channels, 1),
                  out=out.view(shape))


def _bn_block(rows: _BnRows | None, n0: int, n1: int):
    return None if rows is None else rows.block(n0, n1)


def bn_lif_keeps_h(dtype: torch.dtype, cfg: LifConfig) -> bool:
    """A fused BN+LIF layer on this path keeps h for its backward, as `lif` does, besides x (the
    memory of BatchNorm followed by `lif`): recomputing h here costs a whole forward of the loop
    above, more than the fusion saves (docs/kernels.md, "bn_lif")."""
    return True


def _forward_block(x, cfg: LifConfig, affine, spikes, h_out, ws):
    """The forward time loop over one block; x, spikes, h_out are [T, n] views (h_out may be None)."""
    dtype = x.dtype
    v, h_buf, y, s_buf = ws
    v.zero_()
    in_place = h_out is not None and dtype == v.dtype  # compute h directly in its storage row
    # (otherwise h lives in h_buf: without storage, or in float32 before rounding to float16)
    for t in range(x.shape[0]):
        h = h_out[t] if in_place else h_buf
        x_t = x[t]
        if affine is not None or dtype != v.dtype:
            if affine is not None:  # docs/methods.md §9, folded: y = x * scale[c] + shift[c]
                x_t = torch.mul(x_t, affine[0], out=y).add_(affine[1])
            else:
                x_t = y.copy_(x_t)
        if cfg.decay_input:  # h = decay*v + (1 - decay)*x
            torch.mul(x_t, cfg.input_scale, out=h).add_(v, alpha=cfg.decay)
        else:  # h = decay*v + x
            torch.add(x_t, v, alpha=cfg.decay, out=h)
        if dtype != v.dtype:
            # h is rounded to the storage dtype before firing, so spikes recomputed
            # from the stored h in backward are exactly the forward's.
            h.copy_(h.to(dtype) if h_out is None else h_out[t].copy_(h))
        direct = spikes is not None and spikes.dtype == v.dtype
        s = torch.ge(h, cfg.vth, out=spikes[t] if direct else s_buf)  # docs/methods.md §1: fire on h >= vth
        if spikes is not None and not direct:
            spikes[t].copy_(s)
        if cfg.reset == "hard":  # v = h*(1 - s)
            torch.addcmul(h, h, s, value=-1.0, out=v)
        else:  # v = h - vth*s
            torch.add(h, s, alpha=-cfg.vth, out=v)


def forward(x2d: torch.Tensor, cfg: LifConfig, bn: BnAffine | None = None, store_h: bool = True):
    """Spikes and (if store_h) the pre-reset membrane h, both [T, N] in x's dtype."""
    T, N = x2d.shape
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    h = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    ws = _workspace(4, min(N, CHUNK), compute_dtype(x2d.dtype), x2d.device)
    if bn is not None and h is not None and x2d.dtype == compute_dtype(x2d.dtype):
        # One broadcast op writes the BN output into h's storage; the loop then updates h in place.
        _normalize_into(h, x2d, bn)
        x2d, bn = h, None
    rows = None if bn is None else _BnRows(bn, min(N, CHUNK))
    for n0, n1 in _blocks(N):
        _forward_block(x2d[:, n0:n1], cfg, _bn_block(rows, n0, n1), spikes[:, n0:n1],
                       None if h is None else h[:, n0:n1], ws[:, : n1 - n0])
    return spikes, h


def _backward_block(grad_s, h_all, grad, cfg: LifConfig, params, mask, n0: int, ws):
    """Reverse-time loop over one block (docs/methods.md §1-§3); all tensors are [T, n] views.

    dL/dh[t] = g[t]*dL/ds[t] + dL/dv[t]*dv/dh[t], with g the (masked)
    surrogate and dv/dh including the reset term unless detach_reset;
    dL/dv[t-1] = decay*dL/dh[t]; dL/dx[t] = input_scale*dL/dh[t].
    `grad` may share memory with `h_all`: every read of h[t] comes before
    grad[t] is written, and the one op that writes it reads h only elementwise.
    """
    cdt = ws.dtype
    gv, sg, gh_buf, h_buf, gs_buf, not_fired = ws
    gv.zero_()  # dL/dv after the last step
    direct = grad.dtype == cdt and cfg.input_scale == 1.0
    key, iteration = mask
    for t in reversed(range(h_all.shape[0])):
        h = h_all[t] if h_all.dtype == cdt else h_buf.copy_(h_all[t])
        gs = grad_s[t] if grad_s.dtype == cdt else gs_buf.copy_(grad_s[t])
        surrogate_grad_(cfg.surrogate.name, torch.sub(h, cfg.vth, out=sg), params)
        if cfg.masked:  # docs/methods.md §3: keep where u >= mask_p
            # float32 u against mask_p rounded to float32, in every dtype (as the Triton kernels)
            u = uniform_block_torch(key, iteration, t, n0, h.shape[0], h.device)
            keep = torch.ge(u, cfg.mask_p, out=u).to(cdt)
            sg.mul_(keep.mul_(cfg.keep_scale) if cfg.rescale else keep)
        if cfg.reset == "hard":
            torch.lt(h, cfg.vth, out=not_fired)  # 1 - s
        gh = grad[t] if direct else gh_buf
        if cfg.detach_reset:
            torch.mul(gs, sg, out=gh)
        elif cfg.reset == "hard":  # dv/dh = (1 - s) - h*g: h*g is the gradient through the reset
            torch.addcmul(gs, gv, h, value=-1.0, out=gh).mul_(sg)
        else:  # dv/dh = 1 - vth*g
            torch.add(gs, gv, alpha=-cfg.vth, out=gh).mul_(sg)
        if cfg.reset == "hard":
            gh.addcmul_(gv, not_fired)  # + dL/dv * (1 - s)
        else:
            gh.add_(gv)
        torch.mul(gh, cfg.decay, out=gv)
        if not direct:
            torch.mul(gh, cfg.input_scale, out=grad[t])


def backward(grad_s: torch.Tensor, state: torch.Tensor, cfg: LifConfig, sg_params: torch.Tensor,
             mask: tuple, bn: BnAffine | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient w.r.t. the LIF input, [T, N] in the state's dtype; `mask` is (key, iteration).

    `out` receives the gradient; it may be the saved h itself (overwritten step by step).
    """
    T, N = state.shape
    cdt = compute_dtype(state.dtype)
    grad = torch.empty((T, N), dtype=state.dtype, device=state.device) if out is None else out
    params = [float(p) for p in sg_params.tolist()]
    mask = (mask[0], int(mask[1]))
    ws = _workspace(6, min(N, CHUNK), cdt, state.device)
    rows = None if bn is None else _BnRows(bn, min(N, CHUNK))
    for n0, n1 in _blocks(N):
        ws_n = ws[:, : n1 - n0]
        if bn is not None:
            # Only x was saved: recompute this block's h into the gradient buffer.
            _forward_block(state[:, n0:n1], cfg, _bn_block(rows, n0, n1), None, grad[:, n0:n1], ws_n[:4])
            h_all = grad[:, n0:n1]
        else:
            h_all = state[:, n0:n1]
        _backward_block(grad_s[:, n0:n1], h_all, grad[:, n0:n1], cfg, params, mask, n0, ws_n)
    return grad
