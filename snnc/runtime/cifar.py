"""`cifar10:PATH`, `cifar100:PATH`: the python-pickle batches of the official archives.

The batches are pickles, read by a restricted unpickler that builds data only and
refuses any other global before importing it (docs/training.md, "Data").
"""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from snnc.runtime.datatypes import Data, crop_flip, data_error as _data_error

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class _NdarrayName:
    """What `numpy.ndarray` unpickles to: a name for `_reconstruct`, never called (ndarray(shape) allocates)."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("refusing numpy.ndarray(shape): it allocates memory the file does not hold")


_NDARRAY = _NdarrayName()


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The numpy callables an array pickle names, under numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    def reconstruct(subtype, shape, dtype):
        """numpy's `_reconstruct` as array pickles call it: an empty array that the pickle's state then
        fills from bytes it holds. Any other shape would allocate memory the file does not hold."""
        if subtype is not _NDARRAY or not isinstance(shape, tuple) or np.prod(shape, dtype=np.float64) != 0:
            raise pickle.UnpicklingError("refusing numpy _reconstruct of anything but an empty ndarray")
        return multiarray._reconstruct(np.ndarray, shape, dtype)

    found = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes under protocols 0-2; only the latin-1 form is admitted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {str(encoding)[:20]!r}")
    return text.encode("latin1")


def _sized(kind):
    """`bytes` or `bytearray` as pickles call them (empty, or from a str and an encoding), never with a
    size: `bytearray(3_000_000_000)` is a 60-byte pickle."""
    def build(*args):
        if args and not isinstance(args[0], (str, bytes)):
            raise pickle.UnpicklingError(f"refusing {kind.__name__}() of a {type(args[0]).__name__}")
        return kind(*args)
    return build


# Containers, strings and numbers need no globals; these are all a CIFAR batch may name besides.
# None of them allocates more than the bytes the pickle holds.
_SAFE_GLOBALS = {**{(module, name): getattr(builtins, name) for module in ("builtins", "__builtin__")
                    for name in ("set", "frozenset", "complex")},
                 **{(module, kind.__name__): _sized(kind) for module in ("builtins", "__builtin__")
                    for kind in (bytes, bytearray)},
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
    try:  # rows as the pickle holds them: a list may repeat one row by reference, so count before converting
        rows = len(batch[b"data"])
    except TypeError:
        rows = 0
    if rows * 3072 > path.stat().st_size:
        raise _data_error(f"{path}: the batch declares {rows} images of 3072 bytes, more than the file's "
                          f"{path.stat().st_size} bytes hold", "a CIFAR batch stores every pixel")
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
