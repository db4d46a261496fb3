"""Autograd Functions for the fused LIF op, shared by the PyTorch and Triton engines.

An engine is a module with `forward(x2d, cfg, bn, store_h)` and
`backward(grad_s, state, cfg, sg_params, mask, bn, out)` (see
`snnc.ops.torch_engine`). The Functions here own the saved state:
`LifFunction` saves h only (one T×N tensor; spikes are recomputed from it),
`BnLifFunction` saves x only (BN backward needs it anyway; h is recomputed).
"""

from __future__ import annotations

import math
import os

import torch
from torch.autograd.function import once_differentiable

from snnc.diagnostics import SnncError
from snnc.ops import torch_engine
from snnc.ops.config import BnAffine, LifConfig, compute_dtype


def engine_for(x: torch.Tensor, backend: str):
    """The engine module for `backend` ("auto", "triton", "cpu" or "torch") and x's device.

    "auto" is Triton on CUDA and the generated CPU kernel on the CPU, which itself runs the
    PyTorch path where it cannot run (no C compiler, float16/bfloat16).
    """
    if backend == "auto":
        if not x.is_cuda:
            backend = "cpu" if x.device.type == "cpu" else "torch"
        else:
            try:
                import triton  # noqa: F401
            except ImportError:
                backend = "torch"
            else:
                backend = "triton"
    if backend == "torch":
        return torch_engine
    if backend == "cpu":
        if x.device.type != "cpu":
            raise SnncError(f"backend='cpu' runs the generated CPU kernel and needs a CPU tensor, got one on {x.device}")
        from snnc.backends.cpu import launch as cpu_launch

        return cpu_launch
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise SnncError(f"backend='triton' needs a CUDA tensor, got one on {x.device}",
                        hint="set TRITON_INTERPRET=1 in the environment before the first call to run the "
                             "Triton kernels on the CPU (slow; for tests), or use backend='torch'")
    try:
        from snnc.backends.triton import launch
    except ImportError as exc:
        raise SnncError(f"backend='triton' needs Triton: {exc}", hint="pip install triton, or use backend='torch'")
    return launch


def time_major(x: torch.Tensor) -> torch.Tensor:
    """x viewed as [T, N] with unit stride inside a step (copies only if it must)."""
    T = x.shape[0]
    try:
        x2d = x.view(T, -1)
    except RuntimeError:
        x2d = x.reshape(T, -1)
    return x2d if x2d.stride(1) == 1 or x2d.shape[1] <= 1 else x2d.contiguous()


def record_stats(stats: dict | None, h: torch.Tensor, spikes: torch.Tensor) -> None:
    """Fills `stats` with detached 0-d float32 h_mean, h_std (population) and spike_rate."""
    if stats is None:
        return
    hc = h.to(compute_dtype(h.dtype))
    std, mean = torch.std_mean(hc, correction=0)
    stats["h_mean"] = mean.float()
    stats["h_std"] = std.float()
    stats["spike_rate"] = spikes.to(hc.dtype).mean().float()


def run_no_grad(x, cfg: LifConfig, engine, bn: BnAffine | None, stats) -> torch.Tensor:
    """Forward only (inference): h is stored only if statistics are requested."""
    spikes, h = engine.forward(time_major(x), cfg, bn, stats is not None)
    if stats is not None:
        record_stats(stats, h, spikes)
    return spikes.view(x.shape)


class LifFunction(torch.autograd.Function):
    """spikes = lif(x); saves h [T, N] and the surrogate parameter tensor.

    Backward writes dL/dx into h's own storage, since h is dead once read: the
    peak memory of forward+backward is then spikes + h, not spikes + h + grad.
    The price is that this graph can be backpropagated once (no retain_graph).
    """

    @staticmethod
    def forward(ctx, x, sg_params, cfg, engine, mask, stats):
        spikes, h = engine.forward(time_major(x), cfg, None, True)
        record_stats(stats, h, spikes)
        ctx.save_for_backward(h, sg_params)
        ctx.cfg, ctx.engine, ctx.mask, ctx.shape = cfg, engine, mask, x.shape
        return spikes.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        if getattr(ctx, "consumed", False):
            raise SnncError("snnc.ops.lif cannot backpropagate through the same forward twice: its saved "
                            "membrane was overwritten by the first gradient",
                            hint="run the forward again instead of backward(retain_graph=True)")
        ctx.consumed = True
        h, sg_params = ctx.saved_tensors
        grad_x = ctx.engine.backward(grad.reshape(h.shape), h, ctx.cfg, sg_params, ctx.mask, out=h)
        return grad_x.view(ctx.shape), None, None, None, None, None


class BnStats:
    """Per-channel BN quantities for one call (docs/methods.md §9), all [C] in the compute dtype."""

    def __init__(self, mean, var, rstd, weight, scale: float, eps: float, batch_stats: bool, bn: BnAffine):
        self.mean, self.var, self.rstd, self.weight, self.scale, self.eps = mean, var, rstd, weight, scale, eps
        self.batch_stats = batch_stats  # gradients flow through mean and var
        self.bn = bn


def channel_stats(x: torch.Tensor, cdt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population variance) [C] in `cdt` of x [T, B, C, ...] over T, B and the spatial dims.

    On the CPU the one-pass C kernel (snnc.backends.cpu.bn) serves every engine, the PyTorch path
    included, so their spikes stay bit-identical; elsewhere, under torch.compile, or without a C
    compiler, torch.batch_norm_update_stats (torch's BN statistics) on the merged [T*B, C, inner] batch.
    """
    T, B, C = x.shape[:3]
    inner = math.prod(x.shape[3:])
    if x.device.type == "cpu" and not torch.compiler.is_compiling():  # a ctypes call would break the graph
        from snnc.backends.cpu import bn as cpu_bn

        x2d = time_major(x)
        got = cpu_bn.batch_stats(x2d if x2d.dtype == cdt else x2d.to(cdt), C, inner)
        if got is not None:
            return got[0].to(cdt), got[1].to(cdt)
    mean, var = torch.batch_norm_update_stats(x.reshape(T * B, C, inner).to(cdt), None, None, 0.0)
    return mean, var


def _cpu_stats_folded(x, inner, weight, bias, running_mean, running_var, training, momentum, eps, scale):
    """The batch statistics, running-statistics update and fold in one C call (snnc.backends.cpu.bn)
    where it runs: training (or no running statistics) on the CPU, x in its compute dtype, outside
    torch.compile. None elsewhere."""
    if not (training or running_mean is None) or x.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    if x.dtype != compute_dtype(x.dtype):
        return None
    from snnc.backends.cpu import bn as cpu_bn

    update = (running_mean, running_var) if training else (None, None)
    return cpu_bn.batch_stats_folded(time_major(x), x.shape[2], inner, *update, weight, bias, momentum, eps, scale)


def bn_stats(x, weight, bias, running_mean, running_var, training, momentum, eps, scale) -> BnStats:
    """Statistics over (T, B, spatial) per channel; updates running stats like torch BatchNorm."""
    C = x.shape[2]
    cdt = compute_dtype(x.dtype)
    inner = math.prod(x.shape[3:])
    with torch.no_grad():
        folded = _cpu_stats_folded(x, inner, weight, bias, running_mean, running_var, training, momentum, eps, scale)
        if folded is not None:
            mean, var, rstd, affine_scale, shift = folded
            w = weight.detach() if weight is not None else torch.ones(C, dtype=cdt)
            return BnStats(mean, var, rstd, w, scale, eps, True, BnAffine(affine_scale, shift, C, inner))
        if training or running_mean is None:
            mean, var = channel_stats(x, cdt)
            if training and running_mean is not None:
                n = x.numel() // C
                running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
                unbiased = var * (n / max(n - 1, 1))
                running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
            batch_stats = True
        else:
            mean, var = running_mean, running_var
            batch_stats = False
        rstd, affine_scale, shift = fold(mean, var, weight, bias, eps, scale, cdt)
        w = weight.detach().to(cdt) if weight is not None else torch.ones(C, dtype=cdt, device=x.device)
    return BnStats(mean.to(cdt), var.to(cdt), rstd, w, scale, eps, batch_stats, BnAffine(affine_scale, shift, C, inner))


def fold(mean, var, weight, bias, eps: float, scale: float, cdt: torch.dtype):
    """(rstd, a, b) [C] in `cdt` with y = x * a + b the BN of docs/methods.md §9: computed in float64
    and rounded once, as the C statistics kernel's `fold` and snnc.export's folding do, so the
    trained model in eval mode and its deployed copy share their per-channel factors bit for bit."""
    mean, var = mean.to(torch.float64), var.to(torch.float64)
    root = torch.sqrt(var + eps)
    a = (weight.detach().to(torch.float64) * scale if weight is not None else torch.full_like(var, scale)) / root
    b = (bias.detach().to(torch.float64) if bias is not None else torch.zeros_like(var)) - mean * a
    return (1.0 / root).to(cdt), a.to(cdt), b.to(cdt)


def keeps_h(engine, dtype: torch.dtype, cfg: LifConfig) -> bool:
    """Whether a fused BN+LIF layer on `engine` keeps h for its backward besides x (the PyTorch path,
    `torch_engine.bn_lif_keeps_h`) instead of recomputing h from x in its backward kernel."""
    own = getattr(engine, "bn_lif_keeps_h", None)
    return bool(own is not None and own(dtype, cfg))


def fusion_loses(engine, x: torch.Tensor, cfg: LifConfig) -> bool:
    """Whether a fused BN+LIF layer is slower here than torch's BatchNorm followed by `lif`, and so
    runs as that: on the PyTorch path (`keeps_h`) without the C statistics kernel (no C compiler).
    There the fused loop only adds work to torch's own BN (bench/bn_lif.py, "torch, no cc":
    1.0-1.2x); with the C statistics it wins (docs/kernels.md, "bn_lif")."""
    if x.device.type != "cpu" or not keeps_h(engine, x.dtype, cfg):
        return False
    from snnc.backends.cpu import bn as cpu_bn

    if cpu_bn.library(compute_dtype(x.dtype)) is not None:
        return False
    from snnc.backends.cpu import build

    build.note("fused BN+LIF layers run as torch's BatchNorm then lif: without a C compiler that is faster")
    return True


class BnLifFunction(torch.autograd.Function):
    """spikes = lif(BN(x)) with BN folded into the LIF loops; saves x [T, N] only (and h on the PyTorch path)."""

    @staticmethod
    def forward(ctx, x, weight, bias, sg_params, cfg, engine, mask, stats_bn: BnStats, stats, replay=False):
        x2d = time_major(x)  # rows in [B, C, *spatial] order, as BnAffine's channel map assumes
        keep_h = keeps_h(engine, x2d.dtype, cfg)
        ctx.cfg, ctx.engine, ctx.mask, ctx.stats_bn, ctx.shape = cfg, engine, mask, stats_bn, x.shape
        ctx.dtypes = (weight.dtype if weight is not None else None, bias.dtype if bias is not None else None)
        if replay and not keep_h:  # run again in backward for its gradients only (snnc.ops.memory): no spikes needed
            ctx.save_for_backward(x2d, sg_params, None)
            return torch.empty_like(x)
        spikes, h = engine.forward(x2d, cfg, stats_bn.bn, stats is not None or keep_h)
        ctx.save_for_backward(x2d, sg_params, h if keep_h else None)
        record_stats(stats, h, spikes)
        return spikes.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x2d, sg_params, h = ctx.saved_tensors
        need_w, need_b = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if h is None:
            grad_x, grad_w, grad_b = bn_lif_backward(ctx.engine, grad, x2d, ctx.cfg, sg_params, ctx.mask,
                                                     ctx.stats_bn, need_w, need_b)
        else:  # h kept: dL/dy written into its storage, as LifFunction does, then torch's BN backward
            if getattr(ctx, "consumed", False):
                raise SnncError("snnc.ops.bn_lif cannot backpropagate through the same forward twice on the "
                                "PyTorch path: its saved membrane was overwritten by the first gradient",
                                hint="run the forward again instead of backward(retain_graph=True)")
            ctx.consumed = True
            grad_y = ctx.engine.backward(grad.reshape(h.shape), h, ctx.cfg, sg_params, ctx.mask, out=h)
            grad_x, grad_w, grad_b = torch_bn_backward(grad_y, x2d, ctx.stats_bn, need_w, need_b)
        grad_x = grad_x.view(ctx.shape)
        grad_w = grad_w.to(ctx.dtypes[0]) if need_w else None
        grad_b = grad_b.to(ctx.dtypes[1]) if need_b else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def bn_lif_backward(engine, grad, x2d, cfg: LifConfig, sg_params, mask, st: BnStats, need_w: bool, need_b: bool):
    """(dL/dx in x's dtype, any layout of x's size, dL/dweight, dL/dbias in the compute dtype, or None).

    An engine with its own `bn_lif_backward` (the C kernel: BN's sums taken in the LIF backward
    loop) runs it; the others run `bn_lif_backward_torch`.
    """
    own = getattr(engine, "bn_lif_backward", None)
    if own is not None:
        return own(grad, x2d, cfg, sg_params, mask, st, need_w, need_b)
    return bn_lif_backward_torch(engine, grad, x2d, cfg, sg_params, mask, st, need_w, need_b)


def bn_lif_backward_torch(engine, grad, x2d, cfg: LifConfig, sg_params, mask, st: BnStats, need_w: bool,
                          need_b: bool):
    """`bn_lif_backward` with torch's BN backward: the LIF backward recomputes h from x and gives
    dL/dy; BN backward (docs/methods.md §9) is torch's own kernel: y = (weight * scale) * xhat + bias,
    so the weight it sees is weight * scale and its weight gradient is scaled back.
    """
    grad_y = engine.backward(grad.reshape(x2d.shape), x2d, cfg, sg_params, mask, st.bn)
    return torch_bn_backward(grad_y, x2d, st, need_w, need_b)


def torch_bn_backward(grad_y, x2d, st: BnStats, need_w: bool, need_b: bool):
    """dL/dx (in grad_y's dtype), dL/dweight, dL/dbias of BN from dL/dy [T, N] by torch's own kernel."""
    cdt, C, inner = st.mean.dtype, st.bn.channels, st.bn.inner
    gy = grad_y.view(-1, C, inner).to(cdt)
    x3 = x2d.reshape(-1, C, inner).to(cdt)
    stats = (None, None, st.mean, st.rstd) if st.batch_stats else (st.mean, st.var, None, None)
    grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
        gy, x3, st.weight * st.scale, *stats, st.batch_stats, st.eps, [True, need_w, need_b])
    grad_x = grad_x.to(grad_y.dtype)
    return grad_x, (grad_w * st.scale if need_w else None), (grad_b if need_b else None)
