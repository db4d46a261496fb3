"""The recipe losses (docs/methods.md §4, §6), usable from any training loop.

`O` is the network output `[T, B, K]`, `y` the labels `[B]`, `aux` a list of
surrogate-module logits `[B, K]`.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_output(O: Tensor) -> None:
    if O.dim() != 3:
        raise ValueError(f"O must be [T, B, classes], got shape {tuple(O.shape)}")


def sdt(O: Tensor, y: Tensor) -> Tensor:
    """Standard direct training: CE(mean_t O[t], y)."""
    _check_output(O)
    return F.cross_entropy(O.mean(0), y)


def tet(O: Tensor, y: Tensor, lam: float = 0.05, phi: float = 1.0) -> Tensor:
    """(1 - lam) * mean_t CE(O[t], y) + lam * mean((O - phi)^2); the MSE averages over T, B and classes.

    TET sets phi to the neurons' vth (eq. 12); compiled recipes pass the vth of the neurons before the
    output layer, and 1.0 here is the default neuron's.
    """
    _check_output(O)
    T = O.shape[0]
    per_step = F.cross_entropy(O.flatten(0, 1), y.repeat(T))  # = mean_t CE(O[t], y): equal batch sizes
    mse = torch.mean((O - phi) ** 2)
    return (1 - lam) * per_step + lam * mse


def _klt(a: Tensor, b: Tensor, tdis: float) -> Tensor:
    """KLDiv(log_softmax(a/tdis), softmax(detach(b)/tdis)), batchmean, no tdis^2 factor (docs/methods.md §6)."""
    return F.kl_div(F.log_softmax(a / tdis, dim=1), F.softmax(b.detach() / tdis, dim=1), reduction="batchmean")


def sml(O: Tensor, aux: Sequence[Tensor], y: Tensor, alpha: float = 0.5, lam: float = 0.9, tdis: float = 3.0,
        inner: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Surrogate-module learning loss (authors' `SBDistillationLoss`, docs/methods.md §6).

    L_cls = (L_snn + alpha * sum_i CE(y_i, y)) / (1 + N alpha), with L_snn = CE(mean_t O, y) or
    `inner(O, y)` (e.g. functools.partial(tet, lam=0.05) under sml+tet);
    L_kl = sum_i [KLT(y_snn, y_i) + KLT(y_i, y_snn)] / (2N); L = (1 - lam) L_cls + lam L_kl.
    """
    _check_output(O)
    n = len(aux)
    if n == 0:
        raise ValueError("sml needs at least one surrogate-module output")
    y_snn = O.mean(0)
    l_snn = inner(O, y) if inner is not None else F.cross_entropy(y_snn, y)
    l_cls = (l_snn + alpha * sum(F.cross_entropy(a, y) for a in aux)) / (1 + n * alpha)
    l_kl = sum(_klt(y_snn, a, tdis) + _klt(a, y_snn, tdis) for a in aux) / (2 * n)
    return (1 - lam) * l_cls + lam * l_kl


def tet_inner(lam: float = 0.05, phi: float = 1.0) -> Callable[[Tensor, Tensor], Tensor]:
    """The `inner` for sml+tet."""
    return functools.partial(tet, lam=lam, phi=phi)


def predict(O: Tensor) -> Tensor:
    """The prediction rule of every recipe: argmax of mean_t O[t] (docs/methods.md §1)."""
    return O.mean(0).argmax(1)
