"""plan-memory: decide what each node keeps for the backward pass, and in which form (docs/memory.md).

Policies:
- `store`: what the generated model keeps without a plan (every saved tensor as it is).
- `pack`: spikes saved for backward (a conv's, pool's, fc's input, a segment's input) are
  kept as 1 bit per value; a LIF layer fed by `add` of BN outputs and spikes keeps the BN
  inputs and the spikes instead of h, and recomputes BN, add and h in backward
  (elementwise work, as the fused bn_lif already does for h).
- `recompute`: as pack, and segments grow back through the convolutions (and pools) that feed
  their BNs, when a conv costs at most `max_macs` multiply-adds per value it stops keeping:
  its input (spikes, as bits) is kept and it runs again in backward.

Each node gets `saves` (snnc.ir.memory.SAVES) and, when it keeps something, `saved_as`
(full, bits or mixed). A recomputed segment is the LIF layer ending it (`saves=segment`,
`recompute_macs` = the MACs per sample and step it recomputes) and its members
(`saves=recomputed`, `recompute_in=<that LIF>`); its inputs are the members' inputs from
outside. The graph gets `memory=<policy>` (and `memory_max_macs` for recompute). Segments
are accepted only where snnc.ir.memory predicts fewer saved bytes than without them.
"""

from __future__ import annotations

from snnc.diagnostics import SnncError
from snnc.ir import memory as mem
from snnc.ir.analysis import node_macs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register

DEFAULT_MAX_MACS = 576  # 64 input channels x 3 x 3: ResNet-18's first stage, 1x1 convs up to 576 channels, stems
NODE_ATTRS = tuple(mem.NODE_ANNOTATIONS)
GRAPH_ATTRS = ("memory", "memory_max_macs")
# Ops a segment may recompute: elementwise (pack) and, with recompute, the layers feeding BNs.
PACK_OPS = ("bn", "add")
RECOMPUTE_OPS = PACK_OPS + ("conv", "fc", "avgpool", "maxpool", "adaptive_avgpool", "flatten", "identity")


@prop("memory-planned", "every node of the model says what it keeps for backward (plan-memory)")
def is_planned(graph: Graph) -> bool:
    return "memory" in graph.attrs and all("saves" in n.attrs for n in graph.nodes if n.op not in mem.LOSS_OPS)


def parse_policy(text: str) -> tuple[str, dict]:
    """`store`, `pack`, `recompute` or `recompute(max_macs=N)` -> (policy, pass options)."""
    spelled = text.replace(" ", "")
    name, _, rest = spelled.partition("(")
    if name not in mem.POLICIES or (rest and (name != "recompute" or not rest.endswith(")"))):
        raise SnncError(f"unknown memory policy '{text}'",
                        hint="one of store, pack, recompute, recompute(max_macs=N)")
    options: dict = {"policy": name}
    if rest:
        key, _, value = rest[:-1].partition("=")
        if key != "max_macs" or not value.isdigit():
            raise SnncError(f"memory policy '{text}': recompute takes max_macs=N (a whole number)")
        options["max_macs"] = int(value)
    return name, options


def policy_spelling(graph: Graph) -> str:
    """The memory policy a training graph was planned with, as `--memory` spells it (`store` without a plan)."""
    policy = graph.attrs.get("memory", "store")
    if policy == "recompute":
        return f"recompute(max_macs={graph.attrs['memory_max_macs']})"
    return policy


@register("plan-memory", requires=("expanded",), ensures=("memory-planned",))
def plan_memory(graph: Graph, policy: str = "store", max_macs: int = DEFAULT_MAX_MACS) -> Graph:
    """Annotate what each node saves for backward and in which form: store, pack (spikes as bits) or recompute."""
    if policy not in mem.POLICIES:
        raise SnncError(f"unknown memory policy '{policy}'", hint="one of " + ", ".join(mem.POLICIES))
    attrs = graph.attrs.set(memory=policy, memory_max_macs=max_macs if policy == "recompute" else None)
    planned = graph.replace(nodes=[_clear(n) for n in graph.nodes], attrs=attrs)
    fused = mem.fused_bns(planned)
    planned = planned.replace(nodes=[n if n.op in mem.LOSS_OPS else n.with_attrs(saves=mem.store_saves(planned, n,
                                                                                                       fused))
                                     for n in planned.nodes])
    if policy != "store":
        ops = PACK_OPS if policy == "pack" else RECOMPUTE_OPS
        for root in [n.name for n in planned.nodes if mem.is_spiking_lif(n)]:
            planned = _try_segment(planned, root, ops, max_macs)
    rules = mem.Rules(planned)
    return planned.replace(nodes=[_form(rules, n) for n in planned.nodes])


def _clear(node: Node) -> Node:
    return node.with_attrs(**{k: None for k in NODE_ATTRS})


def _form(rules: mem.Rules, node: Node) -> Node:
    """`saved_as`: bits where everything the node keeps is spikes as bits, mixed where some is."""
    saves = node.attrs.get("saves")
    if saves in (None, "nothing", "recomputed"):
        return node
    kinds = {"bits" if item.key[0] == "bits" else "full" for item in rules.items(node, saves)}
    if not kinds:
        return node
    return node.with_attrs(saved_as="mixed" if len(kinds) > 1 else kinds.pop())


def _grow(graph: Graph, root: Node, ops: tuple[str, ...], max_macs: int) -> tuple[list[str], int]:
    """Members of the segment ending at `root` (root first) and the MACs per sample and step they recompute."""
    users = graph.users
    by_name = graph.by_name
    spikes = mem.spike_storages(graph)
    storage = mem.storages(graph)
    members = [root.name]
    macs = 0
    frontier = list(root.inputs)
    while frontier:
        name = frontier.pop(0)
        node = by_name[name]
        if name in members or storage[name] in spikes:
            continue  # a spike input is kept as bits
        if node.op not in ops or node.role != root.role or any(u not in members for u in users[name]):
            continue  # kept as it is
        if node.op in ("conv", "fc"):
            cost = node_macs(node, by_name[node.inputs[0]].features)
            if cost > max_macs * mem.values(node, 1):
                continue
            macs += cost
        members.append(name)
        frontier.extend(node.inputs)
    return members, macs


def _try_segment(graph: Graph, root_name: str, ops: tuple[str, ...], max_macs: int) -> Graph:
    """The graph with the segment ending at `root_name` recomputed, if that keeps fewer bytes."""
    root = graph.node(root_name)
    members, macs = _grow(graph, root, ops, max_macs)
    if len(members) == 1:
        return graph
    inside = set(members) - {root_name}
    nodes = []
    for n in graph.nodes:
        if n.name in inside:
            n = n.with_attrs(saves="recomputed", recompute_in=root_name)
        elif n.name == root_name:
            n = n.with_attrs(saves="segment", recompute_macs=macs or None)
        nodes.append(n)
    candidate = graph.replace(nodes=nodes)
    if mem.predict(candidate).per_sample < mem.predict(graph).per_sample:
        return candidate
    return graph
