"""Networks too large to train: refused from the IR's shapes before anything is allocated.

`footprint()` (snnc/ir/analysis.py) predicts float32 parameter bytes and the
activation bytes one sample keeps for the backward pass over all T steps. Above
the limits below no single device can train the network, and the generated
train.py would die in the allocator (or swap for minutes first), so the
compiler refuses it with a located diagnostic. SNNC_ALLOW_LARGE=1 builds it
anyway; `snnc info` warns from the lower thresholds on.

The zoo for scale: resnet34 on 224x224 ImageNet at T=4 has 87 MB of parameters
and 208 MB of activations per sample.
"""

from __future__ import annotations

import os

from snnc.diagnostics import Loc, Note, SnncError
from snnc.frontend import ast
from snnc.ir.analysis import Footprint, footprint
from snnc.ir.graph import Graph, Node
from snnc.recipes import RecipeSet

GB = 10**9
# 8e9 float32 parameters; with gradients and AdamW's two moments training needs 4x that, 128 GB:
# about one whole 141 GB H200.
MAX_PARAM_BYTES = 32 * GB
# Per sample: a batch of 32 then needs 128 GB (resnet34-ImageNet at T=4 needs 0.2 GB).
MAX_ACTIVATION_BYTES = 4 * GB
WARN_PARAM_BYTES = 1 * GB            # 250M parameters: ten times the largest zoo network
WARN_ACTIVATION_BYTES = 1 * GB       # a batch of 64 needs 64 GB
ALLOW_LARGE = "SNNC_ALLOW_LARGE"
HINT_OVERRIDE = f"{ALLOW_LARGE}=1 builds it anyway"


def allowed() -> bool:
    return os.environ.get(ALLOW_LARGE, "") not in ("", "0")


def human_bytes(n: int) -> str:
    if n >= 10**18:  # beyond any device; written from the digits, as it may not fit a float
        digits = str(n)
        return f"{digits[0]}.{digits[1:3]}e{len(digits) - 1} bytes"
    for unit, size in (("PB", 10**15), ("TB", 10**12), ("GB", GB), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_budget(graph: Graph, net: ast.Network | None = None, recipe: RecipeSet | None = None,
                 overrides: dict | None = None) -> Footprint:
    """The footprint of an expanded training graph, or a located SnncError if it exceeds a limit.

    `net` locates T, `recipe` the sml and tit calls that size auxiliary branches and stages, and
    `overrides` tells whether T came from --set: the notes point at whichever the user wrote."""
    fp = footprint(graph)
    if allowed():
        return fp
    if fp.param_bytes > MAX_PARAM_BYTES:
        own, node = fp.largest_params
        loc, notes = _where(node, recipe)
        raise SnncError(
            f"network '{graph.network}' is too large to train: {human_bytes(fp.param_bytes)} of float32 parameters "
            f"(at most {human_bytes(MAX_PARAM_BYTES)}); '{node.name}' alone holds {human_bytes(own)}",
            loc, f"{'lower sml(k = ...)' if notes else 'use fewer or narrower layers'}; {HINT_OVERRIDE}", notes)
    if fp.activation_bytes > MAX_ACTIVATION_BYTES:
        own, node = fp.largest_activations
        loc, notes = _where(node, recipe)
        raise SnncError(
            f"network '{graph.network}' is too large to train: {human_bytes(fp.activation_bytes)} of activations "
            f"per sample over T = {fp.steps} steps (at most {human_bytes(MAX_ACTIVATION_BYTES)}); "
            f"'{node.name}' alone holds {human_bytes(own)}",
            loc, f"lower T, the input size or the widths; {HINT_OVERRIDE}",
            _steps_notes(graph, fp.steps, net, recipe, overrides) + notes)
    return fp


def warnings(fp: Footprint) -> list[str]:
    """What `snnc info` says about a footprint above the warning thresholds."""
    out = []
    if fp.param_bytes > WARN_PARAM_BYTES:
        out.append(f"{human_bytes(fp.param_bytes)} of float32 parameters: training keeps about 4x that "
                   f"(gradients and optimizer state); snnc refuses more than {human_bytes(MAX_PARAM_BYTES)}")
    if fp.activation_bytes > WARN_ACTIVATION_BYTES:
        out.append(f"{human_bytes(fp.activation_bytes)} of activations per sample over T = {fp.steps}: a batch of "
                   f"64 needs {human_bytes(64 * fp.activation_bytes)}; snnc refuses more than "
                   f"{human_bytes(MAX_ACTIVATION_BYTES)} per sample")
    return out


def _call_loc(recipe: RecipeSet | None, name: str) -> Loc | None:
    call = recipe.calls.get(name) if recipe else None
    return call.loc if call else None


def _where(node: Node, recipe: RecipeSet | None) -> tuple[Loc | None, list[Note]]:
    """The location to report a layer at: its own, or for an sml module the recipe that sized it."""
    loc = _call_loc(recipe, "sml")
    if node.role != "aux" or loc is None:
        return node.loc, []
    return loc, [Note(f"'{node.name}' is an sml module attached here", node.loc)]


def _steps_notes(graph: Graph, steps: int, net: ast.Network | None, recipe: RecipeSet | None,
                 overrides: dict | None) -> list[Note]:
    """Where the T of the footprint was written: a tit stage, --set, or the network header."""
    if any(int(stage[0]) == steps for stage in graph.attrs.get("time_stages") or ()):
        return [Note(f"a tit stage runs T = {steps} steps", _call_loc(recipe, "tit"))]
    if overrides and "T" in overrides:
        return [Note(f"T = {steps} comes from --set T={overrides['T']}")]
    decl = next((p for p in net.params if p.name == "T"), None) if net else None
    return [Note(f"T = {steps} is declared here", decl.loc)] if decl else []
