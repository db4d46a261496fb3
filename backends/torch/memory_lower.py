"""Lowering of a memory plan (plan-memory, docs/memory.md) into the generated model.py.

`plan(ctx, graph)` takes the forward lines that lower.py wrote and returns what
model.py.jinja needs: the policy (None when the graph has no plan or keeps `store`, in
which case model.py is what it was without a plan), the forward lines, and one method per
recomputed segment. A segment's lines move, unchanged, into its method; the line of the
LIF layer ending it becomes

    out = M.recompute(self._recompute_out, (self.bn, self.out), T, conv, spikes)

The method's parameters (the segment's inputs) and the modules it calls are read from the
lines themselves with Python's parser, so they are exactly what the moved code uses.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from snnc.ir import memory as mem
from snnc.ir.graph import Graph
from snnc.names import comment_text

GLOBALS = frozenset({"self", "T", "L", "F", "torch", "nn", "M"})


@dataclass
class Segment:
    name: str             # the method
    inputs: list[str]     # its parameters after T
    modules: list[str]    # the module attributes its lines call
    lines: list           # lower.Line, moved from forward
    result: str           # the variable it returns
    doc: str


@dataclass
class MemoryPlan:
    policy: str | None
    lines: list
    segments: list[Segment]


def _names(expr: str) -> tuple[list[str], list[str]]:
    """(variables read, self attributes used) by an expression, in order of appearance."""
    tree = ast.parse(expr, mode="eval")
    names, attrs = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in GLOBALS and node.id not in names:
            names.append(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
              and node.attr not in attrs):
            attrs.append(node.attr)
    return names, attrs


def plan(ctx, graph: Graph) -> MemoryPlan:
    policy = graph.attrs.get("memory")
    if policy in (None, "store"):
        return MemoryPlan(None, list(ctx.lines), [])
    roots = [n.name for n in graph.nodes if n.attrs.get("saves") == "segment"]
    lines = list(ctx.lines)
    segments = []
    for root in roots:
        members = set(mem.segment_members(graph, root))
        own = [ln for ln in lines if ln.node in members]
        if not own or own[-1].node != root:
            raise AssertionError(f"plan-memory: the segment ending at %{root} has no line of its own at its end")
        defined = {ln.target for ln in own}
        inputs, modules = [], []
        for ln in own:
            names, attrs = _names(ln.expr)
            inputs += [n for n in names if n not in defined and n not in inputs]
            modules += [a for a in attrs if a not in modules]
        result = own[-1].target
        rest = [ln for ln in lines if ln.node not in members]
        used_outside = {n for ln in rest for n in _names(ln.expr)[0]}
        used_outside |= {n for expr in [ctx.output, *ctx.aux] for n in _names(expr)[0]}
        leaked = (defined - {result}) & used_outside
        if leaked:
            raise AssertionError(f"plan-memory: values of the segment ending at %{root} are read outside it: "
                                 + ", ".join(sorted(leaked)))
        name = f"_recompute_{result}"
        mods = ", ".join(f"self.{m}" for m in modules) + ("," if len(modules) == 1 else "")
        call = f"M.recompute(self.{name}, ({mods}), T, {', '.join(inputs)})"
        doc = comment_text(f"{root}: run again in backward from {', '.join(inputs)} (plan-memory, {policy})")
        segments.append(Segment(name, inputs, modules, own, result, doc))
        lines = [type(ln)(ln.target, call, ln.node, ln.where) if ln.node == root else ln
                 for ln in lines if ln.node not in members or ln.node == root]
    return MemoryPlan(policy, lines, segments)
