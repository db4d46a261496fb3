"""snnc: a compiler for training spiking neural networks.

    import snnc
    result = snnc.compile("models/resnet18.snn", recipe="sml+tet", out="build/r18", T=6)
    net = snnc.build("models/digits.snn", "sml+tet")               # model, loss and hooks for your own loop
    snnc.ops.lif(x, decay=0.5, surrogate="arctan(beta=2)")      # the neuron op
    snnc.losses.tet(O, y, lam=0.05)                              # the recipe losses
    snnc.cpng.solve_beta(0.2, mu, sigma)                          # CPNG's math
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def compile(source_or_path, recipe: str = "sdt", out=None, *, memory: str | None = None, **params):
    """Compiles a .snn file (a path) or .snn source text with a recipe.

    Network parameters are given as keywords (`T=6`), as `--set` would. With
    `out` the training artifacts are written there (as `snnc compile -o`).
    `memory` is the policy of `snnc compile --memory` (docs/memory.md).
    Returns the compiled result: `.graph` (the final IR), `.stages` (the IR
    after every pass), `.recipe`. Errors are `snnc.diagnostics.SnncError`.
    """
    from snnc.compiler import compile_to
    from snnc.pipeline import compile_source

    overrides = {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in params.items()}
    text = str(source_or_path)
    is_source = "\n" in text or "{" in text
    file = "<source>" if is_source else None
    if out is not None:
        return compile_to(text if is_source else Path(text), recipe, out, overrides, file=file, memory=memory)
    return compile_source(text if is_source else Path(text), overrides, file=file, recipe=recipe, memory=memory)


def build(source_or_path, recipe: str = "sdt", *, seed: int = 0, out=None, **params):
    """The network as an nn.Module with its recipe's loss and epoch hooks (CPNG, TWO, TIT) as plain
    callables, for a training loop of your own (docs/loop.md): `.model`, `.loss(outputs, aux, y)`,
    `.before_batch(last)`, `.after_batch(outputs, y)`, `.end_epoch(epoch)`, `.stages()`,
    `.set_time_steps(T)`. See snnc/built.py."""
    from snnc.built import build as build_network

    return build_network(source_or_path, recipe, seed=seed, out=out, **params)


def __getattr__(name: str):
    # `snnc.ops`, `snnc.losses` and `snnc.cpng` load on first use: torch is slow to import.
    if name in ("ops", "losses", "cpng"):
        import importlib

        return importlib.import_module(f"snnc.{name}")
    raise AttributeError(f"module 'snnc' has no attribute '{name}'")
