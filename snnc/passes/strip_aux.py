"""strip-aux: delete the SML modules, the loss and every training-only annotation (docs/methods.md §6)."""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.ir.schema import TRAINING_ONLY_LIF_ATTRS
from snnc.passes.plan_memory import GRAPH_ATTRS as MEMORY_GRAPH_ATTRS, NODE_ATTRS as MEMORY_NODE_ATTRS
from snnc.passes.registry import prop, register

TRAINING_GRAPH_ATTRS = ("cpng_chi_limit", "cpng_per_batch", "sml_blocks", "time_stages", *MEMORY_GRAPH_ATTRS)


@prop("no-aux", "no aux nodes, aux outputs or training annotations remain")
def has_no_aux(graph: Graph) -> bool:
    return not graph.aux_outputs and all(n.role == "main" and n.op != "dropout" for n in graph.nodes) and not any(
        k in n.attrs for n in graph.nodes if n.op == "lif" for k in TRAINING_ONLY_LIF_ATTRS)


@register("strip-aux", requires=("expanded",), ensures=("no-aux",), phase="inference")
def strip_aux(graph: Graph) -> Graph:
    """Drop aux nodes (SML modules, losses), aux outputs, dropout, and surrogate/mask annotations on LIF layers."""
    drop = {k: None for k in TRAINING_ONLY_LIF_ATTRS}
    unplanned = {k: None for k in MEMORY_NODE_ATTRS}  # plan-memory's annotations (what backward keeps)
    by_name = graph.by_name

    def through(name: str) -> str:  # a dropout is the identity at inference: its readers read its input
        while by_name[name].op == "dropout":
            name = by_name[name].inputs[0]
        return name

    nodes = [(n.with_attrs(**drop) if n.op == "lif" else n).with_attrs(**unplanned)
             .replace(inputs=tuple(through(i) for i in n.inputs))
             for n in graph.nodes if n.role == "main" and n.op != "dropout"]
    attrs = graph.attrs.set(phase="stripped", **{k: None for k in TRAINING_GRAPH_ATTRS})
    return graph.replace(nodes=nodes, output=through(graph.output), aux_outputs=(), attrs=attrs)
