"""attach-loss: the training loss as an aux node reading the output and the SML exits (METHODS §4, §6)."""

from __future__ import annotations

from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register
from snnc.passes.util import fresh_prefix

LOSS_OPS = ("sdt_loss", "tet_loss", "sml_loss")


@prop("loss-attached", "exactly one loss node reads the output")
def has_loss(graph: Graph) -> bool:
    return len([n for n in graph.nodes if n.op in LOSS_OPS]) == 1


@register("attach-loss", requires=("expanded",), ensures=("loss-attached",))
def attach_loss(graph: Graph, loss: str = "sdt", tet: dict | None = None, sml: dict | None = None) -> Graph:
    """SDT or TET on the output; with SML, the distillation loss whose SNN exit uses SDT or TET."""
    out = graph.node(graph.output)
    name = fresh_prefix(graph, "loss")
    if sml is not None:
        attrs = dict(alpha=sml["alpha"], lam=sml["lam"], tdis=sml["tdis"], inner=loss)
        if loss == "tet":
            attrs.update(tet_lam=tet["lam"], phi=tet["phi"])
        node = Node(name, "sml_loss", (out.name, *graph.aux_outputs), Attrs(attrs), (), "aux", out.loc)
    elif loss == "tet":
        node = Node(name, "tet_loss", (out.name,), Attrs(lam=tet["lam"], phi=tet["phi"]), (), "aux", out.loc)
    else:
        node = Node(name, "sdt_loss", (out.name,), Attrs(), (), "aux", out.loc)
    return graph.replace(nodes=list(graph.nodes) + [node])


def loss_node(graph: Graph) -> Node:
    return next(n for n in graph.nodes if n.op in LOSS_OPS)
