"""Fused LIF forward+backward against an eager loop, torch.compile of that loop and SpikingJelly.

    python bench/lif.py --threads 1     # T in {4, 8, 16}, N in {1e5, 1e6, 4e6}
    python bench/lif.py --threads 2
    python bench/lif.py --quick         # T = 4 only, fewer repeats, no torch.compile

Prints one table: median fwd+bwd time over repeats (the methods take turns within
each repeat), its ratio to snnc (how many times slower the baseline is), the bytes
saved for backward, the achieved GB/s and the memory floor: the bytes that must move
(read x, write s and h; read grad and h, write grad_x) at this machine's measured
copy bandwidth. Everything is measured in the same run; on a shared machine compare
the ratios, not the absolute times.

On the CPU, "snnc" is the generated CPU kernel (backend "cpu": C compiled on first use)
and "snnc torch path" the PyTorch implementation it replaces; the first-call build time
(compile + load, from an empty cache) is printed, and each cell checks that the kernel's
spikes equal the PyTorch path's bit for bit and reports its largest gradient difference
relative to the largest gradient. On CUDA "snnc" is the Triton kernel.

Fresh output tensors: glibc returns freed blocks above 32 MiB to the OS, so every call
of every method would page-fault and zero its outputs again (on this kind of machine
that costs more than the kernels). Unless --default-malloc is given, the script
re-executes itself with GLIBC_TUNABLES set so that freed memory is reused, for all
methods alike, as jemalloc or tcmalloc would do in a training process.

Peak memory (--peak): CUDA uses the caching allocator's peak; on the CPU each method
runs once in a fresh subprocess and the peak resident set above the inputs is reported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from snnc.ops import lif
from snnc.ops.memory import saved_storages
from snnc.ops.reference import lif_reference
from benchkit import copy_bandwidth, interleaved_ms, reexec_reusing_freed_memory, reset_peak_rss, status_kib

SURROGATE = "sigmoid(alpha=4.0)"  # SpikingJelly's default surrogate, so every method computes the same
LIF_ARGS = dict(decay=0.5, vth=1.0, reset="hard", surrogate=SURROGATE)


def make_methods(device: str, compile_loop: bool) -> dict:
    """name -> fn(x) returning spikes; snnc first (the ratios are against it)."""
    methods = {"snnc": lambda x: lif(x, backend="cpu" if device == "cpu" else "auto", **LIF_ARGS)}
    if device == "cpu":
        methods["snnc torch path"] = lambda x: lif(x, backend="torch", **LIF_ARGS)
    # the eager reference loop itself (what lif(backend="reference") runs), so that torch.compile
    # traces only the loop and not snnc's argument parsing
    methods["eager loop"] = lambda x: lif_reference(x, decay_input=False, detach_reset=False, **LIF_ARGS)
    if compile_loop:
        methods["torch.compile loop"] = torch.compile(methods["eager loop"])
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError:
        return methods
    node = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m").to(device)

    def spikingjelly(x):
        functional.reset_net(node)
        return node(x)

    label = "spikingjelly (Triton)" if device == "cuda" else "spikingjelly"
    methods[label] = spikingjelly
    return methods


def inputs(T: int, N: int, device: str):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(T, N, generator=gen) * 0.8 + 0.6).to(device)
    grad = torch.randn(T, N, generator=gen).to(device)
    return x, grad


def fwd_bwd(fn, x, grad):
    x = x.detach().requires_grad_()
    (gx,) = torch.autograd.grad(fn(x), x, grad)
    return gx


def saved_bytes(fn, x) -> int:
    """Bytes of distinct storages autograd keeps for backward."""
    return sum(saved_storages(fn, x.detach().requires_grad_()).values())


def cuda_peak(fn, x, grad) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fwd_bwd(fn, x, grad)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def child_peak(method: str, T: int, N: int) -> None:
    """Runs in a fresh process: prints the peak RSS above the inputs (MiB) of one fwd+bwd."""
    fn = make_methods("cpu", compile_loop=False)[method]
    fwd_bwd(fn, *inputs(T, 1000, "cpu"))  # load libraries and caches outside the measurement
    x, grad = inputs(T, N, "cpu")
    reset_peak_rss()
    base = status_kib("VmRSS")
    fwd_bwd(fn, x, grad)
    print((status_kib("VmHWM") - base) / 1024)


def cpu_peak(method: str, T: int, N: int) -> float | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--child-peak", method, str(T), str(N)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None


def fmt(value, spec: str) -> str:
    """`value` formatted by `spec` (e.g. '9.1f'), or a dash of the same width when not measured."""
    return f"{'-':>{int(spec.split('.')[0])}}" if value is None else format(value, spec)


def build_seconds() -> float | None:
    """Seconds of the first call of the CPU kernel from an empty cache (render, compile, load)."""
    import tempfile

    from snnc.backends.cpu import build, launch
    from snnc.ops.config import make_config

    if build.compiler() is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("SNNC_CACHE_DIR")
        os.environ["SNNC_CACHE_DIR"] = tmp
        build.load.cache_clear()
        try:
            start = time.perf_counter()
            lib = launch.library(make_config(**LIF_ARGS), torch.float32, "cpu", False)
            seconds = time.perf_counter() - start
        finally:
            if old is None:
                del os.environ["SNNC_CACHE_DIR"]
            else:
                os.environ["SNNC_CACHE_DIR"] = old
            build.load.cache_clear()
    return seconds if lib is not None else None


def agreement(x, grad) -> tuple[bool, float]:
    """(spikes of the CPU kernel == the PyTorch path's, max |grad difference| / max |grad|)."""
    outs = []
    for backend in ("cpu", "torch"):
        xx = x.detach().requires_grad_()
        s = lif(xx, backend=backend, **LIF_ARGS)
        (g,) = torch.autograd.grad(s, xx, grad)
        outs.append((s.detach(), g))
    (s1, g1), (s2, g2) = outs
    return torch.equal(s1, s2), ((g1 - g2).abs().max() / g2.abs().max()).item()




def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T=4 only, 5 repeats, no torch.compile")
    parser.add_argument("--T", type=int, nargs="+", default=None, help="time steps (default 4 8 16)")
    parser.add_argument("--N", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000],
                        help="neurons per step (default 1e5 1e6 4e6)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 11)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--peak", action="store_true", help="also measure peak memory (a subprocess per cell)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default allocator settings (outputs page-fault on every call)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default torch's); 1 is steadier on a machine shared with other jobs, "
                             "where every multi-threaded op waits for a descheduled thread")
    parser.add_argument("--child-peak", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_peak:
        child_peak(args.child_peak[0], int(args.child_peak[1]), int(args.child_peak[2]))
        return
    if args.device == "cpu" and not args.default_malloc:
        reexec_reusing_freed_memory(__file__)
    Ts = args.T or ([4] if args.quick else [4, 8, 16])
    repeats = args.repeats or (5 if args.quick else 11)
    device = args.device
    methods = make_methods(device, compile_loop=not (args.quick or args.no_compile))
    bandwidth = copy_bandwidth(max(256 * 2**20, 4 * max(Ts) * max(args.N) * 4), device)
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"float32, surrogate {SURROGATE}, median of {repeats}"
          + ("" if device != "cpu" else ", default malloc" if args.default_malloc else ", freed memory reused"))
    print(f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s; bytes that must move = 6*T*N*4 "
          f"(fwd: read x, write s, h; bwd: read grad, h, write grad_x)")
    if device == "cpu":
        seconds = build_seconds()
        print("CPU kernel: no C compiler, snnc runs the PyTorch path" if seconds is None else
              f"CPU kernel: first call from an empty cache (render, compile, load) {seconds:.2f} s")
    head = (f"{'T':>3} {'N':>9}  {'method':<22} {'fwd+bwd ms':>10} {'x snnc':>7} {'peak MiB':>9} "
            f"{'mem/snnc':>8} {'saved MiB':>9} {'GB/s':>6} {'floor ms':>8} {'x floor':>7}")
    print(head)
    print("-" * len(head))
    for T in Ts:
        for N in args.N:
            x, grad = inputs(T, N, device)
            must_move = 6 * T * N * 4
            floor_ms = must_move / bandwidth * 1e3
            base_ms = base_mem = None
            times = interleaved_ms({k: (lambda f=f: fwd_bwd(f, x, grad)) for k, f in methods.items()}, repeats,
                                   device)
            for name, fn in methods.items():
                ms = times[name]
                peak = None
                if args.peak:
                    peak = cuda_peak(fn, x, grad) if device == "cuda" else (
                        None if "compile" in name else cpu_peak(name, T, N))
                saved = saved_bytes(fn, x) / 2**20
                if base_ms is None:
                    base_ms, base_mem = ms, peak
                mem_ratio = peak / base_mem if peak and base_mem else None
                print(f"{T:>3} {N:>9}  {name:<22} {ms:>10.2f} {ms / base_ms:>7.2f} {fmt(peak, '9.1f')} "
                      f"{fmt(mem_ratio, '8.2f')} {saved:>9.1f} {must_move / ms / 1e6:>6.1f} "
                      f"{floor_ms:>8.2f} {ms / floor_ms:>7.1f}")
            if device == "cpu":
                same, diff = agreement(x, grad)
                print(f"{T:>3} {N:>9}  CPU kernel vs torch path: spikes {'identical' if same else 'DIFFER'}, "
                      f"max grad difference {diff:.1e} of max |grad|")
    print("x snnc: time / snnc's time (higher = snnc faster); mem/snnc: peak / snnc's peak; "
          "x floor: time / floor time")


if __name__ == "__main__":
    main()
