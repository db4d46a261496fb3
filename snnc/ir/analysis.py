"""Static cost figures of an expanded graph: parameters, MACs and neurons per time step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from snnc.ir.graph import Graph, Node


@dataclass
class Costs:
    params: int = 0
    macs: int = 0          # multiply-accumulates per sample per time step (conv and fc)
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
    if node.op == "bn":
        return 2 * in_features[0]
    return 0


def node_macs(node: Node, in_features: tuple[int, ...]) -> int:
    a = node.attrs
    if node.op == "conv":
        _, ho, wo = node.features
        return a["out"] * (in_features[0] // a["groups"]) * a["k"] ** 2 * ho * wo
    if node.op == "fc":
        return a["out"] * in_features[0]
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
