"""CPNG math (docs/methods.md §7): chi against sampling, bisection accuracy, the epoch update rule."""

import math

import pytest
import torch

from snnc import cpng


@pytest.mark.parametrize("surrogate,width", [("triangle", lambda b: 1 / b), ("arctan", lambda b: 1 / b),
                                              ("rectangle", lambda b: 1 / (2 * b))])
@pytest.mark.parametrize("beta,mu,sigma,vth", [(1.0, 0.3, 0.8, 1.0), (2.5, 1.1, 0.4, 1.0), (0.7, -0.2, 1.5, 0.5)])
def test_chi_matches_the_fraction_of_samples_inside_the_support(surrogate, width, beta, mu, sigma, vth):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(400_000, generator=g, dtype=torch.float64) * sigma + mu
    inside = ((h - vth).abs() < width(beta)).double().mean().item()
    assert cpng.chi(beta, mu, sigma, vth, surrogate) == pytest.approx(inside, abs=4e-3)


@pytest.mark.parametrize("surrogate", cpng.SUPPORTED)
@pytest.mark.parametrize("target", [0.05, 0.2, 0.5, 0.9])
def test_solve_beta_hits_the_target(surrogate, target):
    mu, sigma = 0.4, 0.9
    beta = cpng.solve_beta(target, mu, sigma, 1.0, surrogate)
    assert cpng.chi(beta, mu, sigma, 1.0, surrogate) == pytest.approx(target, abs=1e-4)


def test_chi_decreases_in_beta():
    values = [cpng.chi(b, 0.5, 1.0) for b in (0.25, 0.5, 1, 2, 4, 8)]
    assert values == sorted(values, reverse=True)


def test_unsupported_surrogate_is_refused():
    with pytest.raises(ValueError, match="CPNG supports"):
        cpng.chi(1.0, 0, 1, surrogate="dspike")


def test_update_rule_first_call_records_and_keeps_beta():
    rec = cpng.ChiRecord(0.2)
    beta, chi = rec.update(1.0, 0.5, 1.0, 1.0, "triangle")
    assert beta == 1.0 and chi == pytest.approx(cpng.chi(1.0, 0.5, 1.0))


def test_beta_rises_when_the_recorded_chi_falls():
    rec = cpng.ChiRecord(0.2)
    rec.update(1.0, 0.5, 1.0, 1.0, "triangle")            # records chi at a wide distribution
    wide = rec.rec
    beta, chi = rec.update(1.0, 0.9, 0.3, 1.0, "triangle")  # membranes concentrate near vth: chi would rise
    assert chi == pytest.approx(wide) and beta > 1.0
    assert cpng.chi(beta, 0.9, 0.3) == pytest.approx(wide, abs=1e-4)
    # a later, lower chi is recorded and beta follows it
    beta2, chi2 = rec.update(beta, 0.0, 3.0, 1.0, "triangle")
    assert chi2 == pytest.approx(cpng.chi(beta, 0.0, 3.0)) and chi2 < wide and beta2 == pytest.approx(beta)


def test_chi_limit_holds():
    rec = cpng.ChiRecord(0.2)
    rec.update(1.0, -5.0, 1.0, 1.0, "triangle")            # chi tiny: below the limit
    assert rec.rec < 0.2
    beta, chi = rec.update(1.0, -5.0, 1.0, 1.0, "triangle")
    assert chi == 0.2
    assert cpng.chi(beta, -5.0, 1.0) == pytest.approx(0.2, abs=1e-4) and beta < 1.0


def test_solve_beta_clamps_out_of_reach_targets():
    assert cpng.solve_beta(0.5, 1e7, 1.0) == pytest.approx(1e-6)  # even the widest support misses it
    assert math.isfinite(cpng.solve_beta(1e-9, 1.0, 1.0))


@pytest.mark.parametrize("sizes", [(1, 500), (7, 64, 3, 250), (40, 40)])
def test_pooled_moments_equal_those_of_the_concatenated_shards(sizes):
    # Shards of unequal sizes with different means and spreads, three layers (columns) at once.
    from snnc.runtime.distributed import pool_moments

    g = torch.Generator().manual_seed(len(sizes))
    shards = [torch.randn(n, 3, generator=g, dtype=torch.float64) * (1 + r) + 2.0 * r for r, n in enumerate(sizes)]
    counts = torch.tensor([[float(len(s))] * 3 for s in shards], dtype=torch.float64)
    means = torch.stack([s.mean(0) for s in shards])
    variances = torch.stack([s.var(0, correction=0) for s in shards])
    mu, var = pool_moments(counts, means, variances, reduce=lambda t: t.sum(0))  # ranks simulated on dim 0
    whole = torch.cat(shards)
    expected_mu = whole.sum(0) / len(whole)
    expected_var = ((whole - expected_mu) ** 2).sum(0) / len(whole)
    torch.testing.assert_close(mu, expected_mu, rtol=1e-13, atol=0)
    torch.testing.assert_close(var, expected_var, rtol=1e-12, atol=0)
