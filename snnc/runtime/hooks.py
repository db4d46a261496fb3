"""Per-epoch training hooks: CPNG's beta control (METHODS §7) and TWO's output weights (METHODS §8).

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

    def wants_stats(self, last_batch: bool) -> bool:
        return self.per_batch or last_batch

    def record(self, on: bool) -> None:
        for _, layer in self.layers:
            layer.record_stats = on

    def update(self) -> dict:
        """Apply the METHODS §7 rule to every layer; returns {layer: {beta, chi, mu, sigma}}."""
        stats = []
        for _, layer in self.layers:
            if layer.h_mean is None:
                raise RuntimeError("CPNG found no recorded h statistics for the last batch")
            stats += [layer.h_mean.double(), (layer.h_std.double() ** 2 + layer.h_mean.double() ** 2)]
        moments = dist.mean_across_ranks(torch.stack(stats))
        out = {}
        for i, (name, layer) in enumerate(self.layers):
            mu = float(moments[2 * i])
            sigma = max(float(moments[2 * i + 1]) - mu * mu, 0.0) ** 0.5
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
        # outputs are f[t] * O[t] with f[t] > 0, so the per-step argmax is that of O[t] (METHODS §8).
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
