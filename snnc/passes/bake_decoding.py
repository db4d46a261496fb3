"""bake-decoding: TWO's trained weights f[t] become constants of the inference graph (docs/methods.md §8)."""

from __future__ import annotations

from snnc.diagnostics import SnncError
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph
from snnc.passes.registry import register


@register("bake-decoding", requires=("no-aux",), phase="inference")
def bake_decoding(graph: Graph, weights: tuple[float, ...] | None = None) -> Graph:
    """Replace each two_decode node by time_weights with `weights` (the checkpoint's f)."""
    nodes = []
    for node in graph.nodes:
        if node.op == "two_decode":
            if weights is None:
                raise SnncError(f"bake-decoding needs the trained TWO weights for %{node.name}")
            T = int(graph.params["T"])
            if len(weights) != T:
                raise SnncError(f"the checkpoint has {len(weights)} TWO weights but the network runs T={T} steps",
                                hint="export with the T the run ended with (--set T=... at compile time)")
            node = node.replace(op="time_weights", attrs=Attrs(weights=tuple(float(w) for w in weights)))
        nodes.append(node)
    return graph.replace(nodes=nodes)
