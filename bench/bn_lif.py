"""Fused BN+LIF (`snnc.ops.bn_lif`) against BatchNorm followed by `snnc.ops.lif`, forward+backward.

    python bench/bn_lif.py --threads 1      # ResNet-18/19 layer shapes, T=4, batch 8
    python bench/bn_lif.py --threads 2 --quick

For each backend that runs here (on the CPU: "cpu", the generated C kernel, "torch", the PyTorch
path, and "torch, no cc", the PyTorch path as it runs without a C compiler; on CUDA: "triton") and
each layer shape [T, B, C, H, W] of the zoo's ResNets, the
median time of: the fused op; torch's BatchNorm2d (training mode, on the merged T*B batch) then
`lif` with the same backend; and BatchNorm2d then SpikingJelly's multi-step LIFNode where it is
installed (timed beside BatchNorm + lif in a second interleaving and scaled to the first one's
BatchNorm + lif time: SpikingJelly sweeps the caches, and running it between the fused op and
BatchNorm + lif would cost the small fused op more, 0.65 -> 0.94 ms against 0.87 -> 1.02 ms at
512x4x4). Gradients are taken w.r.t. x, the BN weight and bias. "fused/unfused" is the fused time
over BatchNorm + lif on the same backend; the target is 0.8. The methods take turns within each repeat, in an
order that rotates from repeat to repeat (benchkit.interleaved_ms). OpenMP is set up as in the
generated train.py (snnc/runtime/openmp.py).
"""

from __future__ import annotations

import argparse
import statistics

import snnc.runtime.openmp  # noqa: F401  (before torch: OpenMP's waiting threads as in train.py)
import torch

from snnc.ops import bn_lif, lif
from benchkit import interleaved_ms, reexec_reusing_freed_memory

SURROGATE = "sigmoid(alpha=4.0)"  # SpikingJelly's default surrogate
LIF_ARGS = dict(decay=0.5, vth=1.0, reset="hard", surrogate=SURROGATE)
# (C, H) of the 3x3 convolutions' outputs: resnet18 (CIFAR stem) and resnet19
PAIR = ("fused bn_lif", "BatchNorm + lif")
# Backends as they run without a C compiler: what runs there, and (--fused-loop) the fused loop on
# torch's statistics, which loses to BatchNorm then lif and so does not run there (docs/kernels.md).
NO_COMPILER, FUSED_LOOP = "torch, no cc", "torch, loop"
WITHOUT_COMPILER = {NO_COMPILER: ("library",), FUSED_LOOP: ("batch_stats", "batch_stats_folded")}
SHAPES = {"resnet18": [(64, 32), (128, 16), (256, 8), (512, 4)], "resnet19": [(128, 32), (256, 16), (512, 8)]}


def layer(C: int, device: str):
    bn = torch.nn.BatchNorm2d(C).to(device)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.4)
    return bn


def make_methods(backend: str, C: int, device: str) -> dict:
    """name -> fn(x) returning spikes [T, B, C, H, W] and the parameters to differentiate. Backend
    WITHOUT_COMPILER's backends run the PyTorch path as without a C compiler (`without_c_statistics`)."""
    bn = layer(C, device)
    engine = backend.split(",")[0]

    def fused(x):
        return bn_lif(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, training=True, momentum=0.1,
                      eps=bn.eps, backend=engine, **LIF_ARGS)

    if backend in WITHOUT_COMPILER:
        fused = without_c_statistics(fused, WITHOUT_COMPILER[backend])

    def unfused(x):
        return lif(bn(x.flatten(0, 1)).view(x.shape), backend=engine, **LIF_ARGS)

    methods = {"fused bn_lif": fused, "BatchNorm + lif": unfused}
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError:
        return methods, bn
    node = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m").to(device)

    def spikingjelly(x):
        functional.reset_net(node)
        return node(bn(x.flatten(0, 1)).view(x.shape))

    methods["BatchNorm + SpikingJelly"] = spikingjelly
    return methods, bn


def without_c_statistics(fn, attributes):
    """fn run as on a machine without a C compiler: the `attributes` of snnc.backends.cpu.bn answer
    None while it runs. ("library": the statistics kernel is missing, so a fused layer runs as
    torch's BatchNorm then lif; "batch_stats", "batch_stats_folded": only the statistics calls
    fail, so the fused loop runs on torch's statistics, the variant that fallback replaces.)"""
    from snnc.backends.cpu import bn as cpu_bn

    def run(x):
        saved = {name: getattr(cpu_bn, name) for name in attributes}
        for name in attributes:
            setattr(cpu_bn, name, lambda *args, **kwargs: None)
        try:
            return fn(x)
        finally:
            for name, value in saved.items():
                setattr(cpu_bn, name, value)

    return run


def step(fn, bn, x, grad):
    xx = x.detach().requires_grad_()
    torch.autograd.grad(fn(xx), (xx, bn.weight, bn.bias), grad)


def trade_table(device: str, backends: list[str], nets: dict, T: int, batch: int, repeats: int) -> dict:
    """Print the table (one row per layer shape and backend) and a summary line per backend; returns
    backend -> fused/unfused ratios. bench/gpu_check.py calls it for Triton on CUDA."""
    head = (f"{'network':<9} {'C':>4} {'HxW':>6}  {'backend':<12} {'fused ms':>9} {'BN+lif ms':>10} {'BN+SJ ms':>9} "
            f"{'fused/unfused':>14}")
    print(head)
    print("-" * len(head))
    ratios = {b: [] for b in backends}
    for net, shapes in nets.items():
        for C, H in shapes:
            gen = torch.Generator().manual_seed(C + H)
            x = (torch.randn(T, batch, C, H, H, generator=gen) * 0.8 + 0.3).to(device)
            grad = torch.randn(x.shape, generator=gen).to(device)
            for backend in backends:
                methods, bn = make_methods(backend, C, device)
                timed = {k: (lambda f=f: step(f, bn, x, grad)) for k, f in methods.items()}
                # The pair on its own, then SpikingJelly beside BN + lif: a contender that sweeps the
                # caches before each call would cost the small fused op more than the unfused pair.
                ms = interleaved_ms({k: timed[k] for k in PAIR}, repeats, device)
                if "BatchNorm + SpikingJelly" in timed:
                    other = interleaved_ms({k: timed[k] for k in ("BatchNorm + lif", "BatchNorm + SpikingJelly")},
                                           repeats, device)
                    ms["BatchNorm + SpikingJelly"] = other["BatchNorm + SpikingJelly"] * (
                        ms["BatchNorm + lif"] / other["BatchNorm + lif"])
                ratio = ms["fused bn_lif"] / ms["BatchNorm + lif"]
                ratios[backend].append(ratio)
                sj = ms.get("BatchNorm + SpikingJelly")
                print(f"{net:<9} {C:>4} {f'{H}x{H}':>6}  {backend:<12} {ms['fused bn_lif']:>9.2f} "
                      f"{ms['BatchNorm + lif']:>10.2f} {'-' if sj is None else f'{sj:.2f}':>9} {ratio:>14.3f}")
    for backend, rs in ratios.items():
        print(f"{backend}: fused/unfused median {statistics.median(rs):.3f}, worst {max(rs):.3f} (target <= 0.8)")
    return ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 11, --quick 5)")
    parser.add_argument("--quick", action="store_true", help="resnet18's shapes only, 5 repeats")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    parser.add_argument("--fused-loop", action="store_true",
                        help=f"CPU: also '{FUSED_LOOP}', the fused loop on torch's statistics (no compiler)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        reexec_reusing_freed_memory(__file__)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 11)
    backends = ["cpu", "torch", NO_COMPILER] + [FUSED_LOOP] * args.fused_loop if args.device == "cpu" else ["triton"]
    nets = {"resnet18": SHAPES["resnet18"]} if args.quick else SHAPES
    print(f"device {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}, float32, "
          f"T={args.T}, batch {args.batch}, training mode, fwd+bwd (x, weight, bias), median of {repeats}")
    trade_table(args.device, backends, nets, args.T, args.batch, repeats)


if __name__ == "__main__":
    main()
