"""Calls the generated CPU kernels: the engine behind `snnc.ops.lif` on the CPU (backend "cpu", and "auto").

Same contract as `snnc.ops.torch_engine` (`forward`, `backward`). float32 and float64 run
the generated kernel; other dtypes, tensors off the CPU and machines without a C compiler
run the PyTorch path (with a one-line note when the compiler is missing). MSG masks use
the PyTorch path's draws (`snnc.ops.mask.uniform_block_torch`), so both CPU engines drop
the same gradients for a key. Threads: torch.get_num_threads().
"""

from __future__ import annotations

import functools

import torch

from snnc.backends.cpu import bn, build, codegen
from snnc.backends.triton.spec import LifSpec
from snnc.ops import torch_engine
from snnc.ops.config import BnAffine, LifConfig, compute_dtype
from snnc.ops.mask import CHUNK, uniform_block_torch

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def library(cfg: LifConfig, dtype: torch.dtype, device, fused_bn: bool):
    """The compiled kernels for this layer, or None where the PyTorch path runs instead."""
    if getattr(device, "type", device) != "cpu" or dtype not in _DTYPES:  # a torch.device or its name
        return None
    return _library(cfg, _DTYPES[dtype], fused_bn)


@functools.lru_cache(maxsize=512)
def _library(cfg: LifConfig, dtype: str, fused_bn: bool):
    return build.load(LifSpec.from_config(cfg, fused_bn=fused_bn, dtype=dtype, T=None))


@functools.lru_cache(maxsize=512)
def _scalars(cfg: LifConfig) -> torch.Tensor:
    # float64 values; the kernel rounds each once to its element type, as torch rounds a Python float
    return torch.tensor([cfg.decay, cfg.input_scale, cfg.vth, cfg.mask_p, cfg.keep_scale], dtype=torch.float64)


def _threads(T: int, N: int) -> int:
    # no more threads than blocks of neurons, nor than bn.MIN_VALUES_PER_THREAD values each: waking
    # an idle thread costs more than a small block, and far more on a loaded machine (docs/kernels.md)
    return max(1, min(bn.threads_for(T * N), -(-N // codegen.BLOCK)))


def _bn_args(bn: BnAffine | None, dtype) -> tuple:
    if bn is None:
        return None, None, 0, 1, ()
    scale, shift = bn.scale.to(dtype).contiguous(), bn.shift.to(dtype).contiguous()
    return scale.data_ptr(), shift.data_ptr(), bn.channels, bn.inner, (scale, shift)


def forward(x2d: torch.Tensor, cfg: LifConfig, bn: BnAffine | None = None, store_h: bool = True):
    """Spikes and (if store_h) h, both [T, N] in x's dtype."""
    lib = library(cfg, x2d.dtype, x2d.device, bn is not None)
    if lib is None:
        return torch_engine.forward(x2d, cfg, bn, store_h)
    T, N = x2d.shape
    spikes = torch.empty((T, N), dtype=x2d.dtype)
    h = torch.empty((T, N), dtype=x2d.dtype) if store_h else None
    scalars = _scalars(cfg)
    bn_scale, bn_shift, channels, inner, keep_alive = _bn_args(bn, x2d.dtype)
    lib.lif_fwd(x2d.data_ptr(), x2d.stride(0) if T > 1 else 0, spikes.data_ptr(), None if h is None else h.data_ptr(),
                bn_scale, bn_shift, channels, inner, scalars.data_ptr(), T, N, _threads(T, N))
    del keep_alive
    return spikes, h


def bn_lif_keeps_h(dtype: torch.dtype, cfg: LifConfig) -> bool:
    """True where this engine runs the PyTorch path (no kernel for the dtype), which keeps h with a fused BN."""
    return library(cfg, dtype, "cpu", True) is None


def _draws(key: int, iteration: int, T: int, N: int) -> torch.Tensor:
    """The PyTorch path's float32 u [T, N] for this mask key (one generator per step and block)."""
    u = torch.empty((T, N), dtype=torch.float32)
    for t in range(T):
        for n0 in range(0, N, CHUNK):
            n1 = min(N, n0 + CHUNK)
            u[t, n0:n1] = uniform_block_torch(key, iteration, t, n0, n1 - n0, "cpu")
    return u


def backward(grad_s: torch.Tensor, state: torch.Tensor, cfg: LifConfig, sg_params: torch.Tensor,
             mask: tuple, bn: BnAffine | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient w.r.t. the LIF input, [T, N] in the state's dtype (see torch_engine.backward)."""
    lib = library(cfg, state.dtype, state.device, bn is not None)
    if lib is None:
        return torch_engine.backward(grad_s, state, cfg, sg_params, mask, bn, out)
    T, N = state.shape
    grad_s = grad_s.to(state.dtype).contiguous()
    grad = torch.empty((T, N), dtype=state.dtype) if out is None else out
    params = sg_params.detach().to("cpu", torch.float64).contiguous()
    u = _draws(mask[0], int(mask[1]), T, N) if cfg.masked else None
    scalars = _scalars(cfg)
    bn_scale, bn_shift, channels, inner, keep_alive = _bn_args(bn, state.dtype)
    bn_args = (None, None, None, 0, None, None) if bn is not None else ()  # dL/dy only: no BN backward
    lib.lif_bwd(grad_s.data_ptr(), state.data_ptr(), state.stride(0) if T > 1 else 0, grad.data_ptr(),
                params.data_ptr(), bn_scale, bn_shift, channels, inner, None if u is None else u.data_ptr(),
                scalars.data_ptr(), T, N, _threads(T, N), *bn_args)
    del keep_alive
    return grad


def bn_lif_backward(grad_s: torch.Tensor, x2d: torch.Tensor, cfg: LifConfig, sg_params: torch.Tensor, mask: tuple,
                    st, need_w: bool, need_b: bool):
    """The whole backward of a fused BN+LIF layer in one kernel call (snnc.ops.function.bn_lif_backward's
    contract): (dL/dx [T, N] in x's dtype, dL/dweight and dL/dbias [C] in the compute dtype, or None).

    The reverse loop sums dL/dy and dL/dy * (x - mean) per channel as it produces dL/dy, and a
    second pass turns dL/dy into dL/dx in place: torch's native_batch_norm_backward, without
    reading dL/dy and x once more for its sums. Falls back to the PyTorch path without a kernel.
    """
    from snnc.ops.function import bn_lif_backward_torch

    lib = library(cfg, x2d.dtype, x2d.device, True)
    if lib is None:
        return bn_lif_backward_torch(torch_engine, grad_s, x2d, cfg, sg_params, mask, st, need_w, need_b)
    T, N = x2d.shape
    dtype, cdt, C = x2d.dtype, compute_dtype(x2d.dtype), st.bn.channels
    grad_s = grad_s.reshape(T, N).to(dtype).contiguous()
    grad = torch.empty((T, N), dtype=dtype)
    params = sg_params.detach().to("cpu", torch.float64).contiguous()
    u = _draws(mask[0], int(mask[1]), T, N) if cfg.masked else None
    bn_scale, bn_shift, channels, inner, keep_alive = _bn_args(st.bn, dtype)
    scaled_weight = st.weight if st.scale == 1.0 else st.weight * st.scale
    per_channel = [t.to(dtype).contiguous() for t in (st.mean, st.rstd, scaled_weight)]
    grad_w = torch.empty(C, dtype=torch.float64)
    grad_b = torch.empty(C, dtype=torch.float64)
    ok = lib.lif_bwd(grad_s.data_ptr(), x2d.data_ptr(), x2d.stride(0) if T > 1 else 0, grad.data_ptr(),
                     params.data_ptr(), bn_scale, bn_shift, channels, inner, None if u is None else u.data_ptr(),
                     _scalars(cfg).data_ptr(), T, N, _threads(T, N), *[t.data_ptr() for t in per_channel],
                     int(st.batch_stats), grad_w.data_ptr(), grad_b.data_ptr())
    del keep_alive
    if not ok:
        raise MemoryError(f"the fused BN+LIF backward could not allocate its {N // inner} partial sums")
    if need_w and st.scale != 1.0:
        grad_w.mul_(st.scale)
    return grad, (grad_w.to(cdt) if need_w else None), (grad_b.to(cdt) if need_b else None)
