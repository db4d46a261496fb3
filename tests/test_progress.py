"""The progress bar's throughput: a rate over the last batches, finite from the first batch on."""

import pytest

from snnc.runtime import progress


def test_throughput_is_windowed_and_finite_from_the_first_batch(monkeypatch):
    clock = {"t": 100.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["t"])
    bar = progress.Progress(total=100, desc="epoch", enabled=False)
    assert bar.rate() == 0.0
    clock["t"] += 0.5
    bar.update(loss=1.0, acc=0.5, samples=64)
    assert bar.rate() == pytest.approx(128.0)          # 64 samples in 0.5 s, not 64 / 0
    for _ in range(progress.WINDOW + 5):               # slow batches ...
        clock["t"] += 1.0
        bar.update(loss=1.0, acc=0.5, samples=64)
    for _ in range(progress.WINDOW):                   # ... then fast ones: only the window counts
        clock["t"] += 0.1
        bar.update(loss=1.0, acc=0.5, samples=64)
    assert bar.rate() == pytest.approx(640.0)
