"""Datasets for generated training scripts: `digits`, `cifar10:PATH`, `cifar100:PATH`, `synthetic`, `dvs:PATH`.

Every dataset is held in memory as tensors. Augmentation runs on whole batches
with a generator seeded from (seed, epoch, rank), so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import builtins
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from snnc.diagnostics import SnncError

SPECS = "digits | cifar10:PATH | cifar100:PATH | synthetic[:N] | dvs:PATH"
MAX_SYNTHETIC = 20_000  # samples: about 300 MB at CIFAR size
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Data:
    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: int
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    # How a raw sample becomes the network input: x = (raw * scale - mean[c]) / std[c]; recorded in the
    # run and deploy manifests so that deploy/model.py can preprocess raw inputs itself.
    preprocess: dict | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def _data_error(message: str, hint: str | None = None) -> SnncError:
    return SnncError(message, None, hint or f"data specs: {SPECS}")


def load(spec: str) -> Data:
    """The dataset named by `spec`; a bad spec or path is a clear SnncError."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        return digits()
    if kind == "synthetic":
        n = 512
        if path:
            if not path.isdigit() or not 8 <= int(path) <= MAX_SYNTHETIC:
                raise _data_error(f"synthetic:{path}: N must be an integer in [8, {MAX_SYNTHETIC}]")
            n = int(path)
        return synthetic(n)
    if kind in ("cifar10", "cifar100"):
        if not path:
            raise _data_error(f"{kind} needs a folder: --data {kind}:PATH")
        return cifar(kind, Path(path))
    if kind == "dvs":
        if not path:
            raise _data_error("dvs needs a folder: --data dvs:PATH")
        return dvs(Path(path))
    raise _data_error(f"unknown data spec '{spec}'")


def digits() -> Data:
    """scikit-learn's bundled 8x8 digits: stratified 75/25 split, standardised with train statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    idx = torch.arange(len(y)).numpy()
    tr, te = train_test_split(idx, test_size=0.25, stratify=bunch.target, random_state=0)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    preprocess = {"raw": "sklearn.datasets.load_digits().images: 8x8 grey levels 0..16, as [B, 1, 8, 8]",
                  "scale": 1 / 16.0, "mean": [float(mean)], "std": [float(std)]}
    return Data("digits", x[tr], y[tr], x[te], y[te], 10, preprocess=preprocess)


def synthetic(n: int, shape=(3, 32, 32), classes: int = 10) -> Data:
    """Random inputs with labels from a fixed random linear map: learnable, reproducible, tiny."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n + n // 4, *shape, generator=g)
    w = torch.randn(x[0].numel(), classes, generator=g)
    y = (x.flatten(1) @ w).argmax(1)
    return Data("synthetic", x[:n], y[:n], x[n:], y[n:], classes)


def reshape_synthetic(data: Data, shape: tuple[int, ...], classes: int) -> Data:
    """Synthetic data in the network's own input shape and class count."""
    if data.name != "synthetic" or (data.sample_shape == tuple(shape) and data.classes == classes):
        return data
    return synthetic(len(data.train_y), tuple(shape), classes)


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The numpy callables an array pickle names, under numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes under protocols 0-2; only the latin-1 form is admitted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {str(encoding)[:20]!r}")
    return text.encode("latin1")


# Containers, strings and numbers need no globals; these are all a CIFAR batch may name besides.
_SAFE_GLOBALS = {**{(module, name): getattr(builtins, name) for module in ("builtins", "__builtin__")
                    for name in ("set", "frozenset", "bytearray", "complex")},
                 ("_codecs", "encode"): _latin1, **_numpy_globals()}


class _Refused(pickle.UnpicklingError):
    """A pickle named a global that data has no need of."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles data only: a global outside `_SAFE_GLOBALS` is refused before it is imported, so nothing runs."""

    def find_class(self, module: str, name: str):
        found = _SAFE_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except _Refused as exc:
        raise _data_error(f"{path}: refusing to unpickle {_printable(str(exc))}: a CIFAR batch holds only dicts, "
                          f"lists, bytes, numbers and numpy arrays",
                          "this file is not a CIFAR batch; it may be built to run code when unpickled") from None
    except Exception as exc:  # noqa: BLE001 - whatever a malformed pickle raises, it is a data error
        raise _data_error(f"cannot read {path}: {exc.__class__.__name__}: {_printable(str(exc))}") from None
    if not isinstance(batch, dict):
        raise _data_error(f"{path} holds a {type(batch).__name__}, not a CIFAR batch dict")
    return batch


def _printable(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters with control characters escaped: pickles name globals freely."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _batch_tensors(path: Path, batch: dict, label_key: bytes, classes: int) -> tuple[Tensor, Tensor]:
    """(images [N,3,32,32] uint8, labels [N]) of one batch, or a data error naming what is wrong."""
    if b"data" not in batch or label_key not in batch:
        raise _data_error(f"{path} has no {b'data'!r} / {label_key!r} entries")
    try:
        images = torch.as_tensor(np.asarray(batch[b"data"], dtype=np.uint8))
        labels = torch.as_tensor(np.asarray(batch[label_key], dtype=np.int64))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _data_error(f"{path}: the batch is not uint8 images and integer labels ({exc})") from None
    if images.dim() != 2 or images.shape[1] != 3072 or labels.shape != (images.shape[0],):
        raise _data_error(f"{path}: expected data [N, 3072] and N labels, got {list(images.shape)} and "
                          f"{list(labels.shape)}")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise _data_error(f"{path}: labels must be in [0, {classes}), found {int(labels.min())}..{int(labels.max())}",
                          f"is this a {'CIFAR-100' if classes == 100 else 'CIFAR-10'} folder?")
    return images.view(-1, 3, 32, 32), labels


def cifar(kind: str, folder: Path) -> Data:
    names = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                         10),
             "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100)}
    sub, train_files, test_files, label_key, classes = names[kind]
    if (folder / sub).is_dir():
        folder = folder / sub
    expected = train_files + test_files
    missing = [f for f in expected if not (folder / f).is_file()]
    if not folder.is_dir() or missing:
        raise _data_error(
            f"{kind}: {folder} is not a folder of the python-pickle batches (missing: {', '.join(missing)})",
            f"expected {folder}/{{{', '.join(expected)}}} as unpacked from the official {sub} archive")

    def read(files):
        xs, ys = [], []
        for name in files:
            images, labels = _batch_tensors(folder / name, _unpickle(folder / name), label_key, classes)
            xs.append(images)
            ys.append(labels)
        return torch.cat(xs), torch.cat(ys)

    (trx, tr_y), (tex, te_y) = read(train_files), read(test_files)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    norm = lambda u8: (u8.float() / 255.0 - mean) / std  # noqa: E731
    preprocess = {"raw": "uint8 RGB pixels 0..255 as [B, 3, 32, 32] (the pickled rows reshaped)",
                  "scale": 1 / 255.0, "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}
    return Data(kind, norm(trx), tr_y, norm(tex), te_y, classes, augment=crop_flip, preprocess=preprocess)


def crop_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop with zero padding and random horizontal flip, per sample, on a whole batch."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    out = _crop(padded, dy, dx, h, w)
    flip = torch.rand(b, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def _crop(padded: Tensor, dy: Tensor, dx: Tensor, h: int, w: int) -> Tensor:
    b = padded.shape[0]
    rows = dy.view(b, 1) + torch.arange(h).view(1, h)          # [b, h]
    cols = dx.view(b, 1) + torch.arange(w).view(1, w)          # [b, w]
    idx_b = torch.arange(b).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_b, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2).contiguous()


def dvs(folder: Path) -> Data:
    """Pre-framed event data: folder/train.pt and folder/test.pt, each {'frames': [N, T, C, H, W], 'labels': [N]}."""
    parts = []
    for name in ("train.pt", "test.pt"):
        path = folder / name
        if not path.is_file():
            raise _data_error(f"dvs: missing {path}",
                              "expected train.pt and test.pt holding {'frames': [N, T, C, H, W], 'labels': [N]}; "
                              "frame raw events first, e.g. with tonic.transforms.ToFrame")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
            raise _data_error(f"dvs: cannot read {path}: {exc}") from None
        if not isinstance(blob, dict) or "frames" not in blob or "labels" not in blob or blob["frames"].dim() != 5:
            raise _data_error(f"dvs: {path} must hold {{'frames': [N, T, C, H, W], 'labels': [N]}}")
        parts.append((blob["frames"].float(), blob["labels"].long()))
    (trx, try_), (tex, tey) = parts
    classes = int(max(try_.max(), tey.max())) + 1
    return Data("dvs", trx, try_, tex, tey, classes)
