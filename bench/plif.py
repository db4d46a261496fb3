"""Fused PLIF (a learned decay) forward+backward against the PyTorch PLIF path, plain autograd and
SpikingJelly's ParametricLIFNode in multi-step mode.

    python bench/plif.py --threads 1     # T in {4, 8, 16}, N in {1e5, 1e6}
    python bench/plif.py --quick         # T = 4 only, 5 repeats

x is [T, B, 64, HW] (N = B*64*HW neurons per step), hard reset to 0, decay_input, tau 2 at the
start, sigmoid(alpha=4) surrogate (SpikingJelly's default, so every method computes the same).
Each cell times fwd+bwd (dL/dx and dL/dw) with one decay per layer and, for snnc, one per
channel; the median over repeats in which the methods take turns. "snnc" is the generated C
kernel on the CPU (Triton on CUDA), "snnc torch path" the loops with torch ops that
`backend="torch"` runs, "eager autograd" `plif_reference` (what a plain PyTorch PLIF does).
Each cell checks that the C kernel's spikes equal the PyTorch path's bit for bit and reports
the largest differences of dL/dx and dL/dw relative to their largest values. The floor is the
bytes that must move at the measured copy bandwidth: forward reads x and writes s and h,
backward reads grad, h and x (dh/dk with decay_input) and writes dL/dx: 7*T*N*4 bytes.

As in bench/lif.py, on the CPU the script re-executes itself with GLIBC_TUNABLES set so that
freed memory is reused (unless --default-malloc).
"""

from __future__ import annotations

import argparse

import torch

from snnc.ops.config import make_config
from snnc.runtime.plif import initial_w, plif_reference, run_plif
from benchkit import copy_bandwidth, interleaved_ms, reexec_reusing_freed_memory

SURROGATE = "sigmoid(alpha=4.0)"
CFG = make_config(decay=0.5, vth=1.0, reset="hard", decay_input=True, surrogate=SURROGATE)
CHANNELS = 64


def snnc(backend: str, per_channel: bool):
    def run(x, w):
        return run_plif(x, w, CFG, None, (0, 0), backend, None)
    run.per_channel = per_channel
    return run


def make_methods(device: str) -> dict:
    """name -> fn(x, w) returning spikes; snnc (per layer) first: the ratios are against it."""
    methods = {"snnc": snnc("cpu" if device == "cpu" else "auto", False),
               "snnc per channel": snnc("cpu" if device == "cpu" else "auto", True),
               "snnc torch path": snnc("torch", False)}

    def eager(x, w):
        return plif_reference(x, w, vth=1.0, reset="hard", decay_input=True, detach_reset=False,
                              surrogate="sigmoid", sg_params=[4.0])
    eager.per_channel = False
    methods["eager autograd"] = eager
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError:
        return methods
    node = neuron.ParametricLIFNode(init_tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                                    surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m").to(device)

    del node.w  # replaced by the benchmark's w in each call, so that dL/dw reaches it

    def spikingjelly(x, w):
        functional.reset_net(node)
        node.w = w
        return node(x)
    spikingjelly.per_channel = False
    methods["spikingjelly"] = spikingjelly
    return methods


def inputs(T: int, N: int, device: str):
    gen = torch.Generator().manual_seed(0)
    hw = max(1, N // (8 * CHANNELS))
    B = max(1, N // (CHANNELS * hw))
    x = (torch.randn(T, B, CHANNELS, hw, generator=gen) * 0.8 + 1.2).to(device)
    grad = torch.randn(x.shape, generator=gen).to(device)
    return x, grad


def weights(fn, device):
    w0 = initial_w(0.5)
    return torch.full((CHANNELS,) if fn.per_channel else (), w0, device=device)


def fwd_bwd(fn, x, w, grad):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    return torch.autograd.grad(fn(x, w), (x, w), grad)




def agreement(methods, x, grad, device) -> str:
    """The C kernel against the PyTorch path: spikes, and the largest gradient differences."""
    outs = []
    for name in ("snnc", "snnc torch path"):
        xx = x.detach().requires_grad_()
        w = weights(methods[name], device).requires_grad_()
        s = methods[name](xx, w)
        outs.append((s.detach(), *torch.autograd.grad(s, (xx, w), grad)))
    (s1, gx1, gw1), (s2, gx2, gw2) = outs
    dx = ((gx1 - gx2).abs().max() / gx2.abs().max()).item()
    dw = ((gw1 - gw2).abs().max() / gw2.abs().max()).item()
    return (f"spikes {'identical' if torch.equal(s1, s2) else 'DIFFER'}, max difference of dL/dx {dx:.1e}, "
            f"of dL/dw {dw:.1e} (relative to the largest)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T=4 only, 5 repeats")
    parser.add_argument("--T", type=int, nargs="+", default=None, help="time steps (default 4 8 16)")
    parser.add_argument("--N", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="neurons per step (default 1e5 1e6)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 7)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's default allocator settings")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu" and not args.default_malloc:
        reexec_reusing_freed_memory(__file__)
    Ts = args.T or ([4] if args.quick else [4, 8, 16])
    repeats = args.repeats or (5 if args.quick else 7)
    device = args.device
    methods = make_methods(device)
    bandwidth = copy_bandwidth(max(256 * 2**20, 4 * max(Ts) * max(args.N) * 4), device)
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, float32, "
          f"surrogate {SURROGATE}, decay_input, hard reset, median of {repeats}")
    print(f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s; bytes that must move = 7*T*N*4")
    head = (f"{'T':>3} {'N':>9}  {'method':<18} {'fwd+bwd ms':>10} {'x snnc':>7} {'GB/s':>6} {'floor ms':>8} "
            f"{'x floor':>7}")
    print(head)
    print("-" * len(head))
    for T in Ts:
        for N in args.N:
            x, grad = inputs(T, N, device)
            n = x[0].numel()
            must_move = 7 * T * n * 4
            floor_ms = must_move / bandwidth * 1e3
            ws = {name: weights(fn, device) for name, fn in methods.items()}
            times = interleaved_ms({k: (lambda f=f, w=ws[k]: fwd_bwd(f, x, w, grad)) for k, f in methods.items()},
                                   repeats, device)
            base = times["snnc"]
            for name, ms in times.items():
                print(f"{T:>3} {n:>9}  {name:<18} {ms:>10.2f} {ms / base:>7.2f} {must_move / ms / 1e6:>6.1f} "
                      f"{floor_ms:>8.2f} {ms / floor_ms:>7.1f}")
            if device == "cpu":
                print(f"{T:>3} {n:>9}  C kernel vs torch path: {agreement(methods, x, grad, device)}")
    print("x snnc: time / snnc's (per layer) time, higher = snnc faster; x floor: time / floor time")


if __name__ == "__main__":
    main()
