"""Helpers for the per-pass tests: expanded zoo graphs and golden IR after a pass."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from goldens import check_golden
from snnc.ir.printer import print_graph
from snnc.ir.verify import verify
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def expanded(model: str, **_):
    """The graph of models/<model>.snn after the frontend (paths relative to the repository)."""
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return compile_source(f"models/{model}.snn").graph
    finally:
        os.chdir(cwd)


def golden_after(pass_name: str, graph, update: bool, tag: str = "") -> None:
    verify(graph)
    name = f"{pass_name}{'.' + tag if tag else ''}.ir"
    check_golden(ROOT / "tests" / "golden" / "passes" / name, print_graph(graph, pass_name), update)
