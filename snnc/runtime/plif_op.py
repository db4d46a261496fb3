"""`snnc::plif` as a PyTorch custom op (torch.library), for torch.compile, as `snnc::lif` is.

Under torch.compile `run_plif` calls this op: Dynamo records a PLIF layer as one opaque op, AOTAutograd
takes its backward from `register_autograd` (`snnc::plif_backward`), and the fake implementations give
shapes without running a kernel. The ops run the same engines as the eager path, so results are the
same; the backward op allocates dL/dx instead of writing it into the saved h (a custom op may not
return an alias of its input). Layer settings travel as the `LifConfig` fields (`snnc.ops.library`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from snnc.ops.function import record_stats, time_major
from snnc.ops.library import _config, _iteration, config_args
from snnc.runtime.plif_engine import layout, reduce_gk, select_engine


@torch.library.custom_op("snnc::plif", mutates_args=())
def plif_op(x: Tensor, w: Tensor, sg_params: Tensor, iteration: Tensor, decay: float, vth: float, reset: str,
            decay_input: bool, detach_reset: bool, surrogate: str, mask_p: float, rescale: bool, mask_key: int,
            backend: str) -> tuple[Tensor, Tensor]:
    """(spikes in x's shape, h [T, N]) of one PLIF layer."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    k, channels, inner = layout(x, w)
    spikes, h = select_engine(x, backend, cfg).forward(time_major(x), k, channels, inner, cfg, True)
    return spikes.view(x.shape), h


@plif_op.register_fake
def _plif_fake(x, w, *args):
    T = x.shape[0]
    return x.new_empty(x.shape), x.new_empty((T, x.numel() // T))


@torch.library.custom_op("snnc::plif_backward", mutates_args=())
def plif_backward_op(grad: Tensor, h: Tensor, x: Tensor, w: Tensor, sg_params: Tensor, iteration: Tensor,
                     decay: float, vth: float, reset: str, decay_input: bool, detach_reset: bool, surrogate: str,
                     mask_p: float, rescale: bool, mask_key: int, backend: str) -> tuple[Tensor, Tensor]:
    """(dL/dx in x's shape, dL/dw in w's shape) from dL/ds, the saved h and (with decay_input) x."""
    cfg = _config(decay, vth, reset, decay_input, detach_reset, surrogate, mask_p, rescale)
    k, channels, inner = layout(x, w)
    engine = select_engine(h, backend, cfg)
    gx, gk = engine.backward(grad.reshape(h.shape), h, time_major(x) if decay_input else None, k, channels, inner,
                             cfg, sg_params, (mask_key, iteration))
    k_w = torch.sigmoid(w.detach())
    gw = reduce_gk(gk, w, channels, inner).to(w.dtype) * k_w * (1.0 - k_w)
    return gx.reshape(x.shape).contiguous(), gw.reshape(w.shape).contiguous()


@plif_backward_op.register_fake
def _plif_backward_fake(grad, h, x, w, *args):
    return x.new_empty(x.shape), w.new_empty(w.shape)


def _setup(ctx, inputs, output):
    x, w, sg_params, iteration, *rest = inputs
    ctx.save_for_backward(output[1], x, w, sg_params, iteration)
    ctx.rest = rest


def _backward(ctx, grad_spikes, grad_h):
    h, x, w, sg_params, iteration = ctx.saved_tensors
    gx, gw = plif_backward_op(grad_spikes.contiguous(), h, x, w, sg_params, iteration, *ctx.rest)
    return (gx, gw) + (None,) * (2 + len(ctx.rest))


plif_op.register_autograd(_backward, setup_context=_setup)


def call_plif(x, w, cfg, sg_params, mask, backend: str, stats) -> Tensor:
    """A PLIF layer through the custom op (used under torch.compile)."""
    key, iteration = mask
    spikes, h = plif_op(x, w, sg_params, _iteration(iteration), *config_args(cfg), key, backend)
    if stats is not None:
        record_stats(stats, h.detach(), spikes.detach())
    return spikes
