"""`train.py --tensorboard`: each epoch's metrics as TensorBoard scalars under RUN_DIR/tensorboard.

torch's SummaryWriter needs the `tensorboard` package; without it the run trains as usual
and says once how to get the scalars (metrics.jsonl holds the same numbers).
"""

from __future__ import annotations

import sys
from pathlib import Path

NOTE = ("note: --tensorboard needs the tensorboard package (pip install tensorboard); training without it "
        "(RUN_DIR/metrics.jsonl holds the same numbers)")


def open_writer(run_dir: Path, enabled: bool):
    """A SummaryWriter on RUN_DIR/tensorboard, or None (not asked for, or tensorboard missing: a note)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError naming tensorboard when it is not installed
        print(NOTE, file=sys.stderr)
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))


def scalars(record: dict) -> dict[str, float]:
    """The scalars of one metrics record (docs/training.md, 'The run folder'), by TensorBoard tag."""
    out = {}
    for key, tag in (("train_loss", "loss/train"), ("test_loss", "loss/test"), ("train_acc", "accuracy/train"),
                     ("test_acc", "accuracy/test"), ("lr", "lr"), ("T", "T"), ("samples_per_s", "samples_per_s")):
        if isinstance(record.get(key), (int, float)):
            out[tag] = float(record[key])
    for layer, rate in (record.get("firing_rates") or {}).items():
        out[f"firing_rate/{layer}"] = float(rate)
    for layer, stats in (record.get("cpng") or {}).items():
        for name in ("beta", "chi"):
            if isinstance(stats.get(name), (int, float)):
                out[f"cpng_{name}/{layer}"] = float(stats[name])
    for t, w in enumerate(record.get("two_weights") or []):
        out[f"two_weight/t{t}"] = float(w)
    return out


def log_epoch(writer, record: dict) -> None:
    if writer is None:
        return
    for tag, value in scalars(record).items():
        writer.add_scalar(tag, value, global_step=int(record["epoch"]))
    writer.flush()


def close(writer) -> None:
    if writer is not None:
        writer.close()
