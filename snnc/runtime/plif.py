"""PLIF: a LIF layer whose decay is learned (Fang et al., "Incorporating Learnable Membrane Time
Constant to Enhance Learning of Spiking Neural Networks", ICCV 2021), on the plain PyTorch path.

A trained w (one per layer, or one per channel) gives k = sigmoid(w), the share of the input
taken in each step, and decay = 1 - k. Per step, with v[-1] = 0 (the paper's eq. 3 with
1/tau = k; the two charges of SpikingJelly's ParametricLIFNode, v_reset = 0):

    decay_input:  h[t] = v[t-1] + (x[t] - v[t-1]) * k
    otherwise:    h[t] = v[t-1] - v[t-1] * k + x[t]
    s[t] = (h[t] >= vth)
    v[t] = h[t] * (1 - s[t])   (hard)   or   h[t] - vth * s[t]   (soft)

The backward pass runs the same recurrence in reverse (`PLIFFunction.backward`) with the
surrogate g of docs/methods.md §2 and the MSG mask of §3:

    gs[t] = dL/ds[t] + gv[t] * dv[t]/ds[t]         (dv/ds = -h[t] or -vth; 0 with detach_reset)
    gh[t] = gs[t] * g(h[t] - vth) * keep[t] + gv[t] * dv[t]/dh[t]   (dv/dh = 1 - s[t] or 1)
    gx[t] = gh[t] * k  (decay_input)  or  gh[t];   gv[t-1] = gh[t] * (1 - k)
    gk    = sum over t of gh[t] * (x[t] - v[t-1])  (decay_input)  or  -gh[t] * v[t-1]
    gw    = k (1 - k) * gk, summed over every element (per layer) or all but the channel

Kernel seam: `run_plif` is the one place that picks an implementation. A fused kernel takes
(x [T, N], k per element or channel, vth, reset, decay_input, detach_reset, surrogate
parameters, keep mask) forward, saves h, and returns gx and the per-channel reduction gk in
backward; `run_plif` then calls it for backend "auto"/"triton"/"cpu" and keeps PLIFFunction
for "torch". Until then every backend runs PLIFFunction (tests/test_plif.py checks it against
`plif_reference`, plain autograd, in float64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnc.diagnostics import SnncError
from snnc.ops.config import PARAM_DTYPE, check_input, make_config
from snnc.ops.function import record_stats
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from snnc.ops.surrogate import surrogate_grad


def _channel_view(k: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """k (a scalar or [C]) shaped to broadcast against one step x[t] = [B, C, ...]."""
    return k if k.dim() == 0 else k.view(1, -1, *([1] * (x.dim() - 3)))


def _charge(v, xt, k, decay_input: bool):
    return v + (xt - v) * k if decay_input else v - v * k + xt


def _reset(h, s, vth: float, reset: str):
    return h * (1.0 - s) if reset == "hard" else h - vth * s


class PLIFFunction(torch.autograd.Function):
    """Spikes of x [T, B, C, ...] for the trained w; saves x and h, and reverses the loop in backward."""

    @staticmethod
    def forward(ctx, x, w, cfg, sg_params, keep, stats):
        k = _channel_view(torch.sigmoid(w), x)
        v = torch.zeros_like(x[0])
        hs, spikes = torch.empty_like(x), torch.empty_like(x)
        for t in range(x.shape[0]):
            h = _charge(v, x[t], k, cfg.decay_input)
            s = (h >= cfg.vth).to(x.dtype)
            hs[t], spikes[t] = h, s
            v = _reset(h, s, cfg.vth, cfg.reset)
        record_stats(stats, hs, spikes)
        ctx.save_for_backward(x, w, hs)
        ctx.cfg, ctx.sg_params, ctx.keep = cfg, sg_params, keep
        return spikes

    @staticmethod
    def backward(ctx, grad):
        x, w, hs = ctx.saved_tensors
        cfg, keep = ctx.cfg, ctx.keep
        kw = torch.sigmoid(w)
        k = _channel_view(kw, x)
        gx = torch.empty_like(x)
        gk = torch.zeros_like(x[0])
        gv = torch.zeros_like(x[0])
        for t in reversed(range(x.shape[0])):
            h = hs[t]
            s = (h >= cfg.vth).to(x.dtype)
            sg = surrogate_grad(cfg.surrogate.name, h - cfg.vth, ctx.sg_params)
            if keep is not None:
                sg = sg * keep[t]
            gs = grad[t]
            if not cfg.detach_reset:
                gs = gs + gv * (-h if cfg.reset == "hard" else -cfg.vth)
            gh = gs * sg + (gv * (1.0 - s) if cfg.reset == "hard" else gv)
            if t > 0:
                prev = hs[t - 1]
                v_prev = _reset(prev, (prev >= cfg.vth).to(x.dtype), cfg.vth, cfg.reset)
            else:
                v_prev = torch.zeros_like(h)
            if cfg.decay_input:
                gx[t] = gh * k
                gk = gk + gh * (x[t] - v_prev)
            else:
                gx[t] = gh
                gk = gk - gh * v_prev
            gv = gh * (1.0 - k)
        gk = gk.sum() if w.dim() == 0 else gk.transpose(0, 1).reshape(w.shape[0], -1).sum(1)
        return gx, gk * kw * (1.0 - kw), None, None, None, None


def plif_reference(x, w, *, vth, reset, decay_input, detach_reset, surrogate, sg_params, keep=None):
    """The same spikes with gradients from plain autograd through an eager loop (the tests' reference)."""
    from snnc.ops.reference import surrogate_reference

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, factor):
            ctx.save_for_backward(z)
            ctx.factor = factor
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            g = g * surrogate_reference(surrogate, z, list(sg_params))
            return (g if ctx.factor is None else g * ctx.factor), None

    k = _channel_view(torch.sigmoid(w), x)
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = _charge(v, x[t], k, decay_input)
        s = Spike.apply(h - vth, None if keep is None else keep[t])
        v = _reset(h, s.detach() if detach_reset else s, vth, reset)
        out.append(s)
    return torch.stack(out)


def run_plif(x, w, cfg, sg_params, keep, backend: str, stats) -> torch.Tensor:
    """The kernel seam (see the module docstring): every backend runs PLIFFunction for now."""
    params = [float(p) for p in sg_params.tolist()]
    return PLIFFunction.apply(x, w, cfg, params, keep, stats)


def initial_w(decay: float) -> float:
    """w with 1 - sigmoid(w) = decay: the paper's init -log(tau - 1) for decay = 1 - 1/tau."""
    return -math.log(1.0 / (1.0 - decay) - 1.0)


class PLIF(nn.Module):
    """A PLIF layer over all T steps of x [T, B, C, ...]; the LIF module's interface (snnc.ops.LIF):
    `config`, `sg_params` (CPNG adapts [0]), `iteration` (MSG), `seed`, `rank`, `layer`,
    `record_stats` and the recorded `h_mean`, `h_std`, `spike_rate`. `w` is the trained parameter:
    a scalar (per layer) or [channels]."""

    def __init__(self, *, channels: int | None = None, decay=0.5, vth=1.0, reset="hard", decay_input=True,
                 detach_reset=False, surrogate="triangle(beta=1.0)", mask_p=0.0, rescale=False, layer=0,
                 backend="auto"):
        super().__init__()
        if not 0.0 < float(decay) < 1.0:
            raise SnncError(f"a learnable decay starts inside (0, 1), not at {decay!r}", hint="e.g. decay=0.5 (tau=2)")
        self.config = make_config(decay=decay, vth=vth, reset=reset, decay_input=decay_input,
                                  detach_reset=detach_reset, surrogate=surrogate, mask_p=mask_p, rescale=rescale)
        self.learn = "channel" if channels else "layer"
        self.w = nn.Parameter(torch.full((channels,) if channels else (), initial_w(float(decay))))
        self.register_buffer("sg_params", torch.tensor(self.config.default_params(), dtype=PARAM_DTYPE))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.seed, self.rank, self.layer, self.backend = 0, 0, int(layer), backend
        self.record_stats = False
        self.h_mean = self.h_std = self.spike_rate = None

    def extra_repr(self) -> str:
        c = self.config
        return (f"learn={self.learn}, initial decay={c.decay}, vth={c.vth}, reset={c.reset}, "
                f"decay_input={c.decay_input}, detach_reset={c.detach_reset}, surrogate={c.surrogate}, "
                f"mask_p={c.mask_p}, layer={self.layer}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        keep = None
        if self.training and self.config.masked:
            self.iteration.add_(1)
            key = mask_key_seed(self.seed, self.rank, self.layer)
            mask = keep_mask_torch(key, int(self.iteration), x.shape[0], x[0].numel(), self.config.mask_p, x.device)
            keep = mask.view(x.shape).to(x.dtype) * self.config.keep_scale
        stats = {} if self.record_stats else None
        spikes = run_plif(x, self.w, self.config, self.sg_params, keep, self.backend, stats)
        if stats is not None:
            self.h_mean, self.h_std, self.spike_rate = stats["h_mean"], stats["h_std"], stats["spike_rate"]
        return spikes
