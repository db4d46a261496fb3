"""fuse-lif: a BN that feeds only a LIF layer runs inside that layer's kernels (docs/methods.md §9)."""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.passes.registry import register


@register("fuse-lif", requires=("expanded",))
def fuse_lif(graph: Graph) -> Graph:
    """Mark `bn -> lif` pairs (the bn having no other user) so the backend runs them as one op."""
    users = graph.users
    nodes = []
    for node in graph.nodes:
        # A learnable decay (PLIF) runs through the PyTorch implementation (snnc/runtime/plif.py), BN apart.
        if node.op == "lif" and node.role == "main" and "learn_decay" not in node.attrs:
            src = graph.node(node.inputs[0])
            if src.op == "bn" and src.role == "main" and users[src.name] == (node.name,):
                node = node.with_attrs(fuse_bn=True)
        nodes.append(node)
    return graph.replace(nodes=nodes)
