"""annotate-surrogate: number the LIF layers; under CPNG mark their beta adaptive (docs/methods.md §7)."""

from __future__ import annotations

from snnc.ir.graph import Graph, Node
from snnc.passes.registry import prop, register
from snnc.passes.util import lif_nodes, recipe_error

CPNG_SURROGATES = ("triangle", "rectangle", "arctan")
# Attention's sums of spike products: h is a non-negative count of coincidences, far from normal.
SPIKE_COUNTS = ("ssa", "sum_tokens")
# Ops that carry a value to a neuron without changing what it is (cf. tdBN's PASS_THROUGH).
CARRIERS = ("add", "identity", "dropout", "avgpool", "maxpool", "adaptive_avgpool", "flatten", "tokens")


@prop("surrogate-annotated", "every LIF layer has its index and surrogate")
def is_annotated(graph: Graph) -> bool:
    return all("layer" in n.attrs for n in lif_nodes(graph))


def adapts(graph: Graph, lif: Node) -> bool:
    """False only for a neuron whose input is, through adds, identities, pooling and reshapes, nothing
    but attention's spike counts (ssa, sum_tokens); True for everything else.

    CPNG models h as normal with the measured mean and deviation (CPNG eq. 6). A BN before the
    neuron makes that model fit; a LayerNorm standardises each token over its channels instead of
    each channel over the batch, which leaves h as near normal, and a layer without a norm keeps
    the measured moments as before. The attention products are non-negative counts of spike
    coincidences (times a scale), mostly zero: chi of a normal fitted to them says nothing about
    how many surrogate gradients are non-zero, so those neurons keep their beta.
    """
    stack, seen, sources = [lif.inputs[0]], set(), set()
    while stack:
        node = graph.node(stack.pop())
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op in CARRIERS:
            stack.extend(node.inputs)
        else:
            sources.add(node.op)
    return not sources <= set(SPIKE_COUNTS)


@register("annotate-surrogate", requires=("expanded",), ensures=("surrogate-annotated",))
def annotate_surrogate(graph: Graph, cpng: dict | None = None) -> Graph:
    """Give each LIF layer its index; with cpng, mark beta adaptive but where attention's spike counts feed it."""
    layers = lif_nodes(graph)
    index = {n.name: i for i, n in enumerate(layers)}
    adaptive = {n.name for n in layers if adapts(graph, n)} if cpng is not None else set()
    if cpng is not None and not adaptive:
        raise recipe_error(f"cpng has no neuron to adapt in network '{graph.network}': every neuron reads "
                           f"attention's spike counts (ssa, sum_tokens)", layers[0] if layers else None,
                           "cpng steers neurons whose potentials spread like a normal, e.g. after conv -> bn")
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
