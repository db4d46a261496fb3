"""What the benchmarks share: interleaved median timing and the allocator setting they run under."""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import time

import torch

# glibc: blocks up to 4 GiB from the heap, and the heap never trimmed, so freed outputs are reused
# (MALLOC_MMAP_THRESHOLD_ cannot go above 32 MiB; the tunable can). Without it every call of every
# method page-faults and zeroes its large outputs again, which on these machines costs more than
# the kernels; jemalloc or tcmalloc in a training process would reuse them too.
REUSE_FREED = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736"


def reexec_reusing_freed_memory(script: str) -> None:
    """Re-execute `script` (with the same arguments) under REUSE_FREED unless it already runs so."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if REUSE_FREED in tunables:
        return
    env = dict(os.environ, GLIBC_TUNABLES=f"{tunables}:{REUSE_FREED}" if tunables else REUSE_FREED)
    os.execve(sys.executable, [sys.executable, script, *sys.argv[1:]], env)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_ms(methods: dict, repeats: int, device: str = "cpu", warmup: int = 2) -> dict:
    """name -> median milliseconds of fn() over `repeats`. The methods take turns within each
    repeat, so load from other processes on a shared machine hits all of them alike, and the order
    rotates from repeat to repeat, so each follows every other equally often (a method that runs
    right after one that sweeps the caches starts cold)."""
    for fn in methods.values():
        for _ in range(warmup):
            fn()
    names = list(methods)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = methods[name]
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def copy_bandwidth(nbytes: int, device: str) -> float:
    """Bytes per second of dst.copy_(src) (read + write counted): the memory floor's bandwidth."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / (interleaved_ms({"copy": lambda: dst.copy_(src)}, 7, device, warmup=1)["copy"] / 1e3)


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (Linux): VmRSS, VmHWM, ..."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Linux: returns the heap's free memory to the OS (glibc), then sets the peak resident set
    (VmHWM) to the current one."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
