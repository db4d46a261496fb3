"""What every dataset reader returns (`Data`), what it may read of the network (`Target`), and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from snnc.diagnostics import SnncError
from snnc.runtime.options import SPECS


@dataclass
class Data:
    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: int
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    # How a raw sample becomes the network input: x = (raw * scale - mean[c]) / std[c]; recorded in the
    # run and deploy manifests so that deploy/model.py can preprocess raw inputs itself.
    preprocess: dict | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


@dataclass(frozen=True)
class Target:
    """The network a dataset is read for: readers that frame events or resize images fit it."""

    kind: str                  # "image" or "events"
    dims: tuple[int, ...]      # (C, H, W)
    T: int
    classes: int


def data_error(message: str, hint: str | None = None) -> SnncError:
    return SnncError(message, None, hint or f"data specs: {SPECS}")


def crop_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop with zero padding and random horizontal flip, per sample, on a whole batch."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    out = _crop(padded, dy, dx, h, w)
    flip = torch.rand(b, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def _crop(padded: Tensor, dy: Tensor, dx: Tensor, h: int, w: int) -> Tensor:
    b = padded.shape[0]
    rows = dy.view(b, 1) + torch.arange(h).view(1, h)          # [b, h]
    cols = dx.view(b, 1) + torch.arange(w).view(1, w)          # [b, w]
    idx_b = torch.arange(b).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_b, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2).contiguous()


def stratified_split(labels, test_fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(train indices, test indices): a seeded split keeping each class's share (scikit-learn's)."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(labels)))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=list(labels), random_state=seed)
    return torch.as_tensor(sorted(tr)), torch.as_tensor(sorted(te))
