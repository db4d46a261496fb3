"""The PyTorch path of the fused LIF op: the same loops as the Triton kernels, in torch ops.

Used for CPU tensors (backend "auto" or "torch"). Each loop works in place on
buffers allocated once per call, so a step costs a handful of passes over N
and no autograd bookkeeping. Same contract as `snnc.backends.triton.launch`:

- `forward(x2d, cfg, bn, store_h) -> (spikes [T, N], h [T, N] or None)`
- `backward(grad_s, state, cfg, sg_params, mask, bn) -> grad [T, N]` w.r.t.
  the LIF input (the BN output when `bn` is given). `state` is h, or x when
  `bn` is given, in which case h is recomputed into the gradient buffer first.

x2d may have any stride between time steps; rows must have unit stride.
"""

from __future__ import annotations

import torch

from snnc.ops.config import BnAffine, LifConfig, compute_dtype
from snnc.ops.mask import keep_step_torch
from snnc.ops.surrogate import surrogate_grad_


def _charge(x_t, v, cfg: LifConfig, bn: BnAffine | None, h, y):
    """h = decay*v + input_scale*y with y = x_t, or its BN affine (METHODS §1, §9)."""
    if bn is not None or x_t.dtype != h.dtype:
        y.copy_(x_t)
        if bn is not None:
            y3 = y.view(-1, bn.channels, bn.inner)
            y3.mul_(bn.scale[:, None]).add_(bn.shift[:, None])
        x_t = y
    torch.mul(v, cfg.decay, out=h)
    if cfg.decay_input:
        h.add_(x_t, alpha=cfg.input_scale)
    else:
        h.add_(x_t)


def _reset(h, s_t, cfg: LifConfig, v):
    """v = h*(1 - s) (hard) or h - vth*s (soft); both exact for s in {0, 1}."""
    if cfg.reset == "hard":
        torch.addcmul(h, h, s_t, value=-1.0, out=v)
    else:
        torch.add(h, s_t, alpha=-cfg.vth, out=v)


def _run_forward(x2d, cfg, bn, spikes, h_out):
    """The forward time loop; rows of `spikes` and `h_out` (storage dtype) receive s and h.

    Either may be None: spikes then go to a scratch row, and h is not stored.
    """
    T, N = x2d.shape
    dtype = x2d.dtype
    cdt = compute_dtype(dtype)
    if spikes is None:
        spikes = torch.empty(N, dtype=dtype, device=x2d.device).expand(T, N)
    in_place = h_out is not None and dtype == cdt  # compute h directly in its storage row
    h_buf = None if in_place else torch.empty(N, dtype=cdt, device=x2d.device)
    y = torch.empty(N, dtype=cdt, device=x2d.device)
    v = torch.zeros(N, dtype=cdt, device=x2d.device)
    for t in range(T):
        h = h_out[t] if in_place else h_buf
        _charge(x2d[t], v, cfg, bn, h, y)
        if dtype != cdt:
            # h is rounded to the storage dtype before firing, so spikes recomputed
            # from the stored h in backward are the forward's spikes exactly.
            if h_out is not None:
                h_out[t].copy_(h)
                h.copy_(h_out[t])
            else:
                h.copy_(h.to(dtype))
        elif h_out is not None and not in_place:
            h_out[t].copy_(h)
        torch.ge(h, cfg.vth, out=spikes[t])
        _reset(h, spikes[t], cfg, v)


def forward(x2d: torch.Tensor, cfg: LifConfig, bn: BnAffine | None = None, store_h: bool = True):
    """Spikes and (if store_h) the pre-reset membrane h, both [T, N] in x's dtype."""
    T, N = x2d.shape
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    h = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    _run_forward(x2d, cfg, bn, spikes, h)
    return spikes, h


def backward(grad_s: torch.Tensor, state: torch.Tensor, cfg: LifConfig, sg_params: torch.Tensor,
             mask: tuple[int, int], bn: BnAffine | None = None) -> torch.Tensor:
    """Gradient w.r.t. the LIF input, running the recurrence in reverse time.

    dL/dh[t] = g[t]*dL/ds[t] + dL/dv[t]*dv/dh[t], with g the (masked)
    surrogate and dv/dh including the reset term unless detach_reset;
    dL/dv[t-1] = decay*dL/dh[t]; dL/dx[t] = input_scale*dL/dh[t].
    `mask` is (key, iteration) from `snnc.ops.mask`.
    """
    T, N = state.shape
    dtype = state.dtype
    cdt = compute_dtype(dtype)
    dev = state.device
    grad = torch.empty((T, N), dtype=dtype, device=dev)
    if bn is not None:
        # Only x was saved: recompute h into the gradient buffer (it is overwritten in reverse).
        _run_forward(state, cfg, bn, None, grad)
        h_all = grad
    else:
        h_all = state
    params = [float(p) for p in sg_params.tolist()]
    key, iteration = mask
    iteration = int(iteration)
    direct = dtype == cdt and cfg.input_scale == 1.0 and bn is None
    h_buf = None if h_all.dtype == cdt else torch.empty(N, dtype=cdt, device=dev)
    gs_buf = None if grad_s.dtype == cdt else torch.empty(N, dtype=cdt, device=dev)
    sg = torch.empty(N, dtype=cdt, device=dev)
    gh_buf = torch.empty(N, dtype=cdt, device=dev)
    fired = torch.empty(N, dtype=torch.bool, device=dev)
    gv = torch.zeros(N, dtype=cdt, device=dev)  # dL/dv[t], zero after the last step
    for t in reversed(range(T)):
        # In BN mode h_all is `grad`: h[t] is read in full before grad[t] is written.
        h = h_all[t] if h_buf is None else h_buf.copy_(h_all[t])
        gs = grad_s[t] if gs_buf is None else gs_buf.copy_(grad_s[t])
        torch.sub(h, cfg.vth, out=sg)
        surrogate_grad_(cfg.surrogate.name, sg, params)
        if cfg.masked:  # METHODS §3: keep with probability 1 - mask_p
            sg.mul_(keep_step_torch(key, iteration, t, N, cfg.mask_p, dev))
            if cfg.rescale:
                sg.mul_(cfg.keep_scale)
        torch.ge(h, cfg.vth, out=fired)
        gh = grad[t] if direct else gh_buf
        if cfg.reset == "hard":
            # dv/dh = (1 - s) - h*g   (the h*g term is the gradient through the reset)
            if cfg.detach_reset:
                torch.mul(gs, sg, out=gh)
            else:
                torch.addcmul(gs, gv, h, value=-1.0, out=gh).mul_(sg)
            gh.add_(gv.masked_fill_(fired, 0.0))
        else:
            # dv/dh = 1 - vth*g
            if cfg.detach_reset:
                torch.mul(gs, sg, out=gh)
            else:
                torch.add(gs, gv, alpha=-cfg.vth, out=gh).mul_(sg)
            gh.add_(gv)
        torch.mul(gh, cfg.decay, out=gv)
        if not direct:
            torch.mul(gh, cfg.input_scale, out=grad[t])
    return grad
