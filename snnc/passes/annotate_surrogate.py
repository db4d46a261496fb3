"""annotate-surrogate: number the LIF layers; under CPNG mark their beta adaptive (docs/methods.md §7)."""

from __future__ import annotations

from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register
from snnc.passes.util import lif_nodes, recipe_error

CPNG_SURROGATES = ("triangle", "rectangle", "arctan")
NORMALISERS = ("bn", "layernorm")
# Ops that carry a normalised value to a neuron without rescaling it as a whole (cf. tdBN's PASS_THROUGH).
CARRIERS = ("add", "identity", "dropout", "avgpool", "maxpool", "adaptive_avgpool", "flatten", "tokens")


@prop("surrogate-annotated", "every LIF layer has its index and surrogate")
def is_annotated(graph: Graph) -> bool:
    return all("layer" in n.attrs for n in lif_nodes(graph))


def normalised(graph: Graph, lif: Node) -> bool:
    """True when the neuron's input comes from a bn or layernorm, through adds, identities, pooling or reshapes.

    CPNG models h as normal with the measured mean and deviation (CPNG eq. 6); a normalisation
    just before the neuron is what makes that model fit. A LayerNorm standardises each token over
    its channels instead of each channel over the batch, which gives h the same near-normal spread.
    """
    stack, seen = [lif.inputs[0]], set()
    while stack:
        node = graph.node(stack.pop())
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op in NORMALISERS:
            return True
        if node.op in CARRIERS:
            stack.extend(node.inputs)
    return False


@register("annotate-surrogate", requires=("expanded",), ensures=("surrogate-annotated",))
def annotate_surrogate(graph: Graph, cpng: dict | None = None) -> Graph:
    """Give each LIF layer its index; with cpng, mark beta adaptive where a BN or LayerNorm feeds the neuron."""
    layers = lif_nodes(graph)
    index = {n.name: i for i, n in enumerate(layers)}
    adaptive = {n.name for n in layers if normalised(graph, n)} if cpng is not None else set()
    if cpng is not None and not adaptive:
        raise recipe_error(f"cpng adapts neurons fed by a bn or layernorm, and network '{graph.network}' has none",
                           layers[0] if layers else None, "normalise the inputs of its neurons: conv -> bn -> lif")
    nodes = []
    for node in graph.nodes:
        if node.name in index:
            node = node.with_attrs(layer=index[node.name])
            if node.name in adaptive:
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
