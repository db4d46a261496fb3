"""From a source and a recipe to the list of passes to run, and running them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from snnc import frontend
from snnc.frontend import ast
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.passes import Step, run_pipeline

FRONTEND_STEPS = [Step("expand-blocks")]


@dataclass
class Compiled:
    """A network after the frontend and the recipe's passes, with every intermediate IR."""

    source_file: str
    network: ast.Network
    graph: Graph
    stages: list[tuple[str, Graph]] = field(default_factory=list)  # (pass name, IR after it)


def compile_source(path_or_text: str | Path, overrides: dict | None = None, file: str | None = None,
                   steps: list[Step] | None = None) -> Compiled:
    net, graph = frontend.load(path_or_text, overrides, file)
    verify(graph)
    stages = [("build", graph)]
    final = run_pipeline(graph, list(FRONTEND_STEPS) + list(steps or []),
                         on_step=lambda i, name, g: stages.append((name, g)))
    return Compiled(file or str(path_or_text), net, final, stages)
