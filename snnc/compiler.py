"""`snnc compile`: run the pipeline and write the training artifacts of DESIGN.md.

DIR/ir/NN-<pass>.ir    the IR after each step
DIR/model.ir           the final training IR (what `snnc export` starts from)
DIR/kernels/*.py       the generated Triton kernels, one pair per LIF specialization
DIR/model.py           build_model() -> nn.Module
DIR/train.py           the training script
DIR/source.snn         the network source, as compiled
DIR/manifest.json      source hash, recipe, resolved parameters, passes, snnc version

The folder is written next to DIR under a temporary name and renamed into
place (snnc/outputs.py), so an interrupted compile never leaves a half-written DIR,
and DIR may replace only an earlier build folder unless `force` is given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from snnc import __version__
from snnc.diagnostics import SnncError
from snnc.ir.printer import print_graph
from snnc.outputs import check_destination, staged_folder
from snnc.pipeline import Compiled, compile_source

BACKENDS = ("auto", "triton", "cpu", "torch")  # of generated model.py (snnc.ops.config.BACKENDS)


def kernel_files(compiled: Compiled) -> dict[str, str]:
    """{file name: Triton source} for every distinct LIF specialization of the training graph."""
    from snnc.backends.triton import LifSpec, kernel_sources

    files: dict[str, str] = {}
    T = int(compiled.graph.params["T"])
    for node in compiled.graph.nodes:
        if node.op != "lif" or node.role != "main":
            continue
        a = node.attrs
        spec = LifSpec.from_attrs(decay=a["decay"], vth=a["vth"], reset=a["reset"], decay_input=a["decay_input"],
                                  detach_reset=a["detach_reset"], surrogate=str(a["surrogate"]),
                                  mask_p=a.get("mask_p", 0.0), rescale=a.get("mask_rescale", False),
                                  fused_bn=bool(a.get("fuse_bn", False)), T=T, learn_decay="learn_decay" in a)
        files.update(kernel_sources(spec))
    return files


def memory_policy(graph) -> str:
    """What the model keeps for backward (docs/memory.md): store, pack or recompute(max_macs=N)."""
    from snnc.passes.plan_memory import policy_spelling

    return policy_spelling(graph)


def manifest(compiled: Compiled, source_text: str, overrides: dict, backend: str) -> dict:
    return {
        "kind": "build",
        "snnc_version": __version__,
        "network": compiled.graph.network,
        "source": compiled.source_file,
        "source_sha256": hashlib.sha256(source_text.encode("utf-8")).hexdigest(),
        "recipe": compiled.recipe.canonical(),
        "recipe_slug": compiled.recipe.slug(),
        "params": dict(compiled.graph.params),
        "overrides": dict(overrides),
        "passes": [name for name, _ in compiled.stages],
        "backend": backend,
        "memory": memory_policy(compiled.graph),
        "input": {"kind": compiled.graph.node("x").attrs["kind"], "dims": list(compiled.graph.node("x").attrs["dims"])},
        "classes": compiled.graph.node(compiled.graph.output).shape[-1],
    }


def _write(folder: Path, compiled: Compiled, source_text: str, overrides: dict, backend: str,
           loop: str = "trainer") -> None:
    from snnc.backends.torch.render import render_model, render_train  # imports torch: only once there is work

    (folder / "ir").mkdir(parents=True)
    for i, (name, graph) in enumerate(compiled.stages):
        (folder / "ir" / f"{i:02d}-{name}.ir").write_text(print_graph(graph, name))
    (folder / "model.ir").write_text(print_graph(compiled.graph, compiled.stages[-1][0]))
    (folder / "kernels").mkdir()
    for name, text in sorted(kernel_files(compiled).items()):
        (folder / "kernels" / name).write_text(text)
    recipe = compiled.recipe.canonical()
    source = Path(compiled.source_file).name
    (folder / "model.py").write_text(render_model(compiled.graph, source, recipe, backend))
    (folder / "train.py").write_text(render_train(compiled.graph, source, recipe, compiled.recipe.slug(), loop))
    (folder / "source.snn").write_text(source_text)
    (folder / "manifest.json").write_text(json.dumps(manifest(compiled, source_text, overrides, backend),
                                                     indent=1, sort_keys=True) + "\n")


def write_compiled(compiled: Compiled, out: str | Path, overrides: dict | None = None,
                   backend: str = "auto", force: bool = False, loop: str = "trainer") -> Path:
    """Writes the training artifacts of `compiled` into `out` (staged next to it, then renamed).

    `out` may be new, empty or an earlier build folder; `force` also replaces a run or deploy folder.
    Returns the real path written."""
    if backend not in BACKENDS:
        raise SnncError(f"unknown backend '{backend}'", hint="one of " + ", ".join(BACKENDS))
    out = check_destination(out, "build", force=force)
    with staged_folder(out) as tmp:
        _write(tmp, compiled, compiled.network.source, dict(overrides or {}), backend, loop)
    return out


def compile_to(source: str | Path, recipe: str, out: str | Path, overrides: dict | None = None,
               backend: str = "auto", fuse: bool = True, file: str | None = None, force: bool = False,
               loop: str = "trainer", memory: str | None = None) -> Compiled:
    """`snnc compile`: the pipeline, then the artifacts in `out`; `memory` is the policy of plan-memory."""
    check_destination(out, "build", force=force)  # before the work, so a bad -o fails at once
    compiled = compile_source(source, dict(overrides or {}), file=file, recipe=recipe, fuse=fuse, memory=memory)
    write_compiled(compiled, out, overrides, backend, force, loop)
    return compiled
