"""dce: remove nodes the output does not need and identity markers; the graph becomes an inference graph."""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.passes.registry import register


@register("dce", requires=("no-aux", "bn-free"), phase="inference")
def dce(graph: Graph) -> Graph:
    """Keep what the output reads (and the input), route around identities, mark phase=inference."""
    by_name = graph.by_name

    def resolve(name: str) -> str:
        while by_name[name].op == "identity":
            name = by_name[name].inputs[0]
        return name

    output = resolve(graph.output)
    live, stack = set(), [output]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        stack += [resolve(i) for i in by_name[name].inputs]
    nodes = [n.replace(inputs=tuple(resolve(i) for i in n.inputs)) for n in graph.nodes
             if (n.name in live or n.op == "input") and n.op != "identity"]
    return graph.replace(nodes=nodes, output=output, attrs=graph.attrs.set(phase="inference"))
