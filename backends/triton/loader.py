"""Loads rendered kernels: writes each source once to an on-disk cache and imports it.

Triton's @jit reads a kernel's source from its file, so generated code must
live in a real module. Files are named `<kernel name>_<content hash>.py`
under `$SNNC_CACHE_DIR` (default `~/.cache/snnc/kernels`), written
atomically, and reused across runs; Triton's own cache then keeps the
compiled binaries.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from snnc.backends.triton.codegen import render
from snnc.backends.triton.spec import LifSpec


def cache_dir() -> Path:
    base = os.environ.get("SNNC_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "snnc" / "kernels"


def _write_once(path: Path, text: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # atomic: concurrent processes never see a partial file


@functools.lru_cache(maxsize=512)
def _load(spec: LifSpec, kind: str, interpret: bool):
    # `interpret` is part of the key: triton.jit picks interpreter or compiler at import.
    source = render(spec, kind)
    name = spec.kernel_name(kind)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    path = cache_dir() / f"{name}_{digest}.py"
    _write_once(path, source)
    module_name = f"snnc_kernels.{name}_{digest}{'_interp' if interpret else ''}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def load_kernel(spec: LifSpec, kind: str):
    """The @triton.jit function of kernel `kind` for `spec`."""
    return _load(spec, kind, os.environ.get("TRITON_INTERPRET") == "1")
