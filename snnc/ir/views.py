"""Derived views of the IR: a networkx DiGraph, Graphviz DOT text, JSON."""

from __future__ import annotations

import json

import networkx as nx

from snnc.ir.graph import Graph, Node
from snnc.ir.printer import format_attrs, format_shape
from snnc.params import format_value


def to_nx(graph: Graph) -> nx.DiGraph:
    """Nodes carry op, attrs, shape and role; edges run input -> user with the input position."""
    g = nx.DiGraph(network=graph.network, output=graph.output, aux_outputs=graph.aux_outputs)
    for n in graph.nodes:
        g.add_node(n.name, op=n.op, attrs=dict(n.attrs), shape=n.shape, role=n.role)
        for pos, i in enumerate(n.inputs):
            g.add_edge(i, n.name, index=pos)
    return g


def topological_names(graph: Graph) -> list[str]:
    """A deterministic topological order computed by networkx (raises on a cycle)."""
    return list(nx.lexicographical_topological_sort(to_nx(graph), key=lambda n: n))


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{").replace("}", "\\}")


def to_dot(graph: Graph) -> str:
    lines = [f'digraph "{graph.network}" {{', "  rankdir=TB;", '  node [shape=record, fontname="monospace"];']
    for n in graph.nodes:
        label = f"{n.name}|{n.op} {format_attrs(n.attrs)}|{format_shape(n.shape)}"
        style = ', style=dashed, color=gray40' if n.role == "aux" else ""
        lines.append(f'  "{n.name}" [label="{_dot_escape(label)}"{style}];')
    for n in graph.nodes:
        for i in n.inputs:
            lines.append(f'  "{i}" -> "{n.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _json_value(v):
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    return format_value(v)


def _node_json(n: Node) -> dict:
    return {"name": n.name, "op": n.op, "inputs": list(n.inputs),
            "attrs": {k: _json_value(v) for k, v in n.attrs.items()},
            "shape": list(n.shape), "role": n.role,
            "loc": n.loc.span_text() if n.loc else None}


def to_json(graph: Graph) -> str:
    data = {
        "network": graph.network,
        "params": {k: _json_value(v) for k, v in graph.params.items()},
        "attrs": {k: _json_value(v) for k, v in graph.attrs.items()},
        "blocks": [{"name": b.name, "params": {k: _json_value(v) for k, v in b.params.items()},
                    "nodes": [_node_json(n) for n in b.nodes], "result": b.result} for b in graph.blocks],
        "nodes": [_node_json(n) for n in graph.nodes],
        "output": graph.output,
        "aux_outputs": list(graph.aux_outputs),
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
