"""Spike tensors packed to one bit per value, and back (docs/memory.md).

The format: value i of the tensor (in memory order, which must be contiguous) is bit
i % 8 of byte i // 8, 1 for 1.0 and 0 for +0.0. `pack` refuses (returns None) a tensor
that holds any other value, -0.0 included, so `unpack(pack(x))` is x bit for bit
whenever packing succeeds; the caller then keeps x as it is. On the CPU a C kernel
(snnc/backends/cpu/bits.py) packs and checks in one pass; elsewhere, and without a C
compiler, PyTorch ops do the same.
"""

from __future__ import annotations

import torch

_INT_OF = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
           torch.bfloat16: torch.int16}
_SHIFTS: dict = {}


def _cpu_kernels(x: torch.Tensor):
    if x.device.type != "cpu":
        return None
    from snnc.backends.cpu import bits as cpu_bits

    return cpu_bits if cpu_bits.usable(x) else None


def _shifts(device) -> torch.Tensor:
    key = torch.device(device)
    if key not in _SHIFTS:
        _SHIFTS[key] = torch.tensor([1 << k for k in range(8)], dtype=torch.uint8, device=device)
    return _SHIFTS[key]


def packable(x: torch.Tensor) -> bool:
    """Whether x has a layout and dtype `pack` takes (its values are checked by `pack` itself)."""
    return x.dtype in _INT_OF and x.is_contiguous() and x.numel() > 0


def pack(x: torch.Tensor) -> torch.Tensor | None:
    """uint8 [ceil(numel / 8)] holding x's values as bits, or None if x is not all 1.0 and +0.0."""
    if not packable(x):
        return None
    kernels = _cpu_kernels(x)
    if kernels is not None:
        return kernels.pack(x)
    flat = x.reshape(-1)
    ones = flat.eq(1)
    if not torch.logical_or(ones, flat.view(_INT_OF[x.dtype]).eq(0)).all():
        return None
    pad = -flat.numel() % 8
    if pad:
        ones = torch.cat([ones, ones.new_zeros(pad)])
    return ones.view(-1, 8).view(torch.uint8).mul(_shifts(x.device)).sum(1, dtype=torch.uint8)


def unpack(bits: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """The first n values held in `bits` as a 1-D tensor of `dtype` (1.0 and +0.0)."""
    if bits.device.type == "cpu":
        from snnc.backends.cpu import bits as cpu_bits

        if cpu_bits.library(dtype) is not None:
            return cpu_bits.unpack(bits, n, dtype)
    values = bits.unsqueeze(1).bitwise_and(_shifts(bits.device)).ne(0).view(-1)[:n]
    return values.to(dtype)
