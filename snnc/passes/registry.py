"""Pass registry and pass manager.

A pass is a pure function Graph -> Graph with a kebab-case name, a one-line
doc, and declared `requires`/`ensures` properties. The manager checks both
around every pass and runs `verify()` after it; a failure names the pass and
the passes that ran before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from snnc.diagnostics import SnncError
from snnc.ir.graph import Graph
from snnc.ir.verify import IRError, verify


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[..., Graph]
    doc: str
    requires: tuple[str, ...] = ()
    ensures: tuple[str, ...] = ()
    phase: str = "training"  # frontend | training | inference

    def __call__(self, graph: Graph, **options) -> Graph:
        return self.fn(graph, **options)


PASSES: dict[str, Pass] = {}
PROPERTIES: dict[str, tuple[Callable[[Graph], bool], str]] = {}


def register(name: str, *, requires=(), ensures=(), phase: str = "training"):
    def wrap(fn):
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PASSES[name] = Pass(name, fn, doc, tuple(requires), tuple(ensures), phase)
        return fn

    return wrap


def prop(name: str, doc: str):
    """Registers a graph property that passes may require or ensure."""

    def wrap(fn):
        PROPERTIES[name] = (fn, doc)
        return fn

    return wrap


def holds(name: str, graph: Graph) -> bool:
    return PROPERTIES[name][0](graph)


@dataclass
class Step:
    name: str
    options: dict = field(default_factory=dict)


class PassFailure(SnncError):
    pass


def run_pipeline(graph: Graph, steps: list[Step], on_step: Callable[[int, str, Graph], None] | None = None) -> Graph:
    """Runs `steps` in order, verifying after each; `on_step(i, name, graph)` sees every result."""
    done: list[str] = []
    for i, step in enumerate(steps, start=1):
        p = PASSES[step.name]
        for req in p.requires:
            if not holds(req, graph):
                raise PassFailure(f"pass '{p.name}' requires '{req}' ({PROPERTIES[req][1]}), "
                                  f"which does not hold after: {', '.join(done) or 'the frontend'}")
        try:
            graph = verify(p(graph, **step.options))
        except IRError as exc:
            exc.message = f"after pass '{p.name}' (ran before it: {', '.join(done) or 'none'}): {exc.message}"
            raise
        for ens in p.ensures:
            if not holds(ens, graph):
                raise PassFailure(f"pass '{p.name}' did not ensure '{ens}' ({PROPERTIES[ens][1]})")
        done.append(p.name)
        if on_step:
            on_step(i, p.name, graph)
    return graph
