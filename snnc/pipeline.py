"""From a source and a recipe to the list of passes to run, and running them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from snnc import frontend
from snnc.budget import check_budget
from snnc.frontend import ast
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.passes import Step, run_pipeline
from snnc.passes.attach_loss import loss_node
from snnc.recipes import DEFAULT, RecipeSet, parse_recipe

FRONTEND_STEPS = [Step("expand-blocks")]


@dataclass
class Compiled:
    """A network after the frontend and the recipe's passes, with every intermediate IR."""

    source_file: str
    network: ast.Network
    recipe: RecipeSet
    graph: Graph
    stages: list[tuple[str, Graph]] = field(default_factory=list)  # (pass name, IR after it)


def recipe_steps(recipe: RecipeSet, fuse: bool = True, memory: str | None = None) -> list[Step]:
    """The training passes a recipe selects, in pipeline order; plan-memory last when a memory policy is given."""
    steps = [Step("annotate-surrogate", {"cpng": recipe.get("cpng")})]
    if "msg" in recipe:
        steps.append(Step("annotate-mask", dict(recipe.get("msg"))))
    if "sml" in recipe:
        steps.append(Step("insert-surrogate-modules", {**recipe.get("sml"), "loc": recipe.calls["sml"].loc}))
    if "two" in recipe:
        steps.append(Step("attach-decoding", dict(recipe.get("two"))))
    steps.append(Step("attach-loss", {"loss": recipe.loss, "tet": recipe.get("tet"), "sml": recipe.get("sml")}))
    if "tit" in recipe:
        steps.append(Step("schedule-time", {"stages": recipe.get("tit")["stages"]}))
    if fuse:
        steps.append(Step("fuse-lif"))
    if memory is not None:
        steps.append(Step("plan-memory", memory_options(memory)))
    return steps


def memory_options(memory: str) -> dict:
    """plan-memory's options for a policy spelling (`pack`, `recompute(max_macs=2304)`; docs/memory.md)."""
    from snnc.passes.plan_memory import parse_policy

    return parse_policy(memory)[1]


def inference_steps(decoding_weights: tuple[float, ...] | None = None) -> list[Step]:
    """The inference pipeline: strip-aux, fold-bn, bake-decoding, dce."""
    return [Step("strip-aux"), Step("fold-bn"), Step("bake-decoding", {"weights": decoding_weights}), Step("dce")]


def compile_source(path_or_text: str | Path, overrides: dict | None = None, file: str | None = None,
                   recipe: str | None = None, fuse: bool = True, memory: str | None = None) -> Compiled:
    """Frontend, then the recipe's passes (none when `recipe` is None), verifying after each.

    `memory` (store, pack, recompute; docs/memory.md) adds plan-memory after the recipe's passes."""
    net, graph = frontend.load(path_or_text, overrides, file)
    verify(graph)
    named = {r.name: r for r in net.recipes}
    recipes = parse_recipe(recipe or DEFAULT, named)
    if memory is not None:
        memory_options(memory)  # a misspelt policy fails before any work
    steps = list(FRONTEND_STEPS) + (recipe_steps(recipes, fuse, memory) if recipe is not None else [])
    stages = [("build", graph)]
    final = run_pipeline(graph, steps, on_step=lambda i, name, g: stages.append((name, g)))
    check_budget(final, net, recipes, overrides)  # before anything is generated or allocated
    if recipe is not None and "tet" in recipes and "phi" not in recipes.get("tet"):
        recipes = recipes.filled("tet", phi=loss_node(final).attrs["phi"])  # spell the default attach-loss chose
    return Compiled(file or str(path_or_text), net, recipes, final, stages)
