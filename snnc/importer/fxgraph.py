"""Labelled dataflow graphs for comparing computations: the IR's, a traced model's, a traced ANN's.

A node's label is its op and the attributes that define its computation
(channels, kernel, stride, padding, BN scale, every neuron setting) plus its
role. `view` contracts `identity` nodes, merges chained adds into one n-ary
add and adds one `output` node per output; `compare` finds an isomorphism
(networkx VF2++) or says what differs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import networkx as nx

from snnc.ir.graph import Graph, Node

LOSS_OPS = ("sdt_loss", "tet_loss", "sml_loss")
ORDERED = ("cat", "iand", "ssa")  # ops whose inputs are not interchangeable: each input gets a numbered port


@dataclass(frozen=True)
class LNode:
    name: str
    label: tuple
    inputs: tuple[str, ...]
    role: str = "main"
    module: str | None = None    # the module attribute it calls, model side


def label(op: str, attrs: dict, in_channels: int | None, detail: bool = True) -> tuple:
    """The comparable identity of a layer: its op and the attributes that define its computation."""
    a = attrs
    if op == "input":
        return ("input", a["kind"], tuple(a["dims"]), a.get("encoding"), a.get("seed"))
    if op == "conv":
        return ("conv", in_channels, a["out"], a["k"], a["stride"], a["pad"], a["groups"], bool(a["bias"]))
    if op == "bn":
        scale = a["a"] * a["vth"] if a.get("mode") == "tdbn" else a.get("scale", 1.0)
        return ("bn", in_channels, float(a["eps"]), float(a["momentum"]), float(scale))
    if op == "lif":
        if not detail:
            return ("lif",)
        return ("lif", float(a["decay"]), float(a["vth"]), a["reset"], bool(a["decay_input"]),
                bool(a["detach_reset"]), str(a["surrogate"]), float(a.get("mask_p", 0.0)),
                bool(a.get("mask_rescale", False)), int(a.get("layer", 0)), bool(a.get("adaptive_beta", False)),
                a.get("learn_decay"))
    if op in ("avgpool", "maxpool"):
        return (op, a["k"], a["stride"], a["pad"])
    if op == "adaptive_avgpool":
        return (op, a["size"])
    if op in ("fc", "linear"):
        return (op, in_channels, a["out"], bool(a["bias"]))
    if op == "layernorm":
        return (op, in_channels, float(a["eps"]))
    if op == "leaky_relu":
        return (op, float(a["slope"]))
    if op == "time_weights":
        return (op, tuple(float(w) for w in a["weights"]))
    if op in ("flatten", "add", "mean_t", "two_decode", "identity", "cat", "mul", "iand", "gelu", "sigmoid", "tokens",
              "sum_tokens", "mean_tokens"):
        return (op,)
    return (op,) + tuple(sorted((k, repr(v)) for k, v in attrs.items()))


# ------------------------------------------------------------------- IR side
def ir_nodes(nodes: tuple[Node, ...] | list[Node], detail: bool = True) -> list[LNode]:
    """Labelled nodes of IR nodes (loss nodes left out)."""
    shapes = {n.name: n.features for n in nodes}
    out = []
    for n in nodes:
        if n.op in LOSS_OPS:
            continue
        feat = shapes[n.inputs[0]] if n.inputs else ()
        out.append(LNode(n.name, label(n.op, dict(n.attrs), feat[0] if feat else None, detail), n.inputs, n.role))
    return out


def ir_view(graph: Graph, detail: bool = True) -> nx.DiGraph:
    return view(ir_nodes(graph.nodes, detail), [("main", graph.output)] +
                [(f"aux{i}", a) for i, a in enumerate(graph.aux_outputs)])


# --------------------------------------------------------------------- views
def view(nodes: list[LNode], outputs: list[tuple[str, str]], roles_from_outputs: bool = False) -> nx.DiGraph:
    """A DiGraph of labelled nodes: identities contracted, add trees merged, one `output` node per output.

    `roles_from_outputs`: a node's role is main if the main output depends on it, aux otherwise
    (the model side has no roles of its own).
    """
    alias: dict[str, str] = {}
    by_name: dict[str, LNode] = {}
    for n in nodes:
        ins = tuple(alias.get(i, i) for i in n.inputs)
        if n.label == ("identity",):
            alias[n.name] = ins[0]
            continue
        by_name[n.name] = LNode(n.name, n.label, ins, n.role, n.module)
    readers = Counter(i for n in by_name.values() for i in n.inputs)
    outputs = [(port, alias.get(v, v)) for port, v in outputs]
    readers.update(v for _, v in outputs)
    merged: set[str] = set()
    for n in list(by_name.values()):
        if n.label[0] == "add":
            by_name[n.name] = n = LNode(n.name, n.label, _add_inputs(n, by_name, readers, merged), n.role, n.module)
    g = nx.DiGraph()
    kept = [n for n in by_name.values() if n.name not in merged]
    for n in kept:
        g.add_node(n.name)
        for j, i in enumerate(n.inputs):
            if n.label[0] in ORDERED:
                port = f"{n.name}#in{j}"
                g.add_node(port, label=("port", j))
                g.add_edge(i, port)
                g.add_edge(port, n.name)
            else:
                g.add_edge(i, n.name)
    main = nx.ancestors(g, outputs[0][1]) | {outputs[0][1]} if roles_from_outputs else set()
    for n in kept:
        role = ("main" if n.name in main else "aux") if roles_from_outputs else n.role
        g.nodes[n.name]["label"] = (("add", len(n.inputs)) if n.label[0] == "add" else n.label) + (role,)
    for port, v in outputs:
        g.add_node(f"#{port}", label=("output", port))
        g.add_edge(v, f"#{port}")
    return g


def _add_inputs(n: LNode, by_name, readers, merged) -> tuple[str, ...]:
    out = []
    for i in n.inputs:
        inner = by_name.get(i)
        if inner is not None and inner.label[0] == "add" and readers[i] == 1:
            merged.add(i)
            out += _add_inputs(inner, by_name, readers, merged)
        else:
            out.append(i)
    return tuple(out)


def compare(expected: nx.DiGraph, actual: nx.DiGraph, names=("IR", "model")) -> tuple[dict | None, list[str]]:
    """(node mapping expected -> actual, []) when isomorphic, else (None, what differs)."""
    left = Counter(d["label"] for _, d in expected.nodes(data=True))
    right = Counter(d["label"] for _, d in actual.nodes(data=True))
    problems = [f"{lab}: {names[0]} has {left[lab]}, {names[1]} has {right[lab]}"
                for lab in sorted(set(left) | set(right), key=repr) if left[lab] != right[lab]]
    if problems:
        return None, problems
    mapping = nx.vf2pp_isomorphism(expected, actual, node_label="label")
    if mapping is not None:
        return mapping, []

    def wiring(g):
        return Counter((d["label"], tuple(sorted(repr(g.nodes[p]["label"]) for p in g.predecessors(n))))
                       for n, d in g.nodes(data=True))
    a, b = wiring(expected), wiring(actual)
    return None, ["same layers, connected differently"] + [
        f"{lab} reading {ins}: {names[0]} has {a[(lab, ins)]}, {names[1]} has {b[(lab, ins)]}"
        for lab, ins in sorted(set(a) | set(b), key=repr) if a[(lab, ins)] != b[(lab, ins)]][:12]
