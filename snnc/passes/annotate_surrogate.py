"""annotate-surrogate: number the LIF layers; under CPNG mark their beta adaptive (docs/methods.md §7)."""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.passes.registry import prop, register
from snnc.passes.util import lif_nodes, recipe_error

CPNG_SURROGATES = ("triangle", "rectangle", "arctan")


@prop("surrogate-annotated", "every LIF layer has its index and surrogate")
def is_annotated(graph: Graph) -> bool:
    return all("layer" in n.attrs for n in lif_nodes(graph))


@register("annotate-surrogate", requires=("expanded",), ensures=("surrogate-annotated",))
def annotate_surrogate(graph: Graph, cpng: dict | None = None) -> Graph:
    """Give each LIF layer its index; with cpng, check the surrogate and mark beta adaptive."""
    index = {n.name: i for i, n in enumerate(lif_nodes(graph))}
    nodes = []
    for node in graph.nodes:
        if node.name in index:
            node = node.with_attrs(layer=index[node.name])
            if cpng is not None:
                sg = node.attrs["surrogate"]
                if sg.name not in CPNG_SURROGATES:
                    raise recipe_error(
                        f"cpng needs a triangle, rectangle or arctan surrogate, but %{node.name} uses {sg}",
                        node, "set one, e.g. `surrogate triangle(beta = 1.0)` in the network file")
                if cpng.get("beta") is not None:
                    sg = sg.replace(beta=cpng["beta"])
                node = node.with_attrs(adaptive_beta=True, surrogate=sg)
        nodes.append(node)
    g = graph.replace(nodes=nodes)
    if cpng is not None:
        g = g.replace(attrs=g.attrs.set(cpng_chi_limit=cpng["chi_limit"], cpng_per_batch=cpng["per_batch"]))
    return g
