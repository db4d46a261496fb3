"""The IR: frozen nodes in topological order, instantiated block bodies, outputs.

networkx is a derived view (snnc/ir/views.py); this module is the source of
truth, so equality, hashing and printing stay deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Union

from snnc.diagnostics import Loc
from snnc.ir.attrs import Attrs

Dim = Union[int, str]  # an int, or a symbolic dim: "T" (time steps) or "B" (batch)
Shape = tuple[Dim, ...]
SYMBOLIC_DIMS = ("T", "B")
ROLES = ("main", "aux")


def _replace(obj, changes: dict):
    """dataclasses.replace that returns `obj` itself when nothing changes."""
    if all(getattr(obj, k) == v for k, v in changes.items()):
        return obj
    return replace(obj, **changes)


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: Attrs = field(default_factory=Attrs)
    shape: Shape = ()
    role: str = "main"
    loc: Loc | None = None

    def replace(self, **changes) -> "Node":
        if "attrs" in changes and not isinstance(changes["attrs"], Attrs):
            changes["attrs"] = Attrs(changes["attrs"])
        return _replace(self, changes)

    def with_attrs(self, **changes) -> "Node":
        return self.replace(attrs=self.attrs.set(**changes))

    @property
    def features(self) -> tuple[int, ...]:
        """The non-symbolic trailing dims, e.g. (C, H, W)."""
        return tuple(d for d in self.shape if not isinstance(d, str))


@dataclass(frozen=True)
class Block:
    """One instantiation of a `block` definition for particular arguments and input shape.

    Its nodes start with a `param` node (the block input) and `result` names the
    value the block returns. Calls to it are `call` nodes with attr block=<name>.
    """

    name: str
    params: Attrs
    nodes: tuple[Node, ...]
    result: str

    def replace(self, **changes) -> "Block":
        return _replace(self, changes)


@dataclass(frozen=True)
class Graph:
    network: str
    params: Attrs
    nodes: tuple[Node, ...]
    output: str
    aux_outputs: tuple[str, ...] = ()
    blocks: tuple[Block, ...] = ()
    attrs: Attrs = field(default_factory=Attrs)

    def replace(self, **changes) -> "Graph":
        if "nodes" in changes:
            changes["nodes"] = tuple(changes["nodes"])
        return _replace(self, changes)

    @cached_property
    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        return self.by_name[name]

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    @cached_property
    def users(self) -> dict[str, tuple[str, ...]]:
        """name -> names of the nodes that read it, in graph order."""
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return {k: tuple(v) for k, v in out.items()}

    def of_op(self, *ops: str) -> list[Node]:
        return [n for n in self.nodes if n.op in ops]

    @property
    def main_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "main"]
