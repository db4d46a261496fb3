"""Compile a zoo model into a temporary folder and import its generated train.py."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

from snnc.compiler import compile_to

ROOT = Path(__file__).resolve().parent.parent
_count = itertools.count()


def build(tmp: Path, model: str | Path, recipe: str, overrides: dict | None = None, fuse: bool = True):
    """(build folder, the imported train.py module; its `.model` is the imported model.py).

    `model` names a zoo model, or is the path of a .snn file."""
    source = model if isinstance(model, Path) else ROOT / "models" / f"{model}.snn"
    out = tmp / f"build-{source.stem}-{next(_count)}"
    compile_to(source, recipe, out, overrides, fuse=fuse)
    spec = importlib.util.spec_from_file_location(f"train_{out.name.replace('-', '_')}", out / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return out, module


def read_metrics(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def stable(records: list[dict]) -> list[dict]:
    """Metrics without wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in records]
