"""What a training graph keeps for the backward pass, from its IR alone (docs/memory.md).

`plan-memory` (snnc/passes/plan_memory.py) annotates each node with what it saves
(`saves`) and in which form (`saved_as`). This module holds the rules that say what
those annotations cost: which storages autograd keeps for each op of the generated
PyTorch model, which of them are shared (a spike tensor read by two convolutions is one
storage), and how many bytes one sample of each takes. `saved_bytes(graph)` sums them;
the prediction is checked against the storages counted with
`torch.autograd.graph.saved_tensors_hooks` in tests/test_memory_predict.py.

Conventions: activations are float32 (4 bytes), MaxPool's argmax indices int64; a
storage is counted once however many ops save it or views of it; parameters and buffers
are not activations and are not counted. Bits take one bit per value of their storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from snnc.ir.graph import Graph, Node
from snnc.params import OPTIONAL, Param

BYTES = 4                   # float32 activations
INDEX_BYTES = 8             # int64 indices (MaxPool's argmax)
# Ops whose output is a view of their input's storage in the generated model.
VIEW_OPS = ("flatten", "identity", "tokens", "slice", "token_map")
LOSS_OPS = ("sdt_loss", "tet_loss", "sml_loss")
POLICIES = ("store", "pack", "recompute")
# `saves`: what a node keeps for its backward pass
SAVES = ("nothing", "input", "inputs", "output", "h", "bn_input", "input_h", "mask", "segment", "recomputed")
FORMS = ("full", "bits", "mixed")
# plan-memory's annotations, allowed on every node by verify() (they are not arguments of the language)
NODE_ANNOTATIONS = {p.name: p for p in (
    Param("saves", "enum", OPTIONAL, choices=SAVES, doc="what the node keeps for backward (plan-memory)"),
    Param("saved_as", "enum", OPTIONAL, choices=FORMS, doc="full precision, bits, or both"),
    Param("recompute_in", "name", OPTIONAL, doc="recomputed in backward by the segment ending at this LIF"),
    Param("recompute_macs", "int", OPTIONAL, lo=0, doc="MACs per sample and step a segment recomputes"),
)}


def is_spiking_lif(node: Node) -> bool:
    """A LIF layer run by snnc.ops.LIF (PLIF runs apart and does not mark its spikes)."""
    return node.op == "lif" and "learn_decay" not in node.attrs


def fused_bns(graph: Graph) -> set[str]:
    """BN nodes that run inside the LIF layer reading them (fuse-lif)."""
    return {n.inputs[0] for n in graph.nodes if n.op == "lif" and n.attrs.get("fuse_bn")}


def storages(graph: Graph) -> dict[str, str]:
    """name -> the node whose output storage holds its value (through views and fused BNs)."""
    fused = fused_bns(graph)
    out: dict[str, str] = {}
    for node in graph.nodes:  # topological: a view's input is resolved before it
        view = node.op in VIEW_OPS or node.name in fused
        out[node.name] = out[node.inputs[0]] if view else node.name
    return out


def storage_of(graph: Graph, name: str) -> str:
    """The node whose output storage `name`'s value lives in."""
    return storages(graph)[name]


def spike_storages(graph: Graph) -> set[str]:
    """Nodes whose output storage holds a LIF layer's spikes (packable under pack and recompute)."""
    return {n.name for n in graph.nodes if is_spiking_lif(n)}


def steps(graph: Graph) -> int:
    """The T a sample's activations span: the network's, or the longest tit stage."""
    stages = graph.attrs.get("time_stages") or ()
    return max([int(graph.params["T"])] + [int(s[0]) for s in stages])


def values(node: Node, T: int) -> int:
    """Values one sample of `node`'s output holds over T steps."""
    return prod(node.features) * (T if "T" in node.shape else 1)


def store_saves(graph: Graph, node: Node, fused: set[str]) -> str:
    """What `node` saves in the generated model without a memory plan (policy store)."""
    op = node.op
    if op == "lif":
        if "learn_decay" in node.attrs:
            return "input_h"
        return "bn_input" if node.attrs.get("fuse_bn") else "h"
    if op == "bn":
        return "nothing" if node.name in fused else "input"
    if op == "adaptive_avgpool" and node.attrs["size"] == 1:
        return "nothing"  # torch computes it as a mean, which keeps no input
    if op in ("conv", "fc", "linear", "avgpool", "maxpool", "adaptive_avgpool", "leaky_relu", "gelu", "layernorm"):
        return "input"
    if op in ("mul", "iand", "ssa"):
        return "inputs"
    if op == "sigmoid":
        return "output"
    if op == "dropout":
        return "mask"
    return "nothing"


@dataclass(frozen=True)
class Item:
    """One storage kept for backward: `key` identifies it (shared storages share a key)."""

    key: tuple
    per_sample: float      # bytes per sample
    fixed: int = 0         # bytes independent of the batch (BN statistics)


@dataclass
class Prediction:
    """Saved activation bytes of a planned graph: per sample, plus a part independent of the batch."""

    policy: str
    steps: int
    per_sample: int = 0
    fixed: int = 0
    per_node: dict[str, int] = field(default_factory=dict)   # bytes per sample first saved by each node

    def total(self, batch: int) -> int:
        return self.per_sample * batch + self.fixed


class Rules:
    """The storages each node of a (planned) graph keeps, with their sizes."""

    def __init__(self, graph: Graph, policy: str | None = None):
        self.graph = graph
        self.by_name = graph.by_name
        self.policy = policy or graph.attrs.get("memory", "store")
        self.T = steps(graph)
        self.storage = storages(graph)
        self.spikes = spike_storages(graph) if self.policy != "store" else set()
        self.leaves = all_segment_leaves(graph)

    def value(self, name: str) -> Item:
        """The storage holding `name`'s value: bits if it holds spikes under pack/recompute."""
        s = self.storage[name]
        n = values(self.by_name[s], self.T)
        if s in self.spikes:
            return Item(("bits", s), n / 8)
        return Item(("value", s), n * BYTES)

    def new(self, node: Node, tag: str, count: float, size: int = BYTES) -> Item:
        return Item(("new", node.name, tag), count * size)

    def items(self, node: Node, saves: str) -> list[Item]:
        """The storages `node` keeps when it saves `saves`."""
        ins = node.inputs
        if saves in ("nothing", "recomputed"):
            return []
        if saves == "h":
            return [self.new(node, "h", values(node, self.T))]
        if saves == "bn_input":
            return [self.value(self.by_name[ins[0]].inputs[0])]
        if saves == "input_h":
            return [self.value(ins[0]), self.new(node, "h", values(node, self.T))]
        if saves == "output":
            return [self.value(node.name)]
        if saves == "mask":  # one mask per sample for all T steps (runtime.tokens.Dropout)
            return [self.new(node, "mask", prod(node.features))]
        if saves == "segment":
            return [self.value(leaf) for leaf in self.leaves.get(node.name, ())]
        if saves == "inputs":
            if node.op == "iand":  # (1 - a) * b keeps 1 - a (a new tensor) and b
                return [self.new(node, "not_a", values(self.by_name[ins[0]], self.T)), self.value(ins[1])]
            out = [self.value(i) for i in ins]
            if node.op == "ssa":  # and Q K^T per head: [heads, N, N] per step
                tokens = prod(self.by_name[ins[0]].features[1:])
                out.append(self.new(node, "attn", node.attrs["heads"] * tokens * tokens * self.T))
            return out
        # saves == "input"
        src = self.by_name[ins[0]]
        if node.op == "linear":  # F.linear of the transposed token map keeps a contiguous copy
            return [self.new(node, "input_copy", values(src, self.T))]
        if node.op == "layernorm":  # the channel-last copy, and mean and rstd per position
            positions = values(src, self.T) // src.features[0]
            return [self.new(node, "input_copy", values(src, self.T)), self.new(node, "stats", 2 * positions)]
        out = [self.value(ins[0])]
        if node.op == "maxpool":
            out.append(self.new(node, "indices", values(node, self.T), INDEX_BYTES))
        if node.op == "bn":  # save_mean and save_invstd, [C] each, and tdBN's weight * a*vth
            tdbn = node.attrs["mode"] == "tdbn" and node.attrs["a"] * node.attrs["vth"] != 1.0
            out.append(Item(("new", node.name, "stats"), 0.0, (3 if tdbn else 2) * src.features[0] * BYTES))
        return out


def all_segment_leaves(graph: Graph) -> dict[str, list[str]]:
    """root -> the values its segment keeps: its members' inputs that are not members, in first-use order."""
    members: dict[str, list[Node]] = {}
    for node in graph.nodes:
        root = node.attrs.get("recompute_in") or (node.name if node.attrs.get("saves") == "segment" else None)
        if root is not None:
            members.setdefault(root, []).append(node)
    out: dict[str, list[str]] = {}
    for root, nodes in members.items():
        names = {n.name for n in nodes}
        leaves = out.setdefault(root, [])
        for n in nodes:
            for i in n.inputs:
                if i not in names and i not in leaves:
                    leaves.append(i)
    return out


def segment_members(graph: Graph, root: str) -> list[str]:
    """The nodes recomputed in backward by the segment ending at `root` (root last), in graph order."""
    return [n.name for n in graph.nodes if n.name == root or n.attrs.get("recompute_in") == root]


def predict(graph: Graph, policy: str | None = None) -> Prediction:
    """Saved activation bytes per sample (and the batch-independent rest) of a graph planned by plan-memory.

    A graph without a plan is counted as policy `store` would plan it."""
    if "memory" not in graph.attrs:
        from snnc.passes.plan_memory import plan_memory

        graph = plan_memory(graph, policy or "store")
    rules = Rules(graph)
    seen: set[tuple] = set()
    pred = Prediction(rules.policy, rules.T)
    per_sample = 0.0
    for node in graph.nodes:
        if node.op in LOSS_OPS or "saves" not in node.attrs:
            continue
        own = 0.0
        for item in rules.items(node, node.attrs["saves"]):
            if item.key in seen:
                continue
            seen.add(item.key)
            own += item.per_sample
            pred.fixed += item.fixed
        if own:
            pred.per_node[node.name] = round(own)
        per_sample += own
    pred.per_sample = round(per_sample)
    return pred


def largest_batch(pred: Prediction, budget: int, param_bytes: int) -> int:
    """The largest batch whose saved activations fit `budget` beside the weights, their gradients and
    AdamW's two moments (4x the parameter bytes); 0 if not even one sample does."""
    free = budget - 4 * param_bytes - pred.fixed
    if free <= 0 or pred.per_sample <= 0:
        return 0
    return free // pred.per_sample
