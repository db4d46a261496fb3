"""The independent reference LIF: plain autograd through an unfused eager loop (docs/methods.md §1-§3).

Written directly from docs/methods.md, as simply as possible, sharing no code with the
fused paths (only the surrogate spelling parser). Tests compare every fused
path against it, and `bench/lif.py` uses it as the eager baseline.
"""

from __future__ import annotations

import math

import torch

from snnc.frontend.spelling import parse_surrogate


def surrogate_reference(name: str, x: torch.Tensor, params: list[float]) -> torch.Tensor:
    """g(x) of docs/methods.md §2, x = h - vth."""
    if name == "triangle":
        (beta,) = params
        return beta * torch.clamp(1 - beta * x.abs(), min=0)
    if name == "rectangle":
        (beta,) = params
        return beta * (x.abs() < 1 / (2 * beta)).to(x.dtype)
    if name == "arctan":
        (beta,) = params
        return beta / (1 + (math.pi * beta * x) ** 2)
    if name == "dspike":
        b, region = params
        inside = (x.abs() <= region).to(x.dtype)
        return inside * b * (1 - torch.tanh(b * x) ** 2) / (2 * math.tanh(b * region))
    if name == "sigmoid":
        (alpha,) = params
        sig = torch.sigmoid(alpha * x)
        return alpha * sig * (1 - sig)
    raise ValueError(f"unknown surrogate {name}")


class _Spike(torch.autograd.Function):
    """Forward H(x) (fire on x >= 0); backward the surrogate times the keep factor."""

    @staticmethod
    def forward(ctx, x, name, params, keep_factor):
        ctx.save_for_backward(x)
        ctx.name, ctx.params, ctx.keep_factor = name, params, keep_factor
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = grad * surrogate_reference(ctx.name, x, ctx.params)
        return (g if ctx.keep_factor is None else g * ctx.keep_factor), None, None, None


def lif_reference(x: torch.Tensor, *, decay: float, vth: float, reset: str, decay_input: bool,
                  detach_reset: bool, surrogate: str, sg_params=None, keep=None, mask_p: float = 0.0,
                  rescale: bool = False, record: dict | None = None) -> torch.Tensor:
    """Spikes [T, ...] of docs/methods.md §1 with gradients through autograd.

    `keep` (bool, x's shape) is the MSG mask: the surrogate gradient at (t, n)
    is multiplied by keep[t, n], divided by (1 - mask_p) when `rescale`.
    `record`, if given, receives the pre-reset membrane h stacked over time.
    """
    spec = parse_surrogate(surrogate)
    params = [float(v) for v in sg_params] if sg_params is not None else [v for _, v in spec.params]
    keep_factor = None
    if keep is not None:
        keep_factor = keep.to(x.dtype)
        if rescale:
            keep_factor = keep_factor / (1 - mask_p)
    v = torch.zeros_like(x[0])
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        if decay_input:
            h = decay * v + (1 - decay) * x[t]  # = v + (x - v)/tau with decay = 1 - 1/tau
        else:
            h = decay * v + x[t]
        s = _Spike.apply(h - vth, spec.name, params, None if keep_factor is None else keep_factor[t])
        r = s.detach() if detach_reset else s
        if reset == "hard":
            v = h * (1 - r)
        else:
            v = h - vth * r
        spikes.append(s)
        membranes.append(h)
    if record is not None:
        record["h"] = torch.stack(membranes).detach()
    return torch.stack(spikes)
