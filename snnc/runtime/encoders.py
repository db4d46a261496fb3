"""Input encoders (`input image[...] @encode(poisson(seed = 0))`); direct encoding needs none.

Poisson (rate) coding: each value x, clamped to [0, 1], is the probability of a spike at each
step, drawn independently per step and element: s = (u < clamp(x, 0, 1)), u ~ U[0, 1).

Reproducible: the draws come from a CPU torch.Generator seeded from `seed` (the same on every
device), over the shape of the merged [T*B, ...] input. In eval mode the key is `seed` itself,
so the same batch always gives the same spikes, here and in the deployed model.py, which draws
the same way. In training the key also folds in a counter of training forwards (a buffer, so
checkpoints keep it), so every batch sees fresh spikes and a resumed run draws what it would have.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MASK63 = (1 << 63) - 1


def draw_key(seed: int, draws: int) -> int:
    """The generator seed of one forward: `seed` in eval (draws = 0), mixed with the counter in training."""
    return seed if draws == 0 else (seed * 0x9E3779B97F4A7C15 + draws * 0xBF58476D1CE4E5B9) & MASK63


def poisson_spikes(x: Tensor, key: int) -> Tensor:
    gen = torch.Generator().manual_seed(key)
    u = torch.rand(x.shape, generator=gen, dtype=torch.float32).to(x.device)
    return (u < x.float().clamp(0.0, 1.0)).to(x.dtype)


class PoissonEncoder(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.register_buffer("draws", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        draws = 0
        if self.training:
            self.draws.add_(1)
            draws = int(self.draws)
        return poisson_spikes(x, draw_key(self.seed, draws))

    def extra_repr(self) -> str:
        return f"seed={self.seed}"
