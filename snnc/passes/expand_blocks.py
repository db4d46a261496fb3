"""expand-blocks: inline every block call; each instance ends in an identity marker."""

from __future__ import annotations

from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register


@prop("expanded", "no block calls remain")
def is_expanded(graph: Graph) -> bool:
    return not graph.blocks and not graph.of_op("call")


def _inline(graph: Graph, call: Node, rename: dict[str, str], out: list[Node]) -> None:
    block = graph.block(call.attrs["block"])
    prefix = call.name
    local = {block.nodes[0].name: rename.get(call.inputs[0], call.inputs[0])}
    for node in block.nodes[1:]:
        name = f"{prefix}.{node.name}"
        inputs = tuple(local[i] for i in node.inputs)
        if node.op == "call":
            inner = node.replace(name=name, inputs=inputs)
            _inline(graph, inner, {}, out)
            local[node.name] = name
            continue
        out.append(node.replace(name=name, inputs=inputs))
        local[node.name] = name
    definition = block.name.rsplit(".", 1)[0]
    out.append(Node(prefix, "identity", (local[block.result],), Attrs(block=definition),
                    call.shape, call.role, call.loc))


@register("expand-blocks", ensures=("expanded",), phase="frontend")
def expand_blocks(graph: Graph) -> Graph:
    """Inline block calls; `layer2.0` becomes `layer2.0.main.conv0`, ... plus an identity marker `layer2.0`."""
    if is_expanded(graph):
        return graph
    out: list[Node] = []
    for node in graph.nodes:
        if node.op == "call":
            _inline(graph, node, {}, out)
        else:
            out.append(node)
    return graph.replace(nodes=tuple(out), blocks=())


def block_instances(graph: Graph) -> list[Node]:
    """The top-level block instance markers in order (nested instances excluded)."""
    markers = [n for n in graph.nodes if n.op == "identity" and "block" in n.attrs]
    names = {m.name for m in markers}

    def nested(name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:i]) in names for i in range(1, len(parts)))

    return [m for m in markers if not nested(m.name)]
