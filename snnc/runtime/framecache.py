"""A cache of framed event datasets, so that recordings are binned once per (files, binning).

Entries are safetensors files (tensors and a JSON header, nothing executable) under
$SNNC_CACHE_DIR/frames, else $XDG_CACHE_HOME/snnc/frames, else ~/.cache/snnc/frames. The key
hashes the binning (dataset, T, C, H, W, reader version) and every source file's relative path,
size and modification time, as make does: editing or replacing a recording frames it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

FORMAT = 1  # raise when the framing changes, so that older entries are not reused
NAMES = ("train_x", "train_y", "test_x", "test_y")


def cache_dir() -> Path:
    base = os.environ.get("SNNC_CACHE_DIR")
    if base:
        return Path(base) / "frames"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "snnc" / "frames"


def key(binning: dict, root: Path, files: list[tuple[Path, int, str]]) -> str:
    """A digest of the binning and of each (file, label, split): its path under root, size and mtime."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, **binning}, sort_keys=True).encode())
    for path, label, split in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\0{split}\n".encode())
    return h.hexdigest()[:32]


def load(digest: str, kind: str) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None (absent, or unreadable: then framed again and rewritten)."""
    path = cache_dir() / f"{kind}-{digest}.safetensors"
    if not path.is_file():
        return None
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged entry is framed again
        print(f"note: ignoring the damaged frame cache {path} ({exc.__class__.__name__}); framing again",
              file=sys.stderr)
        return None
    return tensors if set(tensors) == set(NAMES) else None


def save(digest: str, kind: str, tensors: dict[str, torch.Tensor]) -> Path | None:
    """Writes the entry atomically (a temporary file renamed into place); a failure only costs the cache."""
    from safetensors.torch import save_file

    folder = cache_dir()
    path = folder / f"{kind}-{digest}.safetensors"
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        print(f"note: could not write the frame cache {path} ({exc}); the next run frames again", file=sys.stderr)
        tmp.unlink(missing_ok=True)
        return None
    return path
