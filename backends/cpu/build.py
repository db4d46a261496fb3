"""Builds the generated CPU kernels with the system C compiler and caches them on disk.

A kernel is compiled once per (source, compiler, flags, CPU): the shared object is
`<cache>/cpu/<kernel name>_<sha>.so` under `$SNNC_CACHE_DIR` (default `~/.cache/snnc`),
written atomically, and loaded with ctypes. The CPU's identity is part of the hash
because the code is built for the machine it runs on (`-march=native`), and a cache
directory may be shared between machines. Without a compiler, or if a build fails,
`load` returns None and says why once: the caller falls back to the PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from snnc.backends.cpu.codegen import kernel_name, render
from snnc.backends.triton.spec import LifSpec

# -ffp-contract=off: no multiply-add is fused but the ones the source writes as fma(), which
# are the ones the PyTorch CPU path fuses, so the spikes of both are bit-identical.
# -fno-math-errno lets exp vectorize (with glibc's libmvec). OpenMP for threads and SIMD.
FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared",
         "-std=c11")
_NOTED: set[str] = set()


def cache_dir() -> Path:
    base = os.environ.get("SNNC_CACHE_DIR")
    if base:
        return Path(base) / "cpu"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "snnc" / "cpu"


def compiler() -> str | None:
    """The C compiler: $CC, else cc or gcc on the PATH, else None."""
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@functools.lru_cache(maxsize=None)
def _compiler_id(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return cc


@functools.lru_cache(maxsize=None)
def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        import platform

        return platform.processor() or platform.machine()


def note(message: str) -> None:
    """One line on stderr, once per message."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"note: {message}", file=sys.stderr)


def _build(cc: str, source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "kernel.c"
        src.write_text(source, encoding="utf-8")
        out = Path(tmp) / "kernel.so"
        done = subprocess.run([cc, *FLAGS, "-o", str(out), str(src), "-lm"], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).splitlines()
            errors = [line.strip() for line in lines if "error" in line] or [f"{cc} exited with {done.returncode}"]
            raise RuntimeError(errors[0])
        os.replace(out, target)  # atomic: concurrent processes never load a partial file


def load_source(name: str, source: str, kernel: str, users: str):
    """The ctypes library built from C `source` (cached on disk under `name`), or None without a compiler.

    `kernel` and `users` name the kernel and what runs it in the one-line note printed when it
    cannot be built ("building the CPU {kernel} failed (...): {users} run on the PyTorch CPU path")."""
    cc = compiler()
    if cc is None:
        note(f"no C compiler found ($CC, cc, gcc): {users} run on the PyTorch CPU path")
        return None
    digest = hashlib.sha256("\n".join([source, _compiler_id(cc), " ".join(FLAGS), _cpu_id()]).encode()).hexdigest()
    target = cache_dir() / f"{name}_{digest[:16]}.so"
    try:
        if not target.exists():
            _build(cc, source, target)
        return ctypes.CDLL(str(target))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        note(f"building the CPU {kernel} failed ({exc}): {users} run on the PyTorch CPU path")
        return None


@functools.lru_cache(maxsize=256)
def load(spec: LifSpec):
    """The ctypes library of `spec`'s kernels (functions lif_fwd, lif_bwd), or None without a compiler.

    With `spec.fused_bn`, lif_bwd also takes the BN statistics and weight and can finish the BN
    backward itself (templates/lif_cpu.c.jinja)."""
    lib = load_source(kernel_name(spec), render(spec), "LIF kernel", "the LIF layers")
    if lib is None:
        return None
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.lif_fwd.argtypes = [p, i64, p, p, p, p, i64, i64, p, i64, i64, i32]
    lib.lif_fwd.restype = None
    bn = [p, p, p, i32, p, p] if spec.fused_bn else []  # mean, rstd, weight*scale, batch_stats, grad_w, grad_b
    lib.lif_bwd.argtypes = [p, p, i64, p, p, p, p, i64, i64, p, p, i64, i64, i32] + bn
    lib.lif_bwd.restype = i32
    return lib
