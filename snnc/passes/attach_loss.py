"""attach-loss: the training loss as an aux node reading the output and the SML exits (docs/methods.md §4, §6)."""

from __future__ import annotations

from snnc.diagnostics import Note, SnncError
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register
from snnc.passes.util import fresh_prefix

LOSS_OPS = ("sdt_loss", "tet_loss", "sml_loss")
NO_NEURON_VTH = 1.0  # the LIF default threshold, for a network without neurons


@prop("loss-attached", "exactly one loss node reads the output")
def has_loss(graph: Graph) -> bool:
    return len([n for n in graph.nodes if n.op in LOSS_OPS]) == 1


@register("attach-loss", requires=("expanded",), ensures=("loss-attached",))
def attach_loss(graph: Graph, loss: str = "sdt", tet: dict | None = None, sml: dict | None = None) -> Graph:
    """SDT or TET on the output; with SML, the distillation loss whose SNN exit uses SDT or TET.

    TET's `phi` defaults to the threshold of the neurons that feed the output layer (TET eq. 12).
    """
    out = graph.node(graph.output)
    name = fresh_prefix(graph, "loss")
    if loss == "tet":
        tet = {**tet, "phi": tet["phi"] if tet.get("phi") is not None else output_vth(graph)}
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


def output_vth(graph: Graph) -> float:
    """The vth of the LIF layers nearest the output: those whose spikes reach it through no other LIF."""
    found: dict[str, Node] = {}
    stack, seen = [graph.output], set()
    while stack:
        node = graph.node(stack.pop())
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op == "lif":
            found[node.name] = node
        else:
            stack.extend(node.inputs)
    vths = sorted({float(n.attrs["vth"]) for n in found.values()})
    if len(vths) > 1:
        raise SnncError(f"tet's phi defaults to the threshold of the neurons before the output, but they differ "
                        f"({', '.join(f'{v:g}' for v in vths)})", graph.node(graph.output).loc,
                        "give it explicitly, e.g. --recipe \"tet(phi=1.0)\"",
                        notes=[Note(f"vth = {n.attrs['vth']:g}", n.loc) for n in found.values()])
    return vths[0] if vths else NO_NEURON_VTH


def loss_node(graph: Graph) -> Node:
    return next(n for n in graph.nodes if n.op in LOSS_OPS)
