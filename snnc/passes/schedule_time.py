"""schedule-time (TIT): record the stages (T, epochs[, lr]) the training script switches between.

docs/methods.md §5.
"""

from __future__ import annotations

from snnc.ir.graph import Graph
from snnc.passes.registry import register


@register("schedule-time", requires=("expanded",))
def schedule_time(graph: Graph, stages: tuple = ()) -> Graph:
    """Store the time schedule as a graph attribute; the first stage's T becomes the network's T."""
    stages = tuple(tuple(s) for s in stages)
    return graph.replace(attrs=graph.attrs.set(time_stages=stages),
                         params=graph.params.set(T=stages[0][0]))
