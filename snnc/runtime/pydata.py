"""`py:FILE.py:FACTORY`: your own dataset from your own code.

The contract: FILE.py defines `FACTORY(train: bool, **kwargs)` returning a map-style torch
Dataset (`__len__`, `__getitem__`) whose items are `(x, y)`: `x` a tensor or array of the
network's sample shape (`[C, H, W]` for an image input, `[T, C, H, W]` for an events input) and
`y` an integer label in `[0, classes)`. The keywords are `input_kind`, `input_shape` (that
sample shape), `T` and `classes`, so one factory can serve several networks; accept `**kwargs`.
It is called twice, with `train=True` and `train=False`.

Every item is read once into memory before training starts and checked against the network:
a wrong shape or label is a diagnostic naming the item. Random transforms inside the Dataset
are therefore drawn once. FILE.py is your code and runs as such, with your permissions, as
train.py does; no other spec executes anything from a data folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from snnc.runtime.datatypes import Data, Target, data_error

MAX_ITEMS = 2_000_000
CONTRACT = ("FILE.py defines FACTORY(train: bool, **kwargs) returning a torch Dataset of (x, y) items: x of the "
            "network's sample shape, y an integer label in [0, classes) (docs/training.md, 'Your own data')")


def from_factory(spec: str, target: Target) -> Data:
    file, sep, name = spec.rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise data_error(f"--data py:{spec}: expected py:FILE.py:FACTORY", CONTRACT)
    path = Path(file)
    if not path.is_file():
        raise data_error(f"--data py:{spec}: {path} is not a file", CONTRACT)
    factory = getattr(_import(path), name, None)
    if not callable(factory):
        raise data_error(f"--data py:{spec}: {path} defines no function '{name}'", CONTRACT)
    shape = tuple(target.dims) if target.kind == "image" else (target.T, *target.dims)
    kwargs = {"input_kind": target.kind, "input_shape": shape, "T": target.T, "classes": target.classes}
    parts = [_materialise(_call(factory, spec, train, kwargs), spec, train, shape, target.classes)
             for train in (True, False)]
    (train_x, train_y), (test_x, test_y) = parts
    return Data(f"py:{path.name}:{name}", train_x, train_y, test_x, test_y, target.classes)


def _import(path: Path):
    name = "snnc_user_data_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module failed: show where, without our frames
        raise data_error(f"--data py: importing {path} raised {exc.__class__.__name__}: {str(exc)[:300]}\n"
                         + _user_frames(exc, path), CONTRACT) from None
    return module


def _call(factory, spec: str, train: bool, kwargs: dict):
    try:
        return factory(train=train, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise data_error(f"--data py:{spec}: {factory.__name__}(train={train}, ...) raised "
                         f"{exc.__class__.__name__}: {str(exc)[:300]}", CONTRACT) from None


def _user_frames(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return "".join(traceback.format_list(frames[-3:])).rstrip()


def _materialise(dataset, spec: str, train: bool, shape: tuple, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    from tqdm import tqdm

    which = "train" if train else "test"
    try:
        n = len(dataset)
        dataset[0] if n else None
    except Exception as exc:  # noqa: BLE001
        raise data_error(f"--data py:{spec}: the {which} dataset is not a map-style Dataset with __len__ and "
                         f"__getitem__ ({exc.__class__.__name__}: {str(exc)[:200]})", CONTRACT) from None
    if not 0 < n <= MAX_ITEMS:
        raise data_error(f"--data py:{spec}: the {which} dataset has {n} items (1 to {MAX_ITEMS:,} are read)",
                         CONTRACT)
    xs = torch.empty((n, *shape), dtype=torch.float32)
    ys = torch.empty(n, dtype=torch.long)
    for i in tqdm(range(n), desc=f"reading py:{spec} ({which})", unit="item", leave=False, file=sys.stderr,
                  mininterval=0.5):
        try:
            x, y = dataset[i]
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001
            raise data_error(f"--data py:{spec}: {which} item {i} is not an (x, y) pair of a tensor and a label "
                             f"({exc.__class__.__name__}: {str(exc)[:200]})", CONTRACT) from None
        if tuple(x.shape) != shape:
            raise data_error(f"--data py:{spec}: {which} item {i} has x of shape {list(x.shape)}, but the network "
                             f"takes samples of shape {list(shape)}",
                             "return x in the network's input shape (the factory receives it as input_shape=), "
                             "or compile a network for this data (--set, or its input declaration)")
        label = int(y.item() if isinstance(y, torch.Tensor) else y) if _integral(y) else None
        if label is None or not 0 <= label < classes:
            raise data_error(f"--data py:{spec}: {which} item {i} has label {str(y)[:50]}, outside [0, {classes})",
                             f"labels are integers in [0, classes); compile with --set classes=N for N classes")
        xs[i], ys[i] = x, label
    return xs, ys


def _integral(y) -> bool:
    if isinstance(y, torch.Tensor):
        return y.numel() == 1 and not y.is_floating_point() and not y.is_complex()
    return isinstance(y, (int, np.integer)) and not isinstance(y, bool)
