"""Neuromorphic recordings through tonic: `nmnist:PATH`, `dvsgesture:PATH`, `cifar10dvs:PATH`.

Each reads a local folder in its dataset's published layout (no download), decodes every
recording with tonic's reader for its format, bins it into the network's T frames with
tonic.transforms.ToFrame and fits the frames to the network's input [C, H, W]:

- smaller than the sensor: tonic.transforms.Downsample to (W, H) before binning, so events
  are summed into the coarser pixels (DVS Gesture and CIFAR10-DVS 128x128 -> vggsnn's 48x48);
- larger: each frame pixel is repeated (nearest) after binning (N-MNIST 34x34 -> 48x48);
- C = 2 keeps the two polarities, C = 1 adds them.

Frames are event counts, as ToFrame gives them. Framed datasets are cached (framecache.py).
Recordings are data: they are decoded by numpy and tonic, never unpickled or executed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from snnc.runtime import framecache
from snnc.runtime.datatypes import Data, Target, data_error

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class Layout:
    sensor: tuple[int, int, int]      # (W, H, polarities), as tonic's sensor_size
    classes: int
    subfolder: str                    # the folder tonic's dataset class creates under save_to
    describe: str                     # the expected layout, for errors


LAYOUTS = {
    "nmnist": Layout((34, 34, 2), 10, "NMNIST",
                     "PATH/Train/<digit 0-9>/*.bin and PATH/Test/<digit 0-9>/*.bin (the N-MNIST archives "
                     "Train.zip and Test.zip unpacked; PATH may also hold them in NMNIST/)"),
    "dvsgesture": Layout((128, 128, 2), 11, "DVSGesture",
                         "PATH/ibmGestureTrain/<user>_<lighting>/<label 0-10>.npy and PATH/ibmGestureTest/... "
                         "(tonic's preprocessed DVS Gesture: each .npy an [N, 4] array of x, y, p, t in ms; PATH "
                         "may also hold them in DVSGesture/)"),
    "cifar10dvs": Layout((128, 128, 2), 10, "CIFAR10DVS",
                         "PATH/<class>/*.aedat4 (tonic's CIFAR10-DVS layout, the class zips unpacked) or "
                         "PATH/<class>/*.aedat (the original AER-DAT 2 release), <class> in " + ", ".join(
                             CIFAR10_CLASSES) + "; 10% of each class, chosen by a fixed seed, is the test set"),
}
CIFAR10DVS_TEST_SHARE = 0.1


def load_events(kind: str, folder: Path, target: Target) -> Data:
    layout = LAYOUTS[kind]
    tonic = _tonic(kind)
    if target.kind != "events" or target.dims[0] not in (1, 2):
        raise data_error(f"--data {kind}: the network takes {target.kind} {list(target.dims)}; event recordings "
                         f"need an events input with 1 or 2 channels (polarities added or kept)",
                         "declare `input events[2, H, W]` (e.g. models/vggsnn.snn)")
    root = folder / layout.subfolder if (folder / layout.subfolder).is_dir() else folder
    files = _find(kind, root, layout)
    C, H, W = target.dims
    binning = {"kind": kind, "T": target.T, "C": C, "H": H, "W": W, "sensor": list(layout.sensor)}
    digest = framecache.key(binning, root, files)
    tensors = framecache.load(digest, kind)
    if tensors is None:
        tensors = _frame_all(kind, files, target, layout, tonic)
        framecache.save(digest, kind, tensors)
    return Data(kind, tensors["train_x"], tensors["train_y"], tensors["test_x"], tensors["test_y"], layout.classes)


def _tonic(kind: str):
    try:
        import tonic
    except ImportError:
        raise data_error(f"--data {kind} reads recordings with tonic, which is not installed",
                         "pip install 'snnc[events]' (tonic, and aedat for CIFAR10-DVS)") from None
    return tonic


def _missing(kind: str, what: str) -> Exception:
    return data_error(f"--data {kind}: {what}", f"expected {LAYOUTS[kind].describe}")


def _find(kind: str, root: Path, layout: Layout) -> list[tuple[Path, int, str]]:
    """[(file, label, 'train' | 'test')] in a fixed order, or a data error naming the expected layout."""
    if not root.is_dir():
        raise _missing(kind, f"{root} is not a folder")
    if kind == "cifar10dvs":
        return _find_cifar10dvs(root)
    splits = {"nmnist": ("Train", "Test"), "dvsgesture": ("ibmGestureTrain", "ibmGestureTest")}[kind]
    out = []
    for split, name in zip(("train", "test"), splits):
        base = root / name
        if not base.is_dir():
            raise _missing(kind, f"{root} has no {name}/ folder")
        found = []
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            if kind == "nmnist":
                if not (sub.name.isdigit() and int(sub.name) < 10):
                    raise _missing(kind, f"{sub} is not a digit folder 0-9")
                found += [(f, int(sub.name), split) for f in sorted(sub.glob("*.bin"))]
            else:
                for f in sorted(sub.glob("*.npy"), key=lambda f: (len(f.stem), f.stem)):  # 2 before 10
                    if not (f.stem.isdigit() and int(f.stem) < layout.classes):
                        raise _missing(kind, f"{f}: a recording is named by its label, 0.npy to 10.npy")
                    found.append((f, int(f.stem), split))
        if not found:
            raise _missing(kind, f"{base} holds no {'.bin' if kind == 'nmnist' else '.npy'} recordings")
        out += found
    return out


def _find_cifar10dvs(root: Path) -> list[tuple[Path, int, str]]:
    """Each class's recordings, with a seeded share of them held out as the test set."""
    out = []
    g = torch.Generator().manual_seed(0)
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted(list((root / name).glob("*.aedat4")) + list((root / name).glob("*.aedat"))) \
            if (root / name).is_dir() else []
        if len(files) < 2:
            raise _missing("cifar10dvs", f"{root / name} is missing or holds fewer than 2 recordings")
        n_test = max(1, math.floor(len(files) * CIFAR10DVS_TEST_SHARE))
        test = set(torch.randperm(len(files), generator=g)[:n_test].tolist())
        out += [(f, label, "test" if i in test else "train") for i, f in enumerate(files)]
    return out


def _frame_all(kind, files, target: Target, layout: Layout, tonic) -> dict[str, torch.Tensor]:
    from tqdm import tqdm

    reader = READERS[kind]
    frame = _framer(target, layout, tonic)
    xs = {"train": [], "test": []}
    ys = {"train": [], "test": []}
    for path, label, split in tqdm(files, desc=f"framing {kind} (T={target.T})", unit="file", leave=False,
                                   file=sys.stderr, mininterval=0.5):
        events = _checked(kind, path, reader, layout, tonic)
        xs[split].append(frame(events))
        ys[split].append(label)
    return {f"{s}_{k}": (torch.stack(xs[s]) if k == "x" else torch.tensor(ys[s], dtype=torch.long))
            for s in ("train", "test") for k in ("x", "y")}


def _framer(target: Target, layout: Layout, tonic) -> Callable[[np.ndarray], torch.Tensor]:
    """events -> frames [T, C, H, W] (float32 counts) for the network's input."""
    T, (C, H, W) = target.T, target.dims
    sw, sh, sp = layout.sensor
    shrink = W <= sw and H <= sh
    down = tonic.transforms.Downsample(sensor_size=layout.sensor, target_size=(W, H)) if shrink else None
    to_frame = tonic.transforms.ToFrame(sensor_size=(W, H, sp) if shrink else layout.sensor, n_time_bins=T)

    def frame(events: np.ndarray) -> torch.Tensor:
        frames = torch.from_numpy(np.asarray(to_frame(down(events) if down else events), dtype=np.float32))
        if not shrink:  # [T, P, sh, sw] -> [T, P, H, W], each sensor pixel repeated
            frames = torch.nn.functional.interpolate(frames, size=(H, W), mode="nearest")
        return frames.sum(1, keepdim=True) if C == 1 else frames

    return frame


def _checked(kind: str, path: Path, reader, layout: Layout, tonic) -> np.ndarray:
    """The events of one recording, or a data error naming the file and what is wrong."""
    try:
        events = reader(path, tonic)
    except Exception as exc:  # noqa: BLE001 - whatever a malformed file raises, it is a data error
        raise data_error(f"--data {kind}: cannot read {path}: {exc.__class__.__name__}: {str(exc)[:200]}",
                         f"expected {layout.describe}") from None
    if len(events) == 0:
        raise data_error(f"--data {kind}: {path} holds no events", f"expected {layout.describe}")
    x, y = np.asarray(events["x"]), np.asarray(events["y"])
    if x.min() < 0 or y.min() < 0 or x.max() >= layout.sensor[0] or y.max() >= layout.sensor[1]:
        raise data_error(f"--data {kind}: {path} has events outside the {layout.sensor[0]}x{layout.sensor[1]} "
                         f"sensor (x {x.min()}..{x.max()}, y {y.min()}..{y.max()})", f"expected {layout.describe}")
    return events


def _read_nmnist(path: Path, tonic) -> np.ndarray:
    if path.stat().st_size % 5:
        raise ValueError("the size is not a multiple of 5 bytes (N-MNIST events are 40-bit records)")
    return tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)


def _read_dvsgesture(path: Path, tonic) -> np.ndarray:
    from numpy.lib import recfunctions

    array = np.load(path, allow_pickle=False)  # a pickled object array is refused here
    if array.ndim != 2 or array.shape[1] != 4 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"expected an [N, 4] numeric array (x, y, p, t), found {array.dtype} {list(array.shape)}")
    array = array.astype(np.float64)
    array[:, 3] *= 1000  # ms -> us, as tonic.datasets.DVSGesture does
    return recfunctions.unstructured_to_structured(array, tonic.datasets.DVSGesture.dtype)


def _read_cifar10dvs(path: Path, tonic) -> np.ndarray:
    if path.suffix == ".aedat4":
        events = tonic.io.read_aedat4(str(path))
        events.dtype.names = ["t", "x", "y", "p"]  # as tonic.datasets.CIFAR10DVS names them
        return events
    # The original release: AER-DAT 2 (big-endian address, timestamp), DVS128 addresses decoded as
    # tonic.io.read_dvs_128 does.
    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    addr = raw["address"].astype(np.int64)
    return tonic.io.make_structured_array((addr >> 8) & 0x7F, (addr >> 1) & 0x7F, raw["timeStamp"], addr & 1,
                                          dtype=tonic.io.events_struct)


READERS = {"nmnist": _read_nmnist, "dvsgesture": _read_dvsgesture, "cifar10dvs": _read_cifar10dvs}
