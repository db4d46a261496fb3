"""MSG mask keys and the PyTorch path's mask generator (METHODS.md §3).

A mask is reproducible from (seed, rank, layer, iteration, t, element offset).
`mask_key_seed(seed, rank, layer)` folds the first three into one 63-bit key;
the iteration and the time step stay separate counters so that the Triton
kernels can read the iteration from a device tensor without a host sync.

The Triton path feeds (key; offset, t, iteration) to Philox in-kernel. The
PyTorch path seeds one torch.Generator per (key, iteration, t) and draws
U[0,1) for the N elements of that step. The two paths draw different masks
with the same statistics; each is deterministic for the same key.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    # Steele et al., "Fast splittable pseudorandom number generators": a bijective
    # 64-bit mixer, so distinct inputs give distinct, well-spread keys.
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _fold(*parts: int) -> int:
    h = 0
    for part in parts:
        h = _splitmix64(h ^ (int(part) & _MASK64))
    return h


def mask_key_seed(seed: int | None, rank: int, layer: int) -> int:
    """One non-negative 63-bit key for (seed, rank, layer); seed=None means 0."""
    return _fold(0 if seed is None else seed, rank, layer) >> 1


def step_seed(key: int, iteration: int, t: int) -> int:
    """The torch.Generator seed of time step t at `iteration` (PyTorch path)."""
    return _fold(key, iteration, t) >> 1


def keep_mask_torch(key: int, iteration: int, T: int, N: int, mask_p: float, device) -> torch.Tensor:
    """Bool [T, N]: True where the surrogate gradient is kept (u >= mask_p), PyTorch path."""
    keep = torch.empty((T, N), dtype=torch.bool, device=device)
    for t in range(T):
        keep[t] = keep_step_torch(key, iteration, t, N, mask_p, device)
    return keep


def keep_step_torch(key: int, iteration: int, t: int, N: int, mask_p: float, device) -> torch.Tensor:
    """Bool [N] keep mask of one time step, PyTorch path."""
    gen = torch.Generator(device=device)
    gen.manual_seed(step_seed(key, iteration, t))
    return torch.rand(N, generator=gen, device=device) >= mask_p
