"""Layers for the ops beyond conv nets (snnc/ir/schema_ops.py), on merged [T*B, ...] activations.

Channels come first: an image [n, C, H, W], a token map [n, D, N], a vector [n, F] (n = T*B).
Parameterised layers keep torch.nn's state-dict keys (`weight`, `bias`), so imported weights load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TokenLinear(nn.Linear):
    """`linear(out)`: nn.Linear applied to each token of [n, D, N] (Spikformer's q/k/v/proj/MLP linears)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.transpose(1, 2), self.weight, self.bias).transpose(1, 2)


class LayerNorm(nn.Module):
    """`layernorm`: normalises the channels of each position (nn.LayerNorm(C) on a channel-last view)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


class SpikingSelfAttention(nn.Module):
    """`ssa(q, k, v, heads, scale)`: Spikformer's SSA (Zhou et al., ICLR 2023, eq. 14-16; code
    cifar10/model.py `SSA.forward`): per head, (Q K^T * scale) V, no softmax. Channel d of head h is
    channel h * D/heads + d, as the authors' reshape(T, B, N, heads, D/heads) gives."""

    def __init__(self, heads: int, scale: float = 0.125):
        super().__init__()
        self.heads, self.scale = int(heads), float(scale)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        n, d = q.shape[:2]

        def split(t: Tensor) -> Tensor:  # [n, D, *P] -> [n, heads, N, D/heads]
            return t.reshape(n, self.heads, d // self.heads, -1).transpose(-1, -2)

        attn = (split(q) @ split(k).transpose(-1, -2)) * self.scale
        out = attn @ split(v)
        return out.transpose(-1, -2).reshape(q.shape)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, scale={self.scale}"


class IAnd(nn.Module):
    """`iand(a, b)` = (1 - a) * b: SEW-ResNet's IAND connect function (Fang et al., NeurIPS 2021),
    not(A) and S for the residual branch's spikes A and the shortcut's S."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return (1.0 - a) * b


class Vote(nn.Module):
    """`vote(k)`: the mean of each group of k features, [n, F] -> [n, F/k] (PLIF's voting layer)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = int(k)

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(1, (-1, self.k)).mean(2)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class Dropout(nn.Module):
    """`dropout(p)` in training: one Bernoulli mask per sample shared by all T steps, kept values
    scaled by 1/(1-p) (SpikingJelly's layer.Dropout, as the PLIF code uses); the identity in eval."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor, T: int) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        seq = x.unflatten(0, (T, -1))
        mask = torch.empty_like(seq[:1]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return (seq * mask).flatten(0, 1)

    def extra_repr(self) -> str:
        return f"p={self.p}"
