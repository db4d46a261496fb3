"""Atomic checkpoints that load without unpickling arbitrary objects.

A checkpoint is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the old one, so a crash at any instant leaves either
the previous checkpoint or the new one, never a half-written file. Loading uses
`torch.load(weights_only=True)`: tensors, numbers, strings, lists and dicts only.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import torch

from snnc.diagnostics import SnncError, brief

FORMAT = "snnc-checkpoint-v1"
# Test hook, off unless set: SNNC_TEST_SLOW_CHECKPOINT_WRITE=SECONDS writes the first half of the
# temporary file, sleeps that long, then writes the rest and renames it. The kill tests
# (tests/test_faults.py, bench/soak_kill.py) use it to land SIGKILLs inside a checkpoint write.
SLOW_WRITE_ENV = "SNNC_TEST_SLOW_CHECKPOINT_WRITE"
TEMP_GLOB = ".*.tmp-*"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(state: dict, path: str | Path) -> None:
    _replace_atomically(Path(path), lambda f: _write(f, {"format": FORMAT, **state}))


def save_weights_atomic(state_dict: dict, path: str | Path) -> None:
    """A plain torch.save of a state dict (what train.py --init reads), written like a checkpoint:
    the file at `path` is the old one or the complete new one, never a part."""
    _replace_atomically(Path(path), lambda f: torch.save(state_dict, f))


def _replace_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _write(f, state: dict) -> None:
    delay = float(os.environ.get(SLOW_WRITE_ENV) or 0)
    if delay <= 0:
        torch.save(state, f)
        return
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    time.sleep(delay)
    f.write(data[len(data) // 2:])


def load(path: str | Path) -> dict:
    """The checkpoint at `path`, or a clear SnncError if it is missing, truncated or not ours."""
    path = Path(path)
    if not path.is_file():
        raise SnncError(f"no checkpoint at {path}", None, "train first, or pass the right run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or foreign files all land here
        raise SnncError(f"{path} is not a readable checkpoint ({brief(exc)})",
                        None, "it may be truncated or corrupted; use an earlier checkpoint or retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SnncError(f"{path} is not an snnc checkpoint", None, f"expected format {FORMAT}")
    return state


def clean_stale_temporaries(folder: str | Path) -> None:
    """Removes temporaries left by a process killed mid-write (they are never loaded)."""
    for tmp in Path(folder).glob(TEMP_GLOB):
        try:
            tmp.unlink()
        except OSError:
            pass
