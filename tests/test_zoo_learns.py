"""spikformer and plif_net learn digits-scale data: one epoch lowers the training loss (8x8 inputs via --set)."""

import pytest
import torch

from trainkit import build, read_metrics

torch.set_num_threads(1)


@pytest.mark.parametrize("model, sets", [
    ("spikformer", dict(channels=1, size=8, dim=32, heads=2, depth=1)),
    ("plif_net", dict(T=4, channels=1, size=8, width=16, hidden=64)),
])
def test_learns_digits(tmp_path, model, sets):
    _, mod = build(tmp_path, model, "sdt", {k: str(v) for k, v in sets.items()})
    run = tmp_path / "run"
    assert mod.main(["--data", "digits", "--epochs", "2", "--batch-size", "64", "--lr", "0.01", "--quiet",
                     "--out", str(run)]) == 0
    first, second = read_metrics(run)
    assert second["train_loss"] < first["train_loss"] - 0.05
    assert second["test_loss"] < first["test_loss"] and second["test_acc"] > 0.15  # chance is 0.1
