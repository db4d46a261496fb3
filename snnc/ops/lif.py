"""The public LIF ops: `lif(x, ...)` and `bn_lif(x, weight, bias, ...)` (docs/methods.md §1-§3, §9)."""

from __future__ import annotations

import torch

from snnc.diagnostics import SnncError
from snnc.ops import library
from snnc.ops.config import DEFAULT_DECAY, LifConfig, check_backend, check_input, make_config, surrogate_params
from snnc.ops.function import (BnLifFunction, LifFunction, bn_stats, engine_for, fusion_loses, record_stats,
                               run_no_grad)
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from snnc.ops.reference import lif_reference


def _mask(seed, mask_key, masked: bool) -> tuple[int, object]:
    """(63-bit key of seed, rank, layer; iteration), all fixed at the time of the forward.

    The iteration may be a tensor (the LIF module's counter, possibly on the
    GPU): it is copied here, without a host sync, so that a later forward that
    increments the counter before this graph's backward cannot change the mask
    this backward draws (docs/methods.md §3: the key is that of the forward).
    """
    try:
        rank, layer, iteration = mask_key
    except (TypeError, ValueError):
        raise SnncError(f"mask_key must be (rank, layer, iteration), not {mask_key!r}") from None
    if masked and isinstance(iteration, torch.Tensor):
        iteration = iteration.detach().clone()
    return mask_key_seed(seed, int(rank), int(layer)), iteration


def _reference(x, cfg, sg_params, mask, stats):
    """backend="reference": the eager loop, with the PyTorch path's MSG mask."""
    keep = None
    if cfg.masked:
        T = x.shape[0]
        keep = keep_mask_torch(mask[0], int(mask[1]), T, x[0].numel(), cfg.mask_p, x.device).view(x.shape)
    record = {} if stats is not None else None
    spikes = lif_reference(x, decay=cfg.decay, vth=cfg.vth, reset=cfg.reset, decay_input=cfg.decay_input,
                           detach_reset=cfg.detach_reset, surrogate=str(cfg.surrogate),
                           sg_params=None if sg_params is None else sg_params.tolist(),
                           keep=keep, mask_p=cfg.mask_p, rescale=cfg.rescale, record=record)
    if stats is not None:
        record_stats(stats, record["h"], spikes.detach())
    return spikes


def lif(x: torch.Tensor, *, decay=DEFAULT_DECAY, tau=None, vth=1.0, reset="hard", decay_input=False,
        detach_reset=False, surrogate="triangle(beta=1.0)", sg_params=None, mask_p=0.0, rescale=False,
        seed=None, mask_key=(0, 0, 0), backend="auto", stats: dict | None = None) -> torch.Tensor:
    """LIF spikes over all T steps of x [T, ...] (docs/methods.md §1), same shape and dtype as x.

    - `decay` in (0, 1], or `tau` > 1 instead (decay = 1 - 1/tau); not both.
    - `surrogate` is a DSL spelling (docs/methods.md §2); `sg_params` (1-D, catalog
      order) overrides its parameters at run time without recompiling.
    - MSG (docs/methods.md §3): with `mask_p` > 0 the surrogate gradient is kept with
      probability 1 - mask_p, reproducibly from `seed` and
      `mask_key=(rank, layer, iteration)`; `rescale` divides kept gradients
      by (1 - mask_p). The forward never changes.
    - `backend`: "auto" (Triton on CUDA, PyTorch on CPU), "triton", "torch",
      or "reference" (plain autograd through an eager loop).
    - `stats`: a dict that receives detached 0-d float32 `h_mean`, `h_std`
      (population, over all elements of h) and `spike_rate`.

    The fused backends save only h for backward and write the gradient into
    its storage, so one forward supports one backward (no retain_graph).
    """
    check_input(x)
    check_backend(backend)
    cfg = make_config(decay=decay, tau=tau, vth=vth, reset=reset, decay_input=decay_input,
                      detach_reset=detach_reset, surrogate=surrogate, mask_p=mask_p, rescale=rescale)
    return run_lif(x, cfg, sg_params, seed, mask_key, backend, stats)


def run_lif(x: torch.Tensor, cfg: LifConfig, sg_params, seed, mask_key, backend: str, stats,
            replay: bool = False) -> torch.Tensor:
    """`lif` for an already validated x, backend and `LifConfig` (the `LIF` module's per-call path).

    Eager calls run the autograd Function; under torch.compile the `snnc::lif` custom op
    (snnc.ops.library), which Dynamo records as one op. `replay` (a segment run again in
    backward, snnc.ops.memory) changes nothing here: LifFunction's forward writes the h its
    backward reads, which costs less than recomputing h inside the backward kernels.
    """
    mask = _mask(seed, mask_key, cfg.masked)
    if backend == "reference":
        sg = None if sg_params is None else surrogate_params(cfg, sg_params, "cpu")
        return _reference(x, cfg, sg, mask, stats)
    sg = surrogate_params(cfg, sg_params, x.device)
    if torch.compiler.is_compiling():
        return library.call_lif(x, cfg, sg, mask, backend, stats)
    engine = engine_for(x, backend)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return run_no_grad(x, cfg, engine, None, stats)
    return LifFunction.apply(x, sg, cfg, engine, mask, stats)


def _check_bn_args(x, weight, bias, running_mean, running_var) -> None:
    if x.dim() < 3:
        raise SnncError(f"bn_lif expects x of shape [T, B, C, ...], got shape {tuple(x.shape)}")
    C = x.shape[2]
    for name, tensor in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                         ("running_var", running_var)):
        if tensor is not None and tensor.shape != (C,):
            raise SnncError(f"bn_lif: {name} must have shape ({C},) for {C} channels, got {tuple(tensor.shape)}")
    if (running_mean is None) != (running_var is None):
        raise SnncError("bn_lif: give both running_mean and running_var, or neither")


def bn_lif(x: torch.Tensor, weight, bias, running_mean, running_var, *, training: bool, momentum: float,
           eps: float, scale: float = 1.0, sg_params=None, seed=None, mask_key=(0, 0, 0), backend="auto",
           stats: dict | None = None, **neuron) -> torch.Tensor:
    """lif(BatchNorm(x)) with the normalisation and affine folded into the LIF loops (docs/methods.md §9).

    x is [T, B, C, ...]; statistics are per channel (dim 2) over T, B and the
    spatial dims. y = weight * (scale * (x - mean) / sqrt(var + eps)) + bias,
    with `scale` the tdBN factor a*vth. In training the batch statistics are
    used and running_mean/running_var are updated in place as torch
    BatchNorm does (unbiased variance, `momentum`); otherwise the running
    statistics are used. The other arguments are those of `lif`. Gradients
    w.r.t. x, weight and bias equal those of BatchNorm followed by `lif`.
    The generated kernels save only x and recompute h in backward; the PyTorch path
    (backend "torch") also keeps h, where recomputing it would cost more than the fusion saves.
    Without a C compiler the PyTorch path runs it as torch's batch_norm then `lif`, which is
    faster there (`snnc.ops.function.fusion_loses`).
    """
    check_input(x)
    check_backend(backend)
    cfg = make_config(**neuron)
    return run_bn_lif(x, weight, bias, running_mean, running_var, training, momentum, eps, scale, cfg, sg_params,
                      seed, mask_key, backend, stats)


def run_bn_lif(x, weight, bias, running_mean, running_var, training: bool, momentum: float, eps: float,
               scale: float, cfg: LifConfig, sg_params, seed, mask_key, backend: str, stats,
               replay: bool = False) -> torch.Tensor:
    """`bn_lif` for an already validated backend and `LifConfig` (see `run_lif`). With `replay` (a
    segment run again in backward for its gradients, snnc.ops.memory) the forward computes no
    spikes: its backward recomputes h from x anyway, and the output is never read."""
    _check_bn_args(x, weight, bias, running_mean, running_var)
    if backend == "reference":
        y = _bn_torch(x, weight, bias, running_mean, running_var, training, momentum, eps, scale)
        return run_lif(y, cfg, sg_params, seed, mask_key, backend, stats)
    compiling = torch.compiler.is_compiling()
    engine = None if compiling else engine_for(x, backend)
    if not compiling and fusion_loses(engine, x, cfg):
        y = _bn_torch(x, weight, bias, running_mean, running_var, training, momentum, eps, scale)
        return run_lif(y, cfg, sg_params, seed, mask_key, backend, stats, replay)
    mask = _mask(seed, mask_key, cfg.masked)
    sg = surrogate_params(cfg, sg_params, x.device)
    if compiling:
        return library.call_bn_lif(x, weight, bias, running_mean, running_var, training, momentum, eps, scale, cfg,
                                   sg, mask, backend, stats)
    st = bn_stats(x, weight, bias, running_mean, running_var, training, momentum, eps, scale)
    wants_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if not wants_grad:
        return run_no_grad(x, cfg, engine, st.bn, stats)
    return BnLifFunction.apply(x, weight, bias, sg, cfg, engine, mask, st, stats, replay)


def _bn_torch(x, weight, bias, running_mean, running_var, training, momentum, eps, scale):
    """torch's own BatchNorm over the merged T*B batch, the tdBN factor folded into its weight:
    y = (weight * scale) * xhat + bias."""
    T, B, C = x.shape[:3]
    if scale != 1.0:
        weight = (weight if weight is not None else torch.ones(C, dtype=x.dtype, device=x.device)) * scale
    y = torch.nn.functional.batch_norm(x.reshape(T * B, *x.shape[2:]), running_mean, running_var, weight, bias,
                                       training or running_mean is None, momentum, eps)
    return y.view(x.shape)
