"""annotate-mask (MSG): every LIF layer masks its surrogate gradient with probability mask_p (docs/methods.md §3)."""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.passes.registry import register


@register("annotate-mask", requires=("surrogate-annotated",))
def annotate_mask(graph: Graph, mask_p: float = 0.5, rescale: bool = False) -> Graph:
    """Set mask_p and mask_rescale on every main LIF layer."""
    return graph.replace(nodes=[n.with_attrs(mask_p=mask_p, mask_rescale=rescale)
                                if n.op == "lif" and n.role == "main" else n for n in graph.nodes])
