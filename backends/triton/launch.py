"""Launches the generated LIF kernels: the Triton engine behind `snnc.ops.lif`.

Same contract as `snnc.ops.torch_engine` (`forward`, `backward`), plus
`keep_mask`, which returns the MSG mask exactly as the backward kernel draws
it, so tests and the reference can apply the identical mask.

One program handles BLOCK neurons for all T steps; x rows may be any stride
apart (unit stride inside a row), everything else is contiguous [T, N].
"""

from __future__ import annotations

import functools

import torch
import triton

from snnc.backends.triton.loader import load_kernel
from snnc.backends.triton.spec import LifSpec
from snnc.diagnostics import SnncError
from snnc.ops.config import BnAffine, LifConfig, compute_dtype

BLOCK = 1024
NUM_WARPS = 4
MAX_STATIC_T = 32  # longer sequences use the runtime-T kernels instead of unrolling
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
                torch.float64: "float64"}


def spec_for(cfg: LifConfig, dtype: torch.dtype, T: int, fused_bn: bool) -> LifSpec:
    if dtype not in _DTYPE_NAMES:
        raise SnncError(f"the Triton LIF kernels take float32, float16, bfloat16 or float64, not {dtype}")
    return LifSpec.from_config(cfg, fused_bn=fused_bn, dtype=_DTYPE_NAMES[dtype],
                               T=T if T <= MAX_STATIC_T else None)


def _check_size(T: int, N: int) -> None:
    # Offsets are 32-bit inside the kernels; the element offset is also the Philox counter.
    if T * N >= 2**31:
        raise SnncError(f"a LIF layer of T*N = {T * N} elements is too large for one launch (limit 2^31)",
                        hint="split the batch")


def _launch(kernel, N: int, *args, **kwargs):
    # T goes by keyword: a runtime argument or a constexpr, depending on the spec.
    kernel[(triton.cdiv(N, BLOCK),)](*args, BLOCK=BLOCK, num_warps=NUM_WARPS, **kwargs)


def _bn_args(bn: BnAffine | None) -> tuple:
    if bn is None:
        return ()
    return (bn.scale.contiguous(), bn.shift.contiguous(), bn.channels, bn.inner)  # compute dtype


@functools.lru_cache(maxsize=256)
def _scalar_tensor(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Cached per (values, dtype, device): one host-to-device copy per layer setting, ever.
    return torch.tensor(values, dtype=dtype, device=device)


def scalars(cfg: LifConfig, dtype: torch.dtype, device) -> torch.Tensor:
    """[decay, input_scale, vth, mask_p, keep_scale] in the compute dtype of `dtype` (hooks.SCALARS).

    The kernels load these instead of taking Python floats, which Triton types as float32 on a
    GPU: float64 kernels then compute with the exact float64 values on every target.
    """
    values = (cfg.decay, cfg.input_scale, cfg.vth, cfg.mask_p, cfg.keep_scale)
    return _scalar_tensor(values, compute_dtype(dtype), torch.device(device))


def forward(x2d: torch.Tensor, cfg: LifConfig, bn: BnAffine | None = None, store_h: bool = True):
    """Spikes and (if store_h) h, both [T, N] in x's dtype."""
    T, N = x2d.shape
    _check_size(T, N)
    spec = spec_for(cfg, x2d.dtype, T, bn is not None)
    spikes = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device)
    h = torch.empty((T, N), dtype=x2d.dtype, device=x2d.device) if store_h else None
    _launch(load_kernel(spec, "fwd"), N, x2d, spikes, h if store_h else spikes, *_bn_args(bn),
            scalars(cfg, x2d.dtype, x2d.device), N, x2d.stride(0), STORE_H=store_h, T=T)
    return spikes, h


def _iteration_tensor(iteration, device) -> torch.Tensor:
    if isinstance(iteration, torch.Tensor):
        return iteration.to(device=device, dtype=torch.int64).reshape(())
    return torch.tensor(int(iteration), dtype=torch.int64, device=device)


def backward(grad_s: torch.Tensor, state: torch.Tensor, cfg: LifConfig, sg_params: torch.Tensor,
             mask: tuple, bn: BnAffine | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient w.r.t. the LIF input, [T, N] in the state's dtype (see torch_engine.backward).

    `out` may be the saved h: each program reads h[t] before writing grad[t] at the same offsets.
    """
    T, N = state.shape
    _check_size(T, N)
    spec = spec_for(cfg, state.dtype, T, bn is not None)
    grad_s = grad_s.contiguous()
    grad = torch.empty((T, N), dtype=state.dtype, device=state.device) if out is None else out
    mask_args = ()
    if spec.masked:
        key, iteration = mask
        mask_args = (_iteration_tensor(iteration, state.device), key)
    stride = (state.stride(0),) if bn is not None else ()
    sg = sg_params.to(device=state.device).contiguous()  # any float dtype; the kernel converts
    _launch(load_kernel(spec, "bwd"), N, grad_s, state, grad, sg, *_bn_args(bn), scalars(cfg, state.dtype, state.device),
            *mask_args, N, *stride, T=T)
    return grad


def keep_mask(key: int, iteration, T: int, N: int, mask_p: float, device) -> torch.Tensor:
    """Bool [T, N]: True where the backward kernel keeps the surrogate gradient (docs/methods.md §3)."""
    _check_size(T, N)
    spec = LifSpec(reset="hard", decay_input=False, detach_reset=False, surrogate="triangle", masked=True,
                   rescale=False, fused_bn=False, dtype="float32", T=T if T <= MAX_STATIC_T else None)
    keep = torch.empty((T, N), dtype=torch.int8, device=device)
    values = (0.0, 1.0, 0.0, float(mask_p), 1.0)  # only mask_p is read
    _launch(load_kernel(spec, "mask"), N, keep, _iteration_tensor(iteration, device), key,
            _scalar_tensor(values, torch.float32, torch.device(device)), N, T=T)
    return keep.bool()
