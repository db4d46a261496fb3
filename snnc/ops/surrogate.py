"""Surrogate gradients g(z), z = h - vth, for the PyTorch path (docs/methods.md §2).

`surrogate_grad_(name, z, params)` overwrites `z` with g(z) using in-place
ops, so the backward loop allocates nothing per step for it. `params` are
floats in catalog order (`snnc.catalog.SURROGATE_PARAMS`).
"""

from __future__ import annotations

import math

import torch


def _triangle(z: torch.Tensor, beta: float) -> torch.Tensor:
    # beta * max(0, 1 - beta*|z|)
    return z.abs_().mul_(-beta).add_(1.0).clamp_(min=0.0).mul_(beta)


def _rectangle(z: torch.Tensor, beta: float) -> torch.Tensor:
    # beta if |z| < 1/(2 beta) else 0
    # Comparisons write 0/1 floats in place: no bool tensor (slow on the CPU).
    return torch.lt(z.abs_(), 1.0 / (2.0 * beta), out=z).mul_(beta)


def _arctan(z: torch.Tensor, beta: float) -> torch.Tensor:
    # beta / (1 + (pi*beta*z)^2)
    return z.mul_(math.pi * beta).square_().add_(1.0).reciprocal_().mul_(beta)


def _dspike(z: torch.Tensor, b: float, region: float) -> torch.Tensor:
    # b*(1 - tanh(b z)^2) / (2 tanh(b region)) on the closed support |z| <= region (SML ZDSPIKE)
    inside = z.abs()
    torch.le(inside, region, out=inside)  # 0/1 floats
    z.mul_(b).tanh_().square_().neg_().add_(1.0).mul_(b / (2.0 * math.tanh(b * region)))
    return z.mul_(inside)


def _sigmoid(z: torch.Tensor, alpha: float) -> torch.Tensor:
    # alpha * sig(alpha z) * (1 - sig(alpha z))
    sig = z.mul_(alpha).sigmoid_()
    return torch.addcmul(sig, sig, sig, value=-1.0, out=sig).mul_(alpha)


SURROGATES = {
    "triangle": _triangle,
    "rectangle": _rectangle,
    "arctan": _arctan,
    "dspike": _dspike,
    "sigmoid": _sigmoid,
}


def surrogate_grad_(name: str, z: torch.Tensor, params) -> torch.Tensor:
    """g(z) written into z and returned; `params` in catalog order."""
    return SURROGATES[name](z, *params)


def surrogate_grad(name: str, z: torch.Tensor, params) -> torch.Tensor:
    """g(z) as a new tensor; z is left unchanged."""
    return surrogate_grad_(name, z.clone(), params)
