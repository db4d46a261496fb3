"""`imagefolder:PATH`: class-per-folder images, read with Pillow and fitted to the network's input.

Layout: PATH/train/<class>/* and PATH/test/<class>/* (or PATH/val/), else PATH/<class>/* with a
fixed-seed 20% of each class held out for testing. Class indices follow the sorted class folder
names (as torchvision's ImageFolder). Each image is converted to L (C=1) or RGB (C=3) and resized
to the network's H x W (bilinear), then standardised per channel with train statistics (recorded
as the run's preprocessing). Training batches get a random crop (zero padding H/8) and a random
horizontal flip from the trainer's seeded generators. Only image files are opened, and only as
images: nothing in the folder is executed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from snnc.runtime.datatypes import Data, Target, crop_flip, data_error

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # per image: larger files are refused (Pillow's decompression-bomb guard)
TEST_SHARE = 0.2
LAYOUT = ("PATH/train/<class>/*.png (or .jpg, ...) and PATH/test/<class>/* (or PATH/val/), or PATH/<class>/* "
          "(20% of each class held out by a fixed seed)")


def imagefolder(folder: Path, target: Target) -> Data:
    if target.kind != "image" or target.dims[0] not in (1, 3):
        raise data_error(f"--data imagefolder: the network takes {target.kind} {list(target.dims)}; images need "
                         f"an image input with 1 (grey) or 3 (RGB) channels")
    if not folder.is_dir():
        raise data_error(f"--data imagefolder: {folder} is not a folder", f"expected {LAYOUT}")
    test_dir = next((folder / n for n in ("test", "val") if (folder / n).is_dir()), None)
    if (folder / "train").is_dir() and test_dir is not None:
        classes = _classes(folder / "train")
        extra = sorted(set(_classes(test_dir)) - set(classes))
        if extra:
            raise data_error(f"--data imagefolder: {test_dir} has classes that {folder / 'train'} lacks: "
                             f"{', '.join(extra)}", f"expected {LAYOUT}")
        train = [(f, i) for i, c in enumerate(classes) for f in _images(folder / "train" / c)]
        test = [(f, i) for i, c in enumerate(classes) if (test_dir / c).is_dir() for f in _images(test_dir / c)]
    else:
        classes = _classes(folder)
        train, test = _split(folder, classes)
    if not train or not test:
        raise data_error(f"--data imagefolder: {folder} has no {'training' if not train else 'test'} images",
                         f"expected {LAYOUT}")
    C, H, W = target.dims
    train_x, train_y = _read(train, C, H, W)
    test_x, test_y = _read(test, C, H, W)
    mean = train_x.float().mean(dim=(0, 2, 3)) / 255.0
    std = (train_x.float() / 255.0).std(dim=(0, 2, 3)).clamp_min(1e-6)
    norm = lambda u8: (u8.float() / 255.0 - mean.view(1, C, 1, 1)) / std.view(1, C, 1, 1)  # noqa: E731
    preprocess = {"raw": f"uint8 {'grey' if C == 1 else 'RGB'} pixels 0..255 of each image resized to {H}x{W} "
                         f"(Pillow, bilinear), as [B, {C}, {H}, {W}]",
                  "scale": 1 / 255.0, "mean": mean.tolist(), "std": std.tolist(), "classes": classes}
    pad = max(1, H // 8)
    return Data("imagefolder", norm(train_x), train_y, norm(test_x), test_y, len(classes),
                augment=lambda x, g: crop_flip(x, g, pad=pad), preprocess=preprocess)


def _classes(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise data_error(f"--data imagefolder: {folder} has no class folders", f"expected {LAYOUT}")
    return names


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _split(folder: Path, classes: list[str]) -> tuple[list, list]:
    g = torch.Generator().manual_seed(0)
    train, test = [], []
    for i, c in enumerate(classes):
        files = _images(folder / c)
        held = set(torch.randperm(len(files), generator=g)[:round(len(files) * TEST_SHARE)].tolist())
        train += [(f, i) for k, f in enumerate(files) if k not in held]
        test += [(f, i) for k, f in enumerate(files) if k in held]
    return train, test


def _read(items: list[tuple[Path, int]], C: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image
    from tqdm import tqdm

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    out = np.empty((len(items), C, H, W), np.uint8)
    for n, (path, _) in enumerate(tqdm(items, desc="reading images", unit="image", leave=False, file=sys.stderr,
                                       mininterval=0.5)):
        try:
            with Image.open(path) as img:
                # Pillow only warns between MAX_IMAGE_PIXELS and twice that; the size is known before decoding.
                if img.width * img.height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels, more than {MAX_PIXELS:,}")
                pixels = np.asarray(img.convert("L" if C == 1 else "RGB").resize((W, H), Image.BILINEAR))
        except Exception as exc:  # noqa: BLE001 - unreadable, truncated or oversized: a data error
            raise data_error(f"--data imagefolder: cannot read {path} as an image: {exc.__class__.__name__}: "
                             f"{str(exc)[:200]}", f"expected {LAYOUT}") from None
        out[n] = pixels[None] if C == 1 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(out), torch.tensor([label for _, label in items], dtype=torch.long)
