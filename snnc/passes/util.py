"""Small helpers shared by passes."""

from __future__ import annotations

from snnc.diagnostics import SnncError
from snnc.ir.graph import Graph, Node


def fresh_prefix(graph: Graph, base: str) -> str:
    """`base`, or `base_`, `base__`, ... so that no existing node is `prefix` or starts with `prefix.`."""
    prefix = base
    while any(n.name == prefix or n.name.startswith(prefix + ".") for n in graph.nodes):
        prefix += "_"
    return prefix


def insert_after(nodes: list[Node], anchor: str, new: list[Node]) -> list[Node]:
    i = next(i for i, n in enumerate(nodes) if n.name == anchor)
    return nodes[: i + 1] + new + nodes[i + 1:]


def lif_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op == "lif" and n.role == "main"]


def recipe_error(message: str, node: Node | None = None, hint: str | None = None) -> SnncError:
    return SnncError(message, node.loc if node is not None else None, hint)
