"""attach-decoding (TWO): the network output becomes f[t] * O[t] with per-epoch weights f (docs/methods.md §8)."""

from __future__ import annotations

from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register
from snnc.passes.util import fresh_prefix, insert_after


@prop("decoded", "the output passes through a temporal decoding node")
def is_decoded(graph: Graph) -> bool:
    return graph.node(graph.output).op in ("two_decode", "time_weights")


@register("attach-decoding", requires=("expanded",), ensures=("decoded",))
def attach_decoding(graph: Graph, m: float = 0.7, warmup: int = 5) -> Graph:
    """Insert a two_decode node after the output."""
    out = graph.node(graph.output)
    node = Node(fresh_prefix(graph, "decode"), "two_decode", (out.name,), Attrs(m=m, warmup=warmup),
                out.shape, "main", out.loc)
    return graph.replace(nodes=insert_after(list(graph.nodes), out.name, [node]), output=node.name)
