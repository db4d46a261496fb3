"""snnc.losses against independent, loop-by-loop computations of docs/methods.md §4 and §6."""

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc import losses

F64 = torch.float64  # references in double precision, without touching torch's global default


def ce(logits, y):  # cross-entropy written out, averaged over the batch
    return sum(-(logits[b, y[b]] - torch.logsumexp(logits[b], 0)) for b in range(len(y))) / len(y)


def rand(T=5, B=7, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, K, generator=g, dtype=F64) * 2, torch.randint(0, K, (B,), generator=g)


def test_sdt():
    O, y = rand()
    assert losses.sdt(O, y).item() == pytest.approx(ce(O.mean(0), y).item(), rel=1e-12)


@pytest.mark.parametrize("lam,phi", [(0.05, 1.0), (0.0, 1.0), (1.0, 0.5), (0.3, -0.2)])
def test_tet(lam, phi):
    O, y = rand(seed=1)
    T, B, K = O.shape
    per_step = sum(ce(O[t], y) for t in range(T)) / T
    mse = sum((O[t, b, k] - phi) ** 2 for t in range(T) for b in range(B) for k in range(K)) / (T * B * K)
    expected = (1 - lam) * per_step + lam * mse
    assert losses.tet(O, y, lam=lam, phi=phi).item() == pytest.approx(expected.item(), rel=1e-10)


def klt(a, b, tdis):
    """KL(softmax(b/t) || softmax(a/t)) summed over classes, averaged over the batch."""
    p = torch.softmax(b / tdis, 1)
    return (p * (torch.log(p) - torch.log_softmax(a / tdis, 1))).sum() / a.shape[0]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("inner", [None, "tet"])
def test_sml(n, inner):
    O, y = rand(seed=2)
    g = torch.Generator().manual_seed(3)
    aux = [torch.randn(O.shape[1], O.shape[2], generator=g, dtype=F64) for _ in range(n)]
    alpha, lam, tdis = 0.5, 0.9, 3.0
    y_snn = O.mean(0)
    l_snn = ce(y_snn, y) if inner is None else losses.tet(O, y, lam=0.05, phi=1.0)
    l_cls = (l_snn + alpha * sum(ce(a, y) for a in aux)) / (1 + n * alpha)
    l_kl = sum(klt(y_snn, a, tdis) + klt(a, y_snn, tdis) for a in aux) / (2 * n)
    expected = (1 - lam) * l_cls + lam * l_kl
    fn = None if inner is None else functools.partial(losses.tet, lam=0.05, phi=1.0)
    got = losses.sml(O, aux, y, alpha=alpha, lam=lam, tdis=tdis, inner=fn)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)


def test_sml_distillation_targets_are_detached():
    O, y = rand(seed=4)
    O.requires_grad_(True)
    aux = [torch.randn(O.shape[1], O.shape[2], dtype=F64, requires_grad=True)]
    losses.sml(O, aux, y, lam=1.0).backward()  # KL terms only
    # KLT(y_i, y_snn) would move aux toward y_snn through aux's own log-softmax: both get gradients,
    # but never through the detached targets, so the gradient equals that of the two log-softmax terms.
    o2, a2 = O.detach().clone().requires_grad_(True), aux[0].detach().clone().requires_grad_(True)
    y_snn = o2.mean(0)
    ((klt(y_snn, a2.detach(), 3.0) + klt(a2, y_snn.detach(), 3.0)) / 2).backward()
    assert torch.allclose(O.grad, o2.grad) and torch.allclose(aux[0].grad, a2.grad)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(2, 6), st.integers(0, 10_000),
       st.floats(0.01, 20.0))
def test_tet_lemma_4_1(T, B, K, seed, scale):
    """L_SDT <= L_TET at lam = 0, for any output (CE is convex in the logits)."""
    g = torch.Generator().manual_seed(seed)
    O = torch.randn(T, B, K, generator=g, dtype=F64) * scale
    y = torch.randint(0, K, (B,), generator=g)
    assert losses.sdt(O, y).item() <= losses.tet(O, y, lam=0.0).item() + 1e-12


def test_bad_shapes_and_empty_aux():
    O, y = rand()
    with pytest.raises(ValueError, match=r"\[T, B, classes\]"):
        losses.tet(O[0], y)
    with pytest.raises(ValueError, match="at least one"):
        losses.sml(O, [], y)


def test_predict_is_argmax_of_time_mean():
    # T = 3, B = 2, K = 3, built so that the time mean picks another class than the first or
    # last step, a majority vote, the largest single value, or the mean of per-step softmaxes.
    O = torch.tensor([[[2.0, 3.0, -5.0], [-5.0, 2.0, 3.0]],
                      [[2.0, -5.0, 3.0], [3.0, 2.0, -5.0]],
                      [[2.0, 3.0, -5.0], [-5.0, 2.0, 3.0]]], dtype=F64)
    # sample 0: means (2, 1/3, -7/3) -> 0 although steps vote 1, 2, 1; sample 1: (-7/3, 2, 1/3) -> 1
    assert losses.predict(O).tolist() == [0, 1]
    O, _ = rand(seed=5)
    T, B, K = O.shape
    for b in range(B):
        means = [sum(float(O[t, b, k]) for t in range(T)) / T for k in range(K)]
        assert int(losses.predict(O)[b]) == max(range(K), key=means.__getitem__)
