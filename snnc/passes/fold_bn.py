"""fold-bn: BN joins the preceding conv, fc or linear (docs/methods.md §9); any other BN becomes a per-channel affine.

The graph records which BN went where (`folded_bn`, `bn_eps`, `bn_scale`); the
exporter computes the folded tensors from a checkpoint:
    k  = gamma * a*vth / sqrt(var + eps)
    w' = w * k            b' = beta + (b - mu) * k
"""

from __future__ import annotations

from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register


FOLDS_INTO = ("conv", "fc", "linear")  # layers with one output channel per weight row


def bn_scale(bn: Node) -> float:
    """tdBN's a*vth factor, 1 for plain BN."""
    return bn.attrs["a"] * bn.attrs["vth"] if bn.attrs["mode"] == "tdbn" else 1.0


@prop("bn-free", "no bn nodes remain")
def is_bn_free(graph: Graph) -> bool:
    return not graph.of_op("bn")


@register("fold-bn", requires=("no-aux",), ensures=("bn-free",), phase="inference")
def fold_bn(graph: Graph) -> Graph:
    """Fold each BN into the conv/fc that feeds only it; replace the others by an affine node."""
    users = graph.users
    by_name = graph.by_name
    folded: dict[str, Node] = {}   # producer name -> the bn folded into it
    rename: dict[str, str] = {}    # removed bn -> the node that now carries its value
    for node in graph.nodes:
        if node.op != "bn":
            continue
        src = by_name[node.inputs[0]]
        if src.op in FOLDS_INTO and users[src.name] == (node.name,) and "folded_bn" not in src.attrs:
            folded[src.name] = node
            rename[node.name] = src.name
    nodes = []
    for node in graph.nodes:
        if node.name in rename:
            continue
        inputs = tuple(rename.get(i, i) for i in node.inputs)
        if node.name in folded:
            bn = folded[node.name]
            node = node.with_attrs(bias=True, folded_bn=bn.name, bn_eps=bn.attrs["eps"], bn_scale=bn_scale(bn))
        elif node.op == "bn":
            node = Node(node.name, "affine", inputs, Attrs(from_bn=node.name, bn_eps=node.attrs["eps"],
                                                           bn_scale=bn_scale(node)), node.shape, node.role, node.loc)
        nodes.append(node.replace(inputs=inputs))
    output = rename.get(graph.output, graph.output)
    return graph.replace(nodes=nodes, output=output)
