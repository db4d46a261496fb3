"""Static cost figures of an expanded graph: parameters, MACs and neurons per time step, and memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from snnc.ir.graph import Graph, Node


@dataclass
class Costs:
    params: int = 0
    macs: int = 0          # multiply-accumulates per sample per time step (conv, fc, linear, ssa, mul, iand)
    lif_layers: int = 0
    neurons: int = 0       # LIF neurons per sample per time step
    per_layer: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def node_params(node: Node, in_features: tuple[int, ...]) -> int:
    a = node.attrs
    if node.op == "conv":
        return a["out"] * (in_features[0] // a["groups"]) * a["k"] ** 2 + (a["out"] if a["bias"] else 0)
    if node.op == "fc":
        return a["out"] * in_features[0] + (a["out"] if a["bias"] else 0)
    if node.op == "linear":
        return a["out"] * in_features[0] + (a["out"] if a["bias"] else 0)
    if node.op in ("bn", "layernorm"):
        return 2 * in_features[0]
    if node.op == "lif" and "learn_decay" in a:  # PLIF: one decay per layer or per channel
        return 1 if a["learn_decay"] == "layer" else node.features[0]
    return 0


def node_macs(node: Node, in_features: tuple[int, ...]) -> int:
    a = node.attrs
    if node.op == "conv":
        _, ho, wo = node.features
        return a["out"] * (in_features[0] // a["groups"]) * a["k"] ** 2 * ho * wo
    if node.op == "fc":
        return a["out"] * in_features[0]
    if node.op == "linear":
        return a["out"] * in_features[0] * in_features[1]
    if node.op == "ssa":  # Q K^T (N x N per head) then times V: 2 N^2 D, whatever the heads
        channels, positions = in_features[0], prod(in_features[1:])
        return 2 * positions * positions * channels
    if node.op in ("mul", "iand"):  # one product per output value
        return prod(node.features)
    return 0


def costs(graph: Graph, role: str = "main") -> Costs:
    """Costs of the nodes with `role` ("main": the deployed network; "aux": training-only branches)."""
    out = Costs()
    by_name = graph.by_name
    for node in graph.nodes:
        if node.role != role or not node.inputs:
            continue
        in_feat = by_name[node.inputs[0]].features
        p, m = node_params(node, in_feat), node_macs(node, in_feat)
        out.params += p
        out.macs += m
        if node.op == "lif":
            out.lif_layers += 1
            out.neurons += prod(node.features)
        if p or m or node.op == "lif":
            out.per_layer.append({"name": node.name, "op": node.op, "params": p, "macs": m,
                                  "neurons": prod(node.features) if node.op == "lif" else 0})
    return out


# ------------------------------------------------------------------ memory
BYTES_PER_VALUE = 4                      # float32 weights and activations
VIEW_OPS = ("flatten", "identity", "tokens", "slice")  # outputs that share their input's storage


def training_steps(graph: Graph) -> int:
    """The largest T a training run uses: the network's, or a longer tit stage's."""
    stages = graph.attrs.get("time_stages") or ()
    return max([int(graph.params["T"])] + [int(s[0]) for s in stages])


def activation_values(node: Node, steps: int) -> int:
    """Values one sample of `node`'s output holds over `steps` time steps (views hold none)."""
    if node.op in VIEW_OPS or not node.shape:
        return 0
    return prod(node.features) * (steps if "T" in node.shape else 1)


@dataclass(frozen=True)
class Footprint:
    """What training an expanded graph holds in memory, from its shapes alone (every role)."""

    steps: int                   # T of the longest run
    param_bytes: int             # float32 weights (gradients and optimizer state come on top)
    activation_bytes: int        # per sample, over all steps: what the backward pass keeps
    largest_params: tuple[int, Node | None] = (0, None)       # (bytes, the layer holding the most)
    largest_activations: tuple[int, Node | None] = (0, None)  # (bytes per sample, the layer)

    def as_dict(self) -> dict:
        return {"steps": self.steps, "param_bytes": self.param_bytes,
                "activation_bytes_per_sample": self.activation_bytes}


def footprint(graph: Graph) -> Footprint:
    """Parameter bytes and activation bytes per sample of `graph` (expanded: call nodes are not looked into)."""
    steps = training_steps(graph)
    by_name = graph.by_name
    params = values = 0
    top_p: tuple = (0, None)
    top_a: tuple = (0, None)
    for node in graph.nodes:
        p = node_params(node, by_name[node.inputs[0]].features) * BYTES_PER_VALUE if node.inputs else 0
        a = activation_values(node, steps) * BYTES_PER_VALUE
        params, values = params + p, values + a
        top_p = (p, node) if p > top_p[0] else top_p
        top_a = (a, node) if a > top_a[0] else top_a
    return Footprint(steps, params, values, top_p, top_a)
