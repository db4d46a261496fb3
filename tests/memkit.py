"""Helpers for the memory tests: generated models in memory, inputs, saved bytes counted from autograd."""

from __future__ import annotations

import itertools
import types
from pathlib import Path

import torch

from snnc.backends.torch.render import render_model
from snnc.ops.memory import saved_storages as autograd_saved
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent
_count = itertools.count()


def compiled(model: str | Path, recipe: str = "sdt", memory: str | None = None, fuse: bool = True, **sets):
    """The Compiled of a zoo model (a name), a .snn path or .snn source text, with --set values and a policy."""
    if isinstance(model, str) and "{" in model:
        return compile_source(model, {k: str(v) for k, v in sets.items()}, file="<test>", recipe=recipe,
                              fuse=fuse, memory=memory)
    path = model if isinstance(model, Path) else ROOT / "models" / f"{model}.snn"
    return compile_source(path, {k: str(v) for k, v in sets.items()}, recipe=recipe, fuse=fuse, memory=memory)


def model_module(model: str | Path, recipe: str = "sdt", memory: str | None = None, fuse: bool = True, **sets):
    """The generated model.py of `model`, imported from its text (no files written)."""
    c = compiled(model, recipe, memory, fuse, **sets)
    module = types.ModuleType(f"memkit_model_{next(_count)}")
    exec(compile(render_model(c.graph, "test.snn", recipe), f"<model.py {memory}>", "exec"), module.__dict__)
    module.COMPILED = c
    return module


def sample(module, batch: int, T: int, seed: int):
    """(x, y): a seeded input of the network's shape (images, or binary event frames [T, B, ...]) and labels."""
    g = torch.Generator().manual_seed(seed)
    if module.INPUT_KIND == "image":
        x = torch.randn(batch, *module.INPUT_DIMS, generator=g)
    else:
        x = (torch.rand(T, batch, *module.INPUT_DIMS, generator=g) < 0.3).float()
    return x, torch.randint(0, module.CLASSES, (batch,), generator=g)


def saved_storages(net: torch.nn.Module, x) -> dict[int, int]:
    """{storage: bytes} of every tensor autograd saves during net(x), parameters and buffers left out,
    counted as the issue counts them: torch.autograd.graph.saved_tensors_hooks around the forward."""
    return autograd_saved(net, x, exclude=itertools.chain(net.parameters(), net.buffers()))
