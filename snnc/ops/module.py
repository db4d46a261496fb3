"""`LIF`: the nn.Module wrapper of `snnc.ops.lif` used by generated models (docs/methods.md §1-§3, §7)."""

from __future__ import annotations

import torch
from torch import nn

from snnc.ops.config import DEFAULT_DECAY, PARAM_DTYPE, check_backend, check_input, make_config
from snnc.ops.lif import run_bn_lif, run_lif
from snnc.ops.memory import note_spikes, replaying


class LIF(nn.Module):
    """A LIF layer over all T steps of x [T, ...].

    Buffers (saved in checkpoints):
    - `sg_params` float64 [k]: the surrogate's parameters in catalog order,
      initialised exactly from the spelling (each kernel rounds them to its
      compute dtype); CPNG overwrites sg_params[0] in place.
    - `iteration` int64 scalar: incremented once per training forward when
      mask_p > 0 and used in the MSG mask key, so resumed runs draw the same masks.

    Attributes set by training code: `seed`, `rank` (ints), `layer` (from the
    constructor), `record_stats`; when the latter is True each forward stores
    detached 0-d float32 `h_mean`, `h_std` and `spike_rate`.
    """

    def __init__(self, *, decay=DEFAULT_DECAY, tau=None, vth=1.0, reset="hard", decay_input=False,
                 detach_reset=False, surrogate="triangle(beta=1.0)", mask_p=0.0, rescale=False, layer=0,
                 backend="auto"):
        super().__init__()
        check_backend(backend)
        self.config = make_config(decay=decay, tau=tau, vth=vth, reset=reset, decay_input=decay_input,
                                  detach_reset=detach_reset, surrogate=surrogate, mask_p=mask_p,
                                  rescale=rescale)
        self.register_buffer("sg_params", torch.tensor(self.config.default_params(), dtype=PARAM_DTYPE))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.seed = 0
        self.rank = 0
        self.layer = int(layer)
        self.backend = backend
        self.record_stats = False
        self.h_mean = self.h_std = self.spike_rate = None

    def extra_repr(self) -> str:
        c = self.config
        return (f"decay={c.decay}, vth={c.vth}, reset={c.reset}, decay_input={c.decay_input}, "
                f"detach_reset={c.detach_reset}, surrogate={c.surrogate}, mask_p={c.mask_p}, "
                f"rescale={c.rescale}, layer={self.layer}")

    def _lif_kwargs(self) -> dict:
        # The settings were validated once, in the constructor: each call goes straight to
        # run_lif/run_bn_lif, which torch.compile traces without a graph break.
        if self.training and self.config.masked:
            self.iteration.add_(1)
        # A segment recomputed in backward (snnc.ops.memory) leaves the forward's statistics in place.
        again = replaying()
        return dict(cfg=self.config, sg_params=self.sg_params, seed=self.seed,
                    mask_key=(self.rank, self.layer, self.iteration), backend=self.backend,
                    stats={} if self.record_stats and not again else None, replay=again)

    def _keep_stats(self, kwargs: dict) -> None:
        stats = kwargs["stats"]
        if stats is not None:
            self.h_mean, self.h_std, self.spike_rate = stats["h_mean"], stats["h_std"], stats["spike_rate"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        kwargs = self._lif_kwargs()
        spikes = run_lif(x, **kwargs)
        self._keep_stats(kwargs)
        note_spikes(spikes)  # kept as bits where saved for backward, under snnc.ops.memory.packed_spikes()
        return spikes

    def forward_bn(self, x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, scale: float = 1.0):
        """lif(bn(x)) with this layer's settings, BN folded into the LIF loops (`snnc.ops.bn_lif`).

        Mirrors `_BatchNorm.forward`: increments `num_batches_tracked` in
        training, uses a cumulative average when `momentum` is None, and
        uses batch statistics in eval if the BN keeps no running statistics.
        """
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
        keep_running = not bn.training or bn.track_running_stats
        check_input(x)
        kwargs = self._lif_kwargs()
        spikes = run_bn_lif(x, bn.weight, bn.bias, bn.running_mean if keep_running else None,
                            bn.running_var if keep_running else None, batch_stats, factor, bn.eps, scale, **kwargs)
        self._keep_stats(kwargs)
        note_spikes(spikes)
        return spikes
