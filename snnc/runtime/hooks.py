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
