"""Per-epoch training hooks: CPNG's beta control and TWO's output weights (docs/methods.md §7, §8).

Each hook keeps its state in a plain dict so it goes into checkpoints as-is.
Statistics are combined across data-parallel ranks, so every rank ends an
epoch with identical betas and weights.
"""

from __future__ import annotations

import torch

from snnc.cpng import ChiRecord
from snnc.runtime import distributed as dist


class CPNGHook:
    """Adapts beta of each listed LIF layer once per epoch (or per batch) from its h statistics."""

    def __init__(self, model, layers: list[str], chi_limit: float = 0.2, per_batch: bool = False):
        self.layers = [(name, model.get_submodule(name)) for name in layers]
        self.chi_limit = chi_limit
        self.per_batch = per_batch
        self.records = {name: ChiRecord(chi_limit) for name, _ in self.layers}
        self.last: dict[str, dict] = {}
        # The batch size of the forward whose h statistics each layer holds (keyed by the h_mean
        # tensor it belongs to): ranks' shards may differ, and their statistics pool by size.
        self.samples: dict[str, tuple[torch.Tensor, int]] = {}
        model.register_forward_hook(self._observe)

    def _observe(self, model, args, output) -> None:
        """After a forward of the model, which returns (O [T, B, classes], aux): note B per recording layer."""
        outputs = output[0] if isinstance(output, (tuple, list)) else output
        for name, layer in self.layers:
            if layer.record_stats and layer.h_mean is not None:
                self.samples[name] = (layer.h_mean, int(outputs.shape[1]))

    def wants_stats(self, last_batch: bool) -> bool:
        return self.per_batch or last_batch

    def record(self, on: bool) -> None:
        for _, layer in self.layers:
            layer.record_stats = on

    def update(self) -> dict:
        """Apply the docs/methods.md §7 rule to every layer; returns {layer: {beta, chi, mu, sigma}}.

        mu and sigma are those of h over every rank's last batch together.
        """
        counts, means, variances = [], [], []
        for name, layer in self.layers:
            if layer.h_mean is None:
                raise RuntimeError("CPNG found no recorded h statistics for the last batch")
            stats, batch = self.samples.get(name, (None, 0))
            if stats is not layer.h_mean:
                raise RuntimeError("CPNG's h statistics come from a forward it did not see; call the model itself")
            # Every rank's h of one layer has the same elements per sample, so the batch size
            # stands for the element count.
            counts.append(float(batch))
            means.append(layer.h_mean.double().cpu())
            variances.append(layer.h_std.double().cpu() ** 2)
        mus, variances = dist.pool_moments(torch.tensor(counts, dtype=torch.float64), torch.stack(means),
                                           torch.stack(variances))
        out = {}
        for i, (name, layer) in enumerate(self.layers):
            mu = float(mus[i])
            sigma = max(float(variances[i]), 0.0) ** 0.5
            beta = float(layer.sg_params[0])
            new_beta, rec = self.records[name].update(beta, mu, sigma, layer.config.vth, layer.config.surrogate.name)
            layer.sg_params[0] = new_beta
            out[name] = {"beta": new_beta, "chi": rec, "mu": mu, "sigma": sigma}
        self.last = out
        return out

    def state_dict(self) -> dict:
        return {"records": {k: r.rec for k, r in self.records.items() if r.rec is not None}}

    def load_state_dict(self, state: dict) -> None:
        for name, rec in state.get("records", {}).items():
            self.records[name].rec = float(rec)


class TWOHook:
    """Accumulates per-step training accuracy and updates f before each epoch after the warm-up."""

    def __init__(self, model, module: str, m: float = 0.7, warmup: int = 5):
        self.decode = model.get_submodule(module)
        self.m = m
        self.warmup = warmup
        self.correct: torch.Tensor | None = None
        self.count = 0

    def observe(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        # outputs are f[t] * O[t] with f[t] > 0, so the per-step argmax is that of O[t] (docs/methods.md §8).
        hits = (outputs.detach().argmax(-1) == y.view(1, -1)).double().sum(1)
        self.correct = hits if self.correct is None or self.correct.shape != hits.shape else self.correct + hits
        self.count += y.numel()

    def end_epoch(self, epoch: int) -> list[float]:
        """After 0-based `epoch`: if the next epoch is past the warm-up, f <- m f + (1-m) acc / mean(acc)."""
        if self.correct is None:
            return self.decode.f.tolist()
        totals = dist.sum_across_ranks(torch.cat([self.correct.cpu(), torch.tensor([float(self.count)],
                                                                                    dtype=torch.float64)]))
        acc = totals[:-1] / totals[-1]
        self.correct, self.count = None, 0
        if epoch + 1 > self.warmup and float(acc.mean()) > 0:
            f = self.decode.f.double().cpu()
            new = self.m * f + (1 - self.m) * acc / acc.mean()
            self.decode.f.copy_(new.to(self.decode.f.dtype))
        self.last_acc = acc.tolist()
        return self.decode.f.tolist()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EpochHooks:
    """A recipe's work around the optimizer step, as plain callables for any training loop.

    The generated trainer does the same, in the same order, so a loop that calls these
    (docs/loop.md) reaches the trainer's weights bit for bit:

        before_batch(last)        LIF layers record h statistics and firing rates (CPNG, metrics)
        after_batch(outputs, y)   after opt.step(): CPNG's per-batch beta update, TWO's per-step accuracy
        end_epoch(epoch)          firing rates, CPNG's per-epoch beta update, TWO's new output weights
        stages(epochs)            TIT's [(T, epochs), ...], or [(T, epochs)] without tit
        set_time_steps(T)         run the model at T steps (a TIT stage)
    """

    def __init__(self, model, spec, seed: int = 0, rank: int = 0):
        self.model, self.spec = model, spec
        for layer in spec.lif_layers:  # MSG's masks draw from (seed, rank, layer, step)
            lif = model.get_submodule(layer)
            lif.seed, lif.rank = seed, rank
        self.cpng = CPNGHook(model, spec.cpng["layers"], spec.cpng["chi_limit"], spec.cpng["per_batch"]) \
            if spec.cpng else None
        self.two = TWOHook(model, spec.two["module"], spec.two["m"], spec.two["warmup"]) if spec.two else None

    def stages(self, epochs: int | None = None) -> list[tuple[int, int]]:
        """TIT's stages (T, epochs); without tit one stage of the network's T and `epochs` (default 8)."""
        if self.spec.stages:
            if epochs is not None:
                raise ValueError("the recipe's tit schedule sets the epochs; change tit(stages=...) instead")
            return [(int(s[0]), int(s[1])) for s in self.spec.stages]
        return [(self.spec.T, 8 if epochs is None else int(epochs))]

    def set_time_steps(self, T: int) -> None:
        from snnc.runtime.setup import set_time_steps

        set_time_steps(self.model, T)

    def before_batch(self, last: bool) -> None:
        for layer in self.spec.lif_layers:
            self.model.get_submodule(layer).record_stats = last or bool(self.cpng and self.cpng.per_batch)

    def after_batch(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        if self.cpng and self.cpng.per_batch:
            self.cpng.update()
        if self.two:
            self.two.observe(outputs, y)

    def end_epoch(self, epoch: int) -> dict:
        """After 0-based `epoch`: {"firing_rates", and with the recipe "cpng", "two_weights", "two_step_acc"}."""
        out = {"firing_rates": {}}
        for layer in self.spec.lif_layers:
            m = self.model.get_submodule(layer)
            if m.spike_rate is not None:
                out["firing_rates"][layer] = float(dist.mean_across_ranks(m.spike_rate.detach().double().cpu()))
        if self.cpng:
            out["cpng"] = self.cpng.last if self.cpng.per_batch else self.cpng.update()
        if self.two:
            out["two_weights"] = self.two.end_epoch(epoch)
            out["two_step_acc"] = getattr(self.two, "last_acc", None)
        for layer in self.spec.lif_layers:
            self.model.get_submodule(layer).record_stats = False
        return out
