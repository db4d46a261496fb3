"""PLIF: a LIF layer whose decay is learned (Fang et al., "Incorporating Learnable Membrane Time
Constant to Enhance Learning of Spiking Neural Networks", ICCV 2021).

A trained w (one per layer, or one per channel) gives k = sigmoid(w), the share of the input
taken in each step, and decay = 1 - k. Per step, with v[-1] = 0 (the paper's eq. 3 with
1/tau = k; the two charges of SpikingJelly's ParametricLIFNode, v_reset = 0):

    decay_input:  h[t] = v[t-1] + (x[t] - v[t-1]) * k
    otherwise:    h[t] = v[t-1] - v[t-1] * k + x[t]
    s[t] = (h[t] >= vth)
    v[t] = h[t] * (1 - s[t])   (hard)   or   h[t] - vth * s[t]   (soft)

The backward pass runs the same recurrence in reverse with the surrogate g of docs/methods.md §2
and the MSG mask of §3:

    gs[t] = dL/ds[t] + gv[t] * dv[t]/ds[t]         (dv/ds = -h[t] or -vth; 0 with detach_reset)
    gh[t] = gs[t] * g(h[t] - vth) * keep[t] + gv[t] * dv[t]/dh[t]   (dv/dh = 1 - s[t] or 1)
    gx[t] = gh[t] * k  (decay_input)  or  gh[t];   gv[t-1] = gh[t] * (1 - k)
    gk    = sum over t of gh[t] * (x[t] - v[t-1])  (decay_input)  or  -gh[t] * v[t-1]
    gw    = k (1 - k) * gk, summed over every element (per layer) or all but the channel

`run_plif` is the one place that picks an implementation (snnc/runtime/plif_engine.py): the fused
kernels, rendered from the per-element lines of snnc/backends/lif_math.py, run the whole time
loop forward and the reverse loop backward: the generated C kernel on the CPU (backend "auto" or
"cpu"), Triton on CUDA ("auto" or "triton"), and the same loops in torch ops ("torch", and
float16/bfloat16 on the CPU). Forward saves h (and x with decay_input, for dh/dk); backward
writes dL/dx into h's storage and returns dL/dk per neuron, reduced per channel (or in total) in a
fixed order. backend "reference" is `plif_reference`, plain autograd through an eager loop, which
tests/test_plif*.py compare every engine with in float64. Under torch.compile the layer is the
custom op `snnc::plif` (snnc/runtime/plif_op.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from snnc.diagnostics import SnncError
from snnc.ops.config import PARAM_DTYPE, check_backend, check_input, make_config, surrogate_params
from snnc.ops.function import record_stats, time_major
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from snnc.runtime import plif_op
from snnc.runtime.plif_engine import layout, reduce_gk, select_engine


class PLIFFunction(torch.autograd.Function):
    """Spikes of x [T, B, C, ...] for the trained w with one PLIF engine; saves h (and x with
    decay_input) and returns (dL/dx, dL/dw) from the engine's reverse loop."""

    @staticmethod
    def forward(ctx, x, w, sg_params, cfg, engine, mask, stats):
        x2d = time_major(x)
        k, channels, inner = layout(x, w)
        spikes, h = engine.forward(x2d, k, channels, inner, cfg, True)
        record_stats(stats, h, spikes)
        ctx.save_for_backward(h, x2d if cfg.decay_input else None, w, sg_params)
        ctx.cfg, ctx.engine, ctx.mask, ctx.shape, ctx.layout = cfg, engine, mask, x.shape, (channels, inner)
        return spikes.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        if getattr(ctx, "consumed", False):
            raise SnncError("a PLIF layer cannot backpropagate through the same forward twice: its saved "
                            "membrane was overwritten by the first gradient",
                            hint="run the forward again instead of backward(retain_graph=True)")
        ctx.consumed = True
        h, x2d, w, sg_params = ctx.saved_tensors
        channels, inner = ctx.layout
        k_w = torch.sigmoid(w.detach())
        k = k_w.to(device=h.device, dtype=torch.float64 if h.dtype == torch.float64 else torch.float32)
        gx, gk = ctx.engine.backward(grad.reshape(h.shape), h, x2d, k, channels, inner, ctx.cfg, sg_params,
                                     ctx.mask, out=h)
        gw = reduce_gk(gk, w, channels, inner).to(w.dtype) * k_w * (1.0 - k_w)
        return gx.view(ctx.shape), gw.reshape(w.shape), None, None, None, None, None


def plif_reference(x, w, *, vth, reset, decay_input, detach_reset, surrogate, sg_params, keep=None):
    """The same spikes with gradients from plain autograd through an eager loop (the tests' reference).

    Written from the module docstring alone, sharing no code with the engines. `keep` (x's shape)
    multiplies the surrogate gradient: the MSG mask, times 1/(1 - mask_p) under rescale."""
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

    k = torch.sigmoid(w)
    if k.dim():
        k = k.view(1, -1, *([1] * (x.dim() - 3)))
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * k if decay_input else v - v * k + x[t]
        s = Spike.apply(h - vth, None if keep is None else keep[t])
        r = s.detach() if detach_reset else s
        v = h * (1.0 - r) if reset == "hard" else h - vth * r
        out.append(s)
    return torch.stack(out)


def _reference(x, w, cfg, sg_params, mask, stats):
    """backend "reference": plif_reference with the PyTorch path's MSG mask."""
    keep = None
    if cfg.masked:
        keep = keep_mask_torch(mask[0], int(mask[1]), x.shape[0], x[0].numel(), cfg.mask_p, x.device)
        keep = keep.view(x.shape).to(x.dtype) * cfg.keep_scale
    if stats is not None:
        raise SnncError("backend 'reference' records no statistics")
    return plif_reference(x, w, vth=cfg.vth, reset=cfg.reset, decay_input=cfg.decay_input,
                          detach_reset=cfg.detach_reset, surrogate=cfg.surrogate.name,
                          sg_params=sg_params.tolist(), keep=keep)


def run_plif(x, w, cfg, sg_params, mask, backend: str, stats) -> torch.Tensor:
    """Spikes of one PLIF layer: x [T, B, ...] (or [T, B, C, ...] for a per-channel w), w a scalar or [C],
    `mask` the MSG key (key, iteration), `stats` a dict for h_mean, h_std and spike_rate, or None."""
    sg = surrogate_params(cfg, sg_params, x.device)
    if backend == "reference":
        return _reference(x, w, cfg, sg.cpu(), mask, stats)
    if torch.compiler.is_compiling():
        return plif_op.call_plif(x, w, cfg, sg, mask, backend, stats)
    engine = select_engine(x, backend, cfg)
    if not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)):
        k, channels, inner = layout(x, w)
        spikes, h = engine.forward(time_major(x), k, channels, inner, cfg, stats is not None)
        if stats is not None:
            record_stats(stats, h, spikes)
        return spikes.view(x.shape)
    return PLIFFunction.apply(x, w, sg, cfg, engine, mask, stats)


def initial_w(decay: float) -> float:
    """w with 1 - sigmoid(w) = decay: the paper's init -log(tau - 1) for decay = 1 - 1/tau."""
    return -math.log(1.0 / (1.0 - decay) - 1.0)


class PLIF(nn.Module):
    """A PLIF layer over all T steps of x [T, B, C, ...]; the LIF module's interface (snnc.ops.LIF):
    `config`, `sg_params` (CPNG adapts [0]), `iteration` (MSG: advanced once per training forward),
    `seed`, `rank`, `layer`, `backend`, `record_stats` and the recorded `h_mean`, `h_std`,
    `spike_rate`. `w` is the trained parameter: a scalar (per layer) or [channels]."""

    def __init__(self, *, channels: int | None = None, decay=0.5, vth=1.0, reset="hard", decay_input=True,
                 detach_reset=False, surrogate="triangle(beta=1.0)", mask_p=0.0, rescale=False, layer=0,
                 backend="auto"):
        super().__init__()
        if not 0.0 < float(decay) < 1.0:
            raise SnncError(f"a learnable decay starts inside (0, 1), not at {decay!r}", hint="e.g. decay=0.5 (tau=2)")
        check_backend(backend)
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
        iteration = 0
        if self.config.masked:
            if self.training:
                self.iteration.add_(1)
            # copied now: a later forward before this graph's backward must not change its mask
            iteration = self.iteration.detach().clone()
        mask = (mask_key_seed(self.seed, self.rank, self.layer), iteration)
        stats = {} if self.record_stats else None
        spikes = run_plif(x, self.w, self.config, self.sg_params, mask, self.backend, stats)
        if stats is not None:
            self.h_mean, self.h_std, self.spike_rate = stats["h_mean"], stats["h_std"], stats["spike_rate"]
        return spikes
