"""tdBN's threshold: each tdBN scales by the vth of the neuron it feeds (docs/methods.md §9).

The value of a BN reaches its neuron directly, through a residual `add` (the
LIF after the add), through ops that leave the scale of the values alone
(identity, pooling, flatten), and across block boundaries. A tdBN that reaches
no neuron keeps vth = 1; one that reaches neurons with different thresholds
(fan-out, or a block instance shared by call sites) is an error.
"""

from __future__ import annotations

from functools import lru_cache

from snnc.diagnostics import Note, SnncError
from snnc.ir.graph import Graph, Node

# Ops between a BN and its neuron that do not rescale what the neuron receives.
PASS_THROUGH = ("add", "identity", "avgpool", "maxpool", "adaptive_avgpool", "flatten")
NO_NEURON_VTH = 1.0

Frame = tuple[str | None, str]  # (scope: None for the top level or a block name, a call node in it)


def assign_tdbn_thresholds(graph: Graph) -> Graph:
    """Sets `vth` of every tdBN to the threshold of the LIF layers its output reaches."""
    scopes: dict[str | None, tuple[Node, ...]] = {None: graph.nodes, **{b.name: b.nodes for b in graph.blocks}}
    results = {b.name: b.result for b in graph.blocks}
    users: dict[str | None, dict[str, list[Node]]] = {}
    callers: dict[str, list[Frame]] = {b.name: [] for b in graph.blocks}
    for scope, nodes in scopes.items():
        table = users.setdefault(scope, {})
        for n in nodes:
            for i in n.inputs:
                table.setdefault(i, []).append(n)
            if n.op == "call":
                callers[n.attrs["block"]].append((scope, n.name))

    @lru_cache(maxsize=None)
    def neurons(scope: str | None, value: str, stack: tuple[Frame, ...]) -> frozenset[Node]:
        """The LIF nodes that `value` of `scope` reaches; `stack` holds the calls that led into `scope`."""
        out: set[Node] = set()
        for u in users[scope].get(value, ()):
            if u.op == "lif":
                out.add(u)
            elif u.op in PASS_THROUGH:
                out |= neurons(scope, u.name, stack)
            elif u.op == "call":
                block = u.attrs["block"]
                out |= neurons(block, scopes[block][0].name, stack + ((scope, u.name),))
        if scope is not None and value == results[scope]:
            # Leaving a block: back to the call that entered it, or, for a value that started
            # inside the block, to every call of this instance (they share its BNs).
            for caller, call in (stack[-1:] or callers[scope]):
                out |= neurons(caller, call, stack[:-1])
        return frozenset(out)

    def resolve(scope: str | None, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        out = []
        for n in nodes:
            if n.op == "bn" and n.attrs.get("mode") == "tdbn":
                n = n.with_attrs(vth=_threshold(n, neurons(scope, n.name, ())))
            out.append(n)
        return tuple(out)

    blocks = tuple(b.replace(nodes=resolve(b.name, b.nodes)) for b in graph.blocks)
    return graph.replace(nodes=resolve(None, graph.nodes), blocks=blocks)


def _threshold(bn: Node, lifs: frozenset[Node]) -> float:
    vths = sorted({float(n.attrs["vth"]) for n in lifs})
    if not vths:
        return NO_NEURON_VTH
    if len(vths) > 1:
        notes = [Note(f"a neuron with vth = {n.attrs['vth']:g}", n.loc)
                 for n in sorted(lifs, key=lambda n: (n.attrs["vth"], str(n.loc)))]
        raise SnncError(f"this tdbn feeds neurons with different thresholds ({', '.join(f'{v:g}' for v in vths)}); "
                        f"tdBN scales by one threshold", bn.loc,
                        "give these neurons one vth, or use a separate block or bn for each", notes=notes)
    return vths[0]
