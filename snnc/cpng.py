"""CPNG math (docs/methods.md §7): the proportion chi of membrane potentials inside the
surrogate's support, and the beta that gives a target chi."""

from __future__ import annotations

import math

SUPPORTED = ("triangle", "rectangle", "arctan")


def half_width(beta: float, surrogate: str = "triangle") -> float:
    """w(beta): 1/beta (triangle, arctan) or 1/(2 beta) (rectangle)."""
    if surrogate not in SUPPORTED:
        raise ValueError(f"CPNG supports {', '.join(SUPPORTED)}, not '{surrogate}'")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return 1.0 / (2 * beta) if surrogate == "rectangle" else 1.0 / beta


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def chi(beta: float, mu: float, sigma: float, vth: float = 1.0, surrogate: str = "triangle") -> float:
    """Phi((vth + w - mu)/sigma) - Phi((vth - w - mu)/sigma) for h ~ N(mu, sigma^2)."""
    w = half_width(beta, surrogate)
    sigma = max(float(sigma), 1e-12)
    return _phi((vth + w - mu) / sigma) - _phi((vth - w - mu) / sigma)


def solve_beta(chi_target: float, mu: float, sigma: float, vth: float = 1.0, surrogate: str = "triangle",
               lo: float = 1e-6, hi: float = 1e6, iters: int = 200) -> float:
    """The beta with chi(beta) = chi_target, by bisection (chi decreases in beta); clamped to [lo, hi]."""
    if not 0.0 < chi_target < 1.0:
        raise ValueError(f"chi_target must be in (0, 1), got {chi_target}")
    if chi(lo, mu, sigma, vth, surrogate) <= chi_target:
        return lo
    if chi(hi, mu, sigma, vth, surrogate) >= chi_target:
        return hi
    a, b = math.log(lo), math.log(hi)  # bisect in log space: beta spans many decades
    for _ in range(iters):
        mid = 0.5 * (a + b)
        if chi(math.exp(mid), mu, sigma, vth, surrogate) > chi_target:
            a = mid
        else:
            b = mid
        if b - a < 1e-12:
            break
    return math.exp(0.5 * (a + b))


class ChiRecord:
    """The once-per-epoch update rule of docs/methods.md §7 for one layer."""

    def __init__(self, chi_limit: float = 0.2):
        self.chi_limit = chi_limit
        self.rec: float | None = None

    def update(self, beta: float, mu: float, sigma: float, vth: float, surrogate: str) -> tuple[float, float]:
        """(new beta, recorded chi) after one epoch's statistics."""
        current = chi(beta, mu, sigma, vth, surrogate)
        if self.rec is None:
            self.rec = current
            return beta, self.rec
        if self.rec < self.chi_limit:
            self.rec = self.chi_limit
        elif current < self.rec:
            self.rec = current
        if self.rec != current:
            beta = solve_beta(self.rec, mu, sigma, vth, surrogate)
        return beta, self.rec
