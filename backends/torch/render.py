"""Renders the generated PyTorch files (model.py, train.py) from their Jinja templates."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import jinja2

from snnc import __version__
from snnc.ir.graph import Graph
from snnc.backends.torch.lower import float_literal, lower_model
from snnc.backends.torch.memory_lower import plan as memory_plan
from snnc.diagnostics import SnncError
from snnc.runfolder import finite_number
from snnc.names import comment_text


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("snnc.backends.torch").joinpath("templates", name).read_text("utf-8"))
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def _names(items) -> str:
    return ", ".join(repr(i) for i in items)


def render_model(graph: Graph, source: str, recipe: str, backend: str = "auto") -> str:
    ctx = lower_model(graph, backend)
    memory = memory_plan(ctx, graph)  # plan-memory's segments and spike packing (docs/memory.md)
    every_line = [*memory.lines, *(ln for seg in memory.segments for ln in seg.lines)]
    recipe = comment_text(recipe)
    inp = graph.node("x")
    classes = graph.node(graph.output).shape[-1]
    text = environment().get_template("model.py.jinja").render(
        version=__version__, source=comment_text(source), network=graph.network, recipe=recipe,
        network_repr=repr(graph.network), T=int(graph.params["T"]),
        input_kind=inp.attrs["kind"], input_kind_repr=repr(inp.attrs["kind"]),
        input_dims=", ".join(str(int(d)) for d in inp.attrs["dims"]),
        input_dims_tuple=repr(tuple(int(d) for d in inp.attrs["dims"])), classes=int(classes),
        backend_repr=repr(backend), aux_count=len(ctx.aux),
        node_modules=[(repr(k), repr(v)) for k, v in ctx.node_modules.items()],
        lif_layers=_names(ctx.lif_layers), cpng_layers=_names(ctx.cpng_layers),
        decode_repr=repr(ctx.decode), modules=ctx.modules, lines=memory.lines,
        output=ctx.output, aux=", ".join(ctx.aux), uses_functional=any("F." in ln.expr for ln in every_line),
        uses_torch=any("torch." in ln.expr for ln in every_line), memory=memory.policy, segments=memory.segments,
    )
    compile(text, "model.py", "exec")  # generated code must always be valid Python
    return text


_RECIPE_RE = re.compile(r"[A-Za-z0-9_=.,()\[\] +\-]*\Z")


def _checked(text: str, what: str) -> str:
    """repr() of a recipe spelling after checking it holds only names, numbers and punctuation."""
    if not _RECIPE_RE.match(text):
        raise ValueError(f"refusing to emit {what} {text!r}")
    return repr(text)


def _f(x) -> str:
    return float_literal(x)


def loss_code(graph: Graph) -> tuple[str, str]:
    """(expression, docstring) of compute_loss for the graph's loss node."""
    from snnc.passes.attach_loss import loss_node

    node = loss_node(graph)
    a = node.attrs
    if node.op == "sdt_loss":
        return "losses.sdt(outputs, y)", "SDT: CE(mean_t O[t], y) (docs/methods.md §4)."
    if node.op == "tet_loss":
        return (f"losses.tet(outputs, y, lam={_f(a['lam'])}, phi={_f(a['phi'])})",
                "TET: (1 - lam) mean_t CE(O[t], y) + lam mean((O - phi)^2) (docs/methods.md §4).")
    inner = f"losses.tet_inner(lam={_f(a['tet_lam'])}, phi={_f(a['phi'])})" if a["inner"] == "tet" else "None"
    return (f"losses.sml(outputs, aux, y, alpha={_f(a['alpha'])}, lam={_f(a['lam'])}, tdis={_f(a['tdis'])}, "
            f"inner={inner})",
            f"SML distillation over {len(node.inputs) - 1} surrogate module(s), SNN exit loss "
            f"{a['inner'].upper()} (docs/methods.md §6).")


LOOPS = ("trainer", "inline")  # train.py calls the library's trainer, or spells its loop out


def render_train(graph: Graph, source: str, recipe: str, slug: str, loop: str = "trainer") -> str:
    if loop not in LOOPS:
        raise SnncError(f"unknown loop '{loop}'", hint="one of " + ", ".join(LOOPS))
    expr, doc = loss_code(graph)
    a = graph.attrs
    cpng = None
    if "cpng_chi_limit" in a:
        cpng = {"chi_limit": _f(a["cpng_chi_limit"]), "per_batch": repr(bool(a["cpng_per_batch"])),
                "every": "batch" if a["cpng_per_batch"] else "epoch"}
    two = None
    decode = [n for n in graph.nodes if n.op == "two_decode"]
    if decode:
        two = {"m": _f(decode[0].attrs["m"]), "warmup": repr(int(decode[0].attrs["warmup"]))}
    stages = None
    if "time_stages" in a:
        stages = repr([tuple(int(v) if i < 2 else float(v) for i, v in enumerate(s)) for s in a["time_stages"]])
    template = "train.py.jinja" if loop == "trainer" else "train_inline.py.jinja"
    text = environment().get_template(template).render(
        version=__version__, source=comment_text(source), network=graph.network, recipe=comment_text(recipe),
        slug=slug,
        module_name=repr(f"snnc_model_{graph.network}"), recipe_repr=_checked(recipe, "recipe"),
        slug_repr=_checked(slug, "recipe"), cpng=cpng, two=two, stages=stages, loss_expr=expr, loss_doc=doc)
    compile(text, "train.py", "exec")
    return text


def _preprocess_literals(preprocess: dict | None, channels: int) -> dict | None:
    """Checked literals of x = (raw * scale - mean[c]) / std[c], or None when the run recorded none."""
    if preprocess is None:
        return None
    scale, mean, std = preprocess.get("scale"), preprocess.get("mean"), preprocess.get("std")
    ok = (finite_number(scale) and scale > 0 and all(isinstance(v, list) and len(v) in (1, channels)
          and all(finite_number(x) for x in v) for v in (mean, std)) and all(x > 0 for x in std))
    if not ok:
        raise SnncError("the run manifest's data.preprocess is malformed", hint="restore manifest.json, or retrain")
    return {"scale": _f(scale), "mean": "(" + ", ".join(_f(x) for x in mean) + ",)",
            "std": "(" + ", ".join(_f(x) for x in std) + ",)", "raw": comment_text(str(preprocess.get("raw", "")))}


def render_deploy(graph: Graph, source: str, recipe: str, preprocess: dict | None = None) -> tuple[str, dict[str, str]]:
    """(the standalone inference model.py, its IR node -> module attribute map)."""
    ctx = lower_model(graph, deploy=True)
    inp = graph.node("x")
    text = environment().get_template("deploy_model.py.jinja").render(
        version=__version__, source=comment_text(source), network=graph.network, recipe=comment_text(recipe),
        network_repr=repr(graph.network), T=int(graph.params["T"]), input_kind=inp.attrs["kind"],
        input_kind_repr=repr(inp.attrs["kind"]), input_dims=", ".join(str(int(d)) for d in inp.attrs["dims"]),
        input_dims_tuple=repr(tuple(int(d) for d in inp.attrs["dims"])),
        classes=int(graph.node(graph.output).shape[-1]), decoded=bool(graph.of_op("time_weights")),
        node_modules=[(repr(k), repr(v)) for k, v in ctx.node_modules.items()],
        modules=ctx.modules, lines=ctx.lines, output=ctx.output,
        preprocess=_preprocess_literals(preprocess, int(inp.attrs["dims"][0])))
    compile(text, "model.py", "exec")
    return text, ctx.node_modules
