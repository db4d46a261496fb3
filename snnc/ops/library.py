"""`snnc::lif` and `snnc::bn_lif` as PyTorch custom ops (torch.library), for torch.compile.

Under torch.compile the public `lif`/`bn_lif` (and the `LIF` module) call these ops:
Dynamo records each LIF layer as one opaque op, with no graph break; AOTAutograd takes
its backward from `register_autograd` (the `*_backward` ops); the fake implementations
give output shapes without running a kernel. The ops run the same engines as the eager
path, so outputs and gradients are the same. Eager calls keep the autograd Functions
of `snnc.ops.function`, whose backward writes the gradient into the saved h (one T×N
buffer fewer); the backward ops here allocate their output instead, since a custom op
may not return an alias of its input.

Layer settings travel as plain arguments (the `LifConfig` fields, the surrogate's DSL
spelling, the 63-bit mask key); the iteration of the MSG mask key is a tensor, copied at
forward time by the caller (docs/methods.md §3).
"""

import functools
from typing import Optional

import torch
from torch import Tensor

from snnc.ops.config import LifConfig, compute_dtype, make_config
from snnc.ops.function import BnAffine, BnStats, bn_lif_backward, bn_stats, engine_for, record_stats, time_major


@functools.lru_cache(maxsize=256)
def _config(decay: float, vth: float, reset: str, decay_input: bool, detach_reset: bool, surrogate: str,
            mask_p: float, rescale: bool) -> LifConfig:
    return make_config(decay=decay, vth=vth, reset=reset, decay_input=decay_input, detach_reset=detach_reset,
                       surrogate=surrogate, mask_p=mask_p, rescale=rescale)


def config_args(cfg: LifConfig) -> tuple:
    """The op arguments that stand for `cfg` (`_config` turns them back into it)."""
    return (cfg.decay, cfg.vth, cfg.reset, cfg.decay_input, cfg.detach_reset, str(cfg.surrogate), cfg.mask_p,
            cfg.rescale)


# --- lif --------------------------------------------------------------------------------------

@torch.library.custom_op("snnc::lif", mutates_args=())
def lif_op(x: Tensor, sg_params: Tensor, iteration: Tensor, decay: float, vth: float, reset: str,
           decay_input: bool, detach_reset: bool, surrogate: str, mask_p: float, rescale: bool, mask_key: int,
           backend: str) -> tuple[Tensor, Tensor]:
    """(spikes in x's shape, h [T, N]) of one LIF layer."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    spikes, h = engine_for(x, backend).forward(time_major(x), cfg, None, True)
    return spikes.view(x.shape), h


@lif_op.register_fake
def _lif_fake(x, sg_params, iteration, *args):
    T = x.shape[0]
    return x.new_empty(x.shape), x.new_empty((T, x.numel() // T))


@torch.library.custom_op("snnc::lif_backward", mutates_args=())
def lif_backward_op(grad: Tensor, h: Tensor, sg_params: Tensor, iteration: Tensor, decay: float, vth: float,
                    reset: str, decay_input: bool, detach_reset: bool, surrogate: str, mask_p: float, rescale: bool,
                    mask_key: int, backend: str) -> Tensor:
    """dL/dx [T, N] from dL/ds and the saved h."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    return engine_for(h, backend).backward(grad.reshape(h.shape), h, cfg, sg_params, (mask_key, iteration))


@lif_backward_op.register_fake
def _lif_backward_fake(grad, h, *args):
    return torch.empty_like(h)


def _lif_setup(ctx, inputs, output):
    x, sg_params, iteration, *rest = inputs
    ctx.save_for_backward(output[1], sg_params, iteration)
    ctx.rest, ctx.shape = rest, x.shape


def _lif_backward(ctx, grad_spikes, grad_h):
    h, sg_params, iteration = ctx.saved_tensors
    grad_x = lif_backward_op(grad_spikes.contiguous(), h, sg_params, iteration, *ctx.rest)
    return (grad_x.view(ctx.shape),) + (None,) * (2 + len(ctx.rest))


lif_op.register_autograd(_lif_backward, setup_context=_lif_setup)


# --- bn_lif -----------------------------------------------------------------------------------
# An op with an autograd formula must be functional, so the BN statistics (and the in-place
# update of the running statistics) are computed outside it, with ordinary torch ops under
# no_grad (`bn_stats`, traced by Dynamo). The op takes them as constants; its backward gives
# the full BN gradient through torch's native_batch_norm_backward, as the eager path does.

@torch.library.custom_op("snnc::bn_lif", mutates_args=())
def bn_lif_op(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], mean: Tensor, var: Tensor, rstd: Tensor,
              bn_scale: Tensor, bn_shift: Tensor, sg_params: Tensor, iteration: Tensor, batch_stats: bool, eps: float,
              scale: float, store_h: bool, decay: float, vth: float, reset: str, decay_input: bool,
              detach_reset: bool, surrogate: str, mask_p: float, rescale: bool, mask_key: int,
              backend: str) -> tuple[Tensor, Tensor]:
    """(spikes in x's shape, h [T, N] or an empty tensor) of lif(x * bn_scale[c] + bn_shift[c])."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    bn = BnAffine(bn_scale, bn_shift, x.shape[2], x[0, 0, 0].numel())
    spikes, h = engine_for(x, backend).forward(time_major(x), cfg, bn, store_h)
    return spikes.view(x.shape), h if store_h else x.new_empty((0,))


@bn_lif_op.register_fake
def _bn_lif_fake(x, weight, bias, mean, var, rstd, bn_scale, bn_shift, sg_params, iteration, batch_stats, eps, scale,
                 store_h, *args):
    T = x.shape[0]
    return x.new_empty(x.shape), x.new_empty((T, x.numel() // T)) if store_h else x.new_empty((0,))


@torch.library.custom_op("snnc::bn_lif_backward", mutates_args=())
def bn_lif_backward_op(grad: Tensor, x: Tensor, weight: Optional[Tensor], mean: Tensor, var: Tensor, rstd: Tensor,
                       bn_scale: Tensor, bn_shift: Tensor, sg_params: Tensor, iteration: Tensor, batch_stats: bool,
                       eps: float, scale: float, decay: float, vth: float, reset: str, decay_input: bool,
                       detach_reset: bool, surrogate: str, mask_p: float, rescale: bool, mask_key: int,
                       backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """(dL/dx in x's shape, dL/dweight and dL/dbias [C] in the compute dtype)."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    C = x.shape[2]
    cdt = mean.dtype
    w = weight.detach().to(cdt) if weight is not None else torch.ones(C, dtype=cdt, device=x.device)
    st = BnStats(mean, var, rstd, w, scale, eps, batch_stats, BnAffine(bn_scale, bn_shift, C, x[0, 0, 0].numel()))
    grad_x, grad_w, grad_b = bn_lif_backward(engine_for(x, backend), grad, time_major(x), cfg, sg_params,
                                             (mask_key, iteration), st, True, True)
    return grad_x.reshape(x.shape).contiguous(), grad_w, grad_b


@bn_lif_backward_op.register_fake
def _bn_lif_backward_fake(grad, x, weight, mean, *args):
    C = x.shape[2]
    return x.new_empty(x.shape), mean.new_empty((C,)), mean.new_empty((C,))


def _bn_lif_setup(ctx, inputs, output):
    x, weight, bias, mean, var, rstd, bn_scale, bn_shift, sg_params, iteration, batch_stats, eps, scale = inputs[:13]
    ctx.save_for_backward(x, weight, mean, var, rstd, bn_scale, bn_shift, sg_params, iteration)
    ctx.batch_stats, ctx.eps, ctx.scale, ctx.rest = batch_stats, eps, scale, inputs[14:]
    ctx.dtypes = (None if weight is None else weight.dtype, None if bias is None else bias.dtype)


def _bn_lif_backward(ctx, grad_spikes, grad_h):
    x, weight, mean, var, rstd, bn_scale, bn_shift, sg_params, iteration = ctx.saved_tensors
    grad_x, grad_w, grad_b = bn_lif_backward_op(grad_spikes.contiguous(), x, weight, mean, var, rstd, bn_scale,
                                                bn_shift, sg_params, iteration, ctx.batch_stats, ctx.eps, ctx.scale,
                                                *ctx.rest)
    grad_w = None if ctx.dtypes[0] is None else grad_w.to(ctx.dtypes[0])
    grad_b = None if ctx.dtypes[1] is None else grad_b.to(ctx.dtypes[1])
    return (grad_x, grad_w, grad_b) + (None,) * 21


bn_lif_op.register_autograd(_bn_lif_backward, setup_context=_bn_lif_setup)


# --- calls from the public functions -----------------------------------------------------------

def _iteration(iteration) -> Tensor:
    return iteration if isinstance(iteration, Tensor) else torch.tensor(int(iteration), dtype=torch.int64)


def call_lif(x, cfg: LifConfig, sg_params, mask, backend: str, stats) -> Tensor:
    """`lif` through the custom op (used under torch.compile)."""
    key, iteration = mask
    spikes, h = lif_op(x, sg_params, _iteration(iteration), *config_args(cfg), key, backend)
    if stats is not None:
        record_stats(stats, h.detach(), spikes.detach())
    return spikes


def call_bn_lif(x, weight, bias, running_mean, running_var, training, momentum, eps, scale, cfg: LifConfig,
                sg_params, mask, backend: str, stats) -> Tensor:
    """`bn_lif` through the custom op (used under torch.compile)."""
    key, iteration = mask
    st = bn_stats(x, weight, bias, running_mean, running_var, training, momentum, eps, scale)
    spikes, h = bn_lif_op(x, weight, bias, st.mean, st.var, st.rstd, st.bn.scale, st.bn.shift, sg_params,
                          _iteration(iteration), st.batch_stats, eps, scale, stats is not None, *config_args(cfg), key,
                          backend)
    if stats is not None:
        record_stats(stats, h.detach(), spikes.detach())
    return spikes
