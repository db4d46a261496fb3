"""MSG mask keys and the PyTorch path's mask generator (docs/methods.md §3).

A mask is reproducible from (seed, rank, layer, iteration, t, element offset).
`mask_key_seed(seed, rank, layer)` folds the first three into one 63-bit key;
the iteration and the time step stay separate counters so that the Triton
kernels can read the iteration from a device tensor without a host sync.

The Triton path feeds (key; offset, t, iteration) to Philox in-kernel. The
PyTorch path seeds one torch.Generator per (key, iteration, t, block of
CHUNK elements) and draws U[0,1) for the elements of that block. The two paths draw different masks
with the same statistics; each is deterministic for the same key.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
CHUNK = 1 << 18  # the PyTorch path's block of neurons (see snnc.ops.torch_engine)


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


def uniform_block_torch(key: int, iteration: int, t: int, n0: int, n: int, device) -> torch.Tensor:
    """The float32 draws u ~ U[0,1) of elements n0..n0+n of step t (PyTorch path).

    One generator per (key, iteration, t, block of CHUNK elements): the
    engine draws exactly the block it is working on. n0 must start a block.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(_fold(key, iteration, t, n0 // CHUNK) >> 1)
    return torch.rand(n, generator=gen, device=device)


def keep_mask_torch(key: int, iteration: int, T: int, N: int, mask_p: float, device) -> torch.Tensor:
    """Bool [T, N]: True where the PyTorch path keeps the surrogate gradient (u >= mask_p)."""
    keep = torch.empty((T, N), dtype=torch.bool, device=device)
    for t in range(T):
        for n0 in range(0, N, CHUNK):
            n1 = min(N, n0 + CHUNK)
            keep[t, n0:n1] = uniform_block_torch(key, iteration, t, n0, n1 - n0, device) >= mask_p
    return keep
