"""`snnc.build`: a compiled network as an nn.Module with its recipe's loss and hooks, for your own loop.

(The module is `built`, not `build`: importing a submodule `snnc.build` would replace the function.)

    net = snnc.build("models/digits.snn", "sml+tet+cpng", width=8)
    outputs, aux = net.model(x)                # O [T, B, classes], the surrogate-module logits
    loss = net.loss(outputs, aux, y)           # the recipe's loss, as train.py's compute_loss
    net.before_batch(last), net.after_batch(outputs, y), net.end_epoch(epoch)   # CPNG, TWO
    for T, epochs in net.stages(): net.set_time_steps(T)                          # TIT

docs/loop.md shows a whole loop that reaches train.py's weights bit for bit.
"""

from __future__ import annotations

import importlib.util
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

_count = itertools.count()


@dataclass
class Built:
    """What `snnc.build` returns. `folder` holds the generated model.py and train.py."""

    model: Any                      # torch.nn.Module: forward(x) -> (O [T, B, classes], aux list)
    loss: Callable                  # loss(outputs, aux, y) -> scalar tensor
    spec: Any                       # snnc.runtime.options.TrainSpec: network, recipe, T, input, layers
    hooks: Any                      # snnc.runtime.hooks.EpochHooks
    folder: Path
    _build_model: Callable = field(default=None, repr=False)
    _tmp: Any = field(default=None, repr=False)  # keeps a temporary build folder alive

    def rebuild(self, seed: int) -> "Built":
        """The same compiled network with a fresh model (initialised for `seed`) and fresh hooks."""
        return _assemble(self._build_model, self.loss, self.spec, self.folder, self._tmp, seed)

    @property
    def before_batch(self) -> Callable[[bool], None]:
        return self.hooks.before_batch

    @property
    def after_batch(self) -> Callable[[Any, Any], None]:
        return self.hooks.after_batch

    @property
    def end_epoch(self) -> Callable[[int], dict]:
        return self.hooks.end_epoch

    @property
    def stages(self) -> Callable[..., list[tuple[int, int]]]:
        return self.hooks.stages

    @property
    def set_time_steps(self) -> Callable[[int], None]:
        return self.hooks.set_time_steps


def build(source_or_path, recipe: str = "sdt", *, seed: int = 0, out=None, backend: str = "auto",
          memory: str | None = None, **params) -> Built:
    """Compiles a .snn file or source text with `recipe` and builds its model.

    Network parameters are keywords (`T=6`, `width=8`), as `--set` gives them. The weights are
    initialised as train.py's are for `--seed seed` (without touching the global RNG), and MSG's
    masks follow `seed` too. The build folder is `out`, or a temporary one that lives as long as
    the returned object. `memory` is the policy of `snnc compile --memory` (docs/memory.md).
    Errors are `snnc.diagnostics.SnncError`.
    """
    from snnc import compile as compile_network

    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="snnc-build-")
        out = Path(tmp.name) / "build"
    compile_network(source_or_path, recipe=recipe, out=out, memory=memory, **params)
    folder = Path(out).resolve()
    train = _import(folder / "train.py", f"snnc_built_train_{next(_count)}")
    return _assemble(train.model.build_model, train.compute_loss, train.SPEC, folder, tmp, seed)


def _assemble(build_model, loss, spec, folder, tmp, seed: int) -> Built:
    import torch

    from snnc.runtime.hooks import EpochHooks

    with torch.random.fork_rng(devices=[]):  # train.py: torch.manual_seed(seed), then build_model()
        torch.manual_seed(seed)
        model = build_model()
    return Built(model, loss, spec, EpochHooks(model, spec, seed=seed), folder, build_model, tmp)


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
