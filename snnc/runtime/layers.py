"""Layers that generated models use besides torch.nn and snnc.ops.LIF.

Generated models keep activations merged as [T*B, ...] between stateless
layers, so convolutions, pooling and BN run once over the whole sequence, and
reshape to [T, B, ...] only around neurons and time reductions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnc.runtime.encoders import PoissonEncoder  # noqa: F401  (generated models use them as L.*)
from snnc.runtime.plif import PLIF  # noqa: F401
from snnc.runtime.tokens import Dropout, IAnd, LayerNorm, SpikingSelfAttention, TokenLinear, Vote  # noqa: F401


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Per-channel BN over the merged T*B batch, for [N, C], [N, C, L] or [N, C, H, W] (docs/methods.md §9).

    `scale` is tdBN's a*vth factor: y = weight * (scale * (x - mu) / sqrt(var + eps)) + bias;
    1.0 gives plain BN. State-dict keys match torch.nn.BatchNorm2d.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, scale: float = 1.0):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.scale = float(scale)

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"BatchNorm expects [N, C], [N, C, L] (tokens) or [N, C, H, W], got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        factor = self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as torch.nn.BatchNorm does
                factor = 1.0 / float(self.num_batches_tracked)
        # weight * (scale * xhat) + bias == (weight * scale) * xhat + bias
        weight = self.weight if self.scale == 1.0 else self.weight * self.scale
        return F.batch_norm(x, self.running_mean, self.running_var, weight, self.bias, self.training,
                            factor or 0.0, self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", scale={self.scale}" if self.scale != 1.0 else "")


def repeat_over_time(x: Tensor, T: int) -> Tensor:
    """Direct encoding: a static input [B, ...] becomes the merged sequence [T*B, ...]."""
    return x.unsqueeze(0).expand(T, *x.shape).reshape(T * x.shape[0], *x.shape[1:])


class TimeWeights(nn.Module):
    """TWO's output weights f[t] (docs/methods.md §8): y[t] = f[t] * O[t], f updated once per epoch."""

    def __init__(self, T: int):
        super().__init__()
        self.register_buffer("f", torch.ones(T))

    def set_time_steps(self, T: int) -> None:
        """A TIT stage with another T starts from uniform weights (the old f has no meaning there)."""
        if self.f.numel() != T:
            self.f = torch.ones(T, device=self.f.device, dtype=self.f.dtype)

    def forward(self, O: Tensor) -> Tensor:
        if O.shape[0] != self.f.numel():
            raise ValueError(f"TWO's output weights are for T={self.f.numel()}, the output has {O.shape[0]} steps; "
                             f"set the model's T with snnc.runtime.setup.set_time_steps(model, T)")
        return O * self.f.to(O.dtype).view(-1, *([1] * (O.dim() - 1)))


def leaky_relu(x: Tensor, slope: float) -> Tensor:
    return F.leaky_relu(x, slope)


def to_sequence(x: Tensor, T: int, dims: tuple[int, ...], kind: str) -> tuple[Tensor, int]:
    """(merged [T*B, ...] input, T) from [B, *dims] (repeated over T) or [T, B, *dims] (frames)."""
    if tuple(x.shape[-len(dims):]) != tuple(dims) or x.dim() not in (len(dims) + 1, len(dims) + 2):
        want = ", ".join(str(d) for d in dims)
        raise ValueError(f"expected input [B, {want}] or [T, B, {want}], got {tuple(x.shape)}")
    if x.dim() == len(dims) + 1:
        if kind == "events":
            raise ValueError(f"event input must be [T, B, ...] frames, got {tuple(x.shape)}")
        return repeat_over_time(x, T), T
    return x.flatten(0, 1), x.shape[0]
