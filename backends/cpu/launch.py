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

from snnc.backends.cpu import build, codegen
from snnc.backends.triton.spec import LifSpec
from snnc.ops import torch_engine
from snnc.ops.config import BnAffine, LifConfig
from snnc.ops.mask import CHUNK, uniform_block_torch

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def library(cfg: LifConfig, dtype: torch.dtype, device, fused_bn: bool):
    """The compiled kernels for this layer, or None where the PyTorch path runs instead."""
    if torch.device(device).type != "cpu" or dtype not in _DTYPES:
        return None
    return _library(cfg, _DTYPES[dtype], fused_bn)


@functools.lru_cache(maxsize=512)
def _library(cfg: LifConfig, dtype: str, fused_bn: bool):
    return build.load(LifSpec.from_config(cfg, fused_bn=fused_bn, dtype=dtype, T=None))


@functools.lru_cache(maxsize=512)
def _scalars(cfg: LifConfig) -> torch.Tensor:
    # float64 values; the kernel rounds each once to its element type, as torch rounds a Python float
    return torch.tensor([cfg.decay, cfg.input_scale, cfg.vth, cfg.mask_p, cfg.keep_scale], dtype=torch.float64)


def _threads(N: int) -> int:
    # no more threads than blocks of neurons: waking an idle one costs more than a small block
    return max(1, min(torch.get_num_threads(), -(-N // codegen.BLOCK)))


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
                bn_scale, bn_shift, channels, inner, scalars.data_ptr(), T, N, _threads(N))
    del keep_alive
    return spikes, h


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
    lib.lif_bwd(grad_s.data_ptr(), state.data_ptr(), state.stride(0) if T > 1 else 0, grad.data_ptr(),
                params.data_ptr(), bn_scale, bn_shift, channels, inner, None if u is None else u.data_ptr(),
                scalars.data_ptr(), T, N, _threads(N))
    del keep_alive
    return grad
