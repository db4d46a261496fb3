"""train.py --tensorboard: scalars through torch's SummaryWriter, or a note when tensorboard is missing."""

import sys

import pytest
import torch

from snnc.runtime import tblog
from trainkit import build, read_metrics

ARGS = ["--data", "digits", "--epochs", "2", "--batch-size", "128", "--quiet", "--tensorboard"]
RECIPE = "cpng+two(warmup=0)"


@pytest.fixture(scope="module")
def train_py(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    _, mod = build(tmp_path_factory.mktemp("tb"), "digits", RECIPE, {"width": "4", "T": "2"})
    yield mod
    torch.set_num_threads(before)


def _read_events(folder):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                number = value.simple_value if value.HasField("simple_value") else \
                    float(torch.tensor(list(value.tensor.float_val))[0])
                found[(value.tag, event.step)] = number
    return found


def test_scalars_are_written_and_match_the_metrics(train_py, tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert train_py.main(ARGS + ["--out", str(run)]) == 0
    events = _read_events(run / "tensorboard")
    metrics = read_metrics(run)
    assert len(metrics) == 2
    for record in metrics:
        step = record["epoch"]
        assert events[("loss/train", step)] == pytest.approx(record["train_loss"], rel=1e-6)
        assert events[("accuracy/test", step)] == pytest.approx(record["test_acc"], rel=1e-6)
        assert events[("lr", step)] == pytest.approx(record["lr"], rel=1e-6, abs=1e-12)
        for layer, rate in record["firing_rates"].items():
            assert events[(f"firing_rate/{layer}", step)] == pytest.approx(rate, rel=1e-6)
        for layer, stats in record["cpng"].items():
            assert events[(f"cpng_beta/{layer}", step)] == pytest.approx(stats["beta"], rel=1e-6)
        for t, w in enumerate(record["two_weights"]):
            assert events[(f"two_weight/t{t}", step)] == pytest.approx(w, rel=1e-6)


def test_without_tensorboard_a_note_and_training_goes_on(train_py, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` now raises ImportError
    run = tmp_path / "run"
    assert train_py.main(ARGS + ["--out", str(run)]) == 0
    assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
    assert len(read_metrics(run)) == 2 and not (run / "tensorboard").exists()


def test_no_writer_unless_asked(train_py, tmp_path):
    run = tmp_path / "run"
    assert train_py.main([a for a in ARGS if a != "--tensorboard"] + ["--epochs", "1", "--out", str(run)]) == 0
    assert not (run / "tensorboard").exists()


class FakeWriter:
    def __init__(self):
        self.calls, self.flushed, self.closed = [], 0, False

    def add_scalar(self, tag, value, global_step):
        self.calls.append((tag, value, global_step))

    def flush(self):
        self.flushed += 1

    def close(self):
        self.closed = True


def test_every_metric_becomes_a_scalar_with_the_epoch_as_step():
    record = {"epoch": 3, "T": 4, "lr": 0.005, "train_loss": 0.5, "train_acc": 0.9, "test_loss": 0.6, "test_acc": 0.8,
              "samples_per_s": 100.0, "firing_rates": {"stem.lif": 0.1},
              "cpng": {"stem.lif": {"beta": 1.5, "chi": 0.2, "mu": 0.0, "sigma": 1.0}}, "two_weights": [0.9, 1.1],
              "stage": 0, "two_step_acc": [0.5, 0.6]}
    writer = FakeWriter()
    tblog.log_epoch(writer, record)
    got = {tag: (value, step) for tag, value, step in writer.calls}
    assert got == {"loss/train": (0.5, 3), "loss/test": (0.6, 3), "accuracy/train": (0.9, 3),
                   "accuracy/test": (0.8, 3), "lr": (0.005, 3), "T": (4.0, 3), "samples_per_s": (100.0, 3),
                   "firing_rate/stem.lif": (0.1, 3), "cpng_beta/stem.lif": (1.5, 3), "cpng_chi/stem.lif": (0.2, 3),
                   "two_weight/t0": (0.9, 3), "two_weight/t1": (1.1, 3)}
    assert writer.flushed == 1
    tblog.log_epoch(None, record)                       # no writer: nothing to do
    tblog.close(writer)
    assert writer.closed
