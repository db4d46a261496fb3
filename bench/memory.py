"""Saved activations and training-step time per memory policy (docs/memory.md), beside an eager
PyTorch model of the same network with a plain LIF loop and SpikingJelly 2.0's multi-step model.

    python bench/memory.py                                  # resnet18, resnet19, vggsnn at T in {4, 8}
    python bench/memory.py --models resnet18 --T 4 --repeats 11
    python bench/memory.py --quick                          # resnet18 at T = 4, 5 repeats

For each network (models/*.snn, recipe tet, batch 8, one thread by default) and T:

- snnc store / pack / recompute: the generated model compiled with `--memory POLICY`, all
  three from the same weights; the first step checks that pack's and recompute's gradients
  equal store's bit for bit.
- eager: the same network written with torch.nn, BN over the merged T*B batch and a LIF
  layer that loops over the steps with a surrogate autograd function (triangle, or the
  network's dspike).
- spikingjelly: the same network from SpikingJelly's layers in multi-step mode (`layer.Conv2d`,
  `layer.BatchNorm2d`, `neuron.LIFNode(tau=2, decay_input=False, v_reset=0)` with
  PiecewiseQuadratic(alpha=1), SpikingJelly's triangle), where it is installed.

"saved MiB" is exact: the distinct storages autograd keeps, counted with
torch.autograd.graph.saved_tensors_hooks around the forward (parameters and buffers left
out), the count issue 14 used. A step is forward, TET loss and backward (no optimizer step,
which every method pays alike); the methods take turns within each repeat and the table
gives medians and ratios to snnc store measured in the same run: on a shared machine compare
the ratios. On CUDA, the allocator's peak during a step is added. Freed memory is reused as
in bench/lif.py (glibc tunables; --default-malloc keeps glibc's defaults).
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from pathlib import Path

import torch
from torch import nn

from snnc import losses
from snnc.backends.torch.render import render_model
from snnc.ops.memory import saved_storages
from snnc.pipeline import compile_source
from benchkit import reexec_reusing_freed_memory

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("store", "pack", "recompute")


# ------------------------------------------------------------------ snnc
def snnc_model(model: str, T: int, policy: str):
    compiled = compile_source(ROOT / "models" / f"{model}.snn", {"T": str(T)}, recipe="tet", memory=policy)
    module = types.ModuleType(f"bench_memory_{model}_{policy}")
    exec(compile(render_model(compiled.graph, f"{model}.snn", "tet"), f"<{model} {policy}>", "exec"),
         module.__dict__)
    return module


# ------------------------------------------------------------------ eager torch.nn, plain LIF loop
class Spike(torch.autograd.Function):
    """s = (h >= vth); ds/dh = the surrogate at h - vth (triangle, or dspike)."""

    @staticmethod
    def forward(ctx, u, surrogate):
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        if ctx.surrogate == "dspike":  # dspike(b=2.5) on |u| < 1 (docs/methods.md §2)
            b = 2.5
            g = b * (1 - torch.tanh(b * u).square()) / (2 * torch.tanh(torch.tensor(b)))
            return grad * g * (u.abs() < 1), None
        return grad * (1 - u.abs()).clamp_(min=0), None  # triangle(beta=1)


class LoopLIF(nn.Module):
    """h = 0.5 v + x, s = (h >= 1), v = h (1 - s), step by step over x [T, B, ...]."""

    def __init__(self, surrogate: str):
        super().__init__()
        self.surrogate = surrogate

    def forward(self, x):
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            h = 0.5 * v + x[t]
            s = Spike.apply(h - 1.0, self.surrogate)
            v = h * (1 - s)
            out.append(s)
        return torch.stack(out)


class Merged(nn.Module):
    """A stateless layer applied to [T, B, ...] as one [T*B, ...] batch."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _sj():
    from spikingjelly.activation_based import layer, neuron, surrogate

    return layer, neuron, surrogate


class Kit:
    """Layers of one family: eager torch.nn with LoopLIF, or SpikingJelly's multi-step layers."""

    def __init__(self, family: str, surrogate: str):
        self.family, self.surrogate = family, surrogate

    def conv_bn(self, cin, cout, k=3, stride=1):
        if self.family == "eager":
            return Merged(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))
        layer, _, _ = _sj()
        return nn.Sequential(layer.Conv2d(cin, cout, k, stride, k // 2, bias=False, step_mode="m"),
                             layer.BatchNorm2d(cout, step_mode="m"))

    def lif(self):
        if self.family == "eager":
            return LoopLIF(self.surrogate)
        _, neuron, surrogate = _sj()
        return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.PiecewiseQuadratic(alpha=1.0), step_mode="m")

    def stateless(self, *layers):
        if self.family == "eager":
            return Merged(*layers)
        layer, _, _ = _sj()
        return layer.SeqToANNContainer(*layers)


class Basic(nn.Module):
    def __init__(self, kit: Kit, cin, c, stride):
        super().__init__()
        self.main = nn.Sequential(kit.conv_bn(cin, c, 3, stride), kit.lif(), kit.conv_bn(c, c, 3))
        self.skip = kit.conv_bn(cin, c, 1, stride) if stride != 1 or cin != c else nn.Identity()
        self.out = kit.lif()

    def forward(self, x):
        return self.out(self.main(x) + self.skip(x))


def resnet(kit: Kit, stages, head_hidden=None):
    layers, cin = [kit.conv_bn(3, 64), kit.lif()], 64
    for c, blocks, stride in stages:
        for i in range(blocks):
            layers.append(Basic(kit, cin, c, stride if i == 0 else 1))
            cin = c
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if head_hidden:
        return nn.Sequential(*layers, kit.stateless(*head, nn.Linear(cin, head_hidden)), kit.lif(),
                             kit.stateless(nn.Linear(head_hidden, 10)))
    return nn.Sequential(*layers, kit.stateless(*head, nn.Linear(cin, 10)))


def vggsnn(kit: Kit):
    layers, cin = [], 2
    for item in (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"):
        if item == "P":
            layers.append(kit.stateless(nn.AvgPool2d(2)))
        else:
            layers += [kit.conv_bn(cin, item), kit.lif()]
            cin = item
    return nn.Sequential(*layers, kit.stateless(nn.Flatten(), nn.Linear(512 * 3 * 3, 10)))


NETWORKS = {
    "resnet18": (lambda kit: resnet(kit, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]), "dspike"),
    "resnet19": (lambda kit: resnet(kit, [(128, 3, 1), (256, 3, 2), (512, 2, 2)], head_hidden=256), "triangle"),
    "vggsnn": (vggsnn, "triangle"),
}


class Baseline(nn.Module):
    """An eager or SpikingJelly network taking snnc's input ([B, ...] images repeated over T, or [T, B, ...])."""

    def __init__(self, net: nn.Module, T: int, family: str):
        super().__init__()
        self.net, self.T, self.family = net, T, family

    def forward(self, x):
        if self.family == "spikingjelly":
            from spikingjelly.activation_based import functional

            functional.reset_net(self.net)
        seq = x.unsqueeze(0).expand(self.T, *x.shape).contiguous() if x.dim() == 4 else x
        return self.net(seq), []


# ------------------------------------------------------------------ measuring
def saved_bytes(net: nn.Module, x) -> int:
    return sum(saved_storages(net, x, exclude=[*net.parameters(), *net.buffers()]).values())


def step(net: nn.Module, x, y) -> None:
    for p in net.parameters():
        p.grad = None
    out, _ = net(x)
    losses.tet(out, y).backward()


def cuda_peak(net, x, y) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step(net, x, y)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def methods_for(model: str, T: int, device: str) -> tuple[dict, object]:
    modules = {p: snnc_model(model, T, p) for p in POLICIES}
    torch.manual_seed(0)
    nets = {f"snnc {p}": m.build_model() for p, m in modules.items()}
    state = nets["snnc store"].state_dict()
    for net in nets.values():
        net.load_state_dict(state)
    build, surrogate = NETWORKS[model]
    nets["eager"] = Baseline(build(Kit("eager", surrogate)), T, "eager")
    try:
        nets["spikingjelly"] = Baseline(build(Kit("spikingjelly", surrogate)), T, "spikingjelly")
    except ImportError:
        pass
    for net in nets.values():
        net.to(device).train()
    return nets, modules["store"]


def grads_identical(nets: dict, x, y) -> dict:
    grads = {}
    for p in POLICIES:
        step(nets[f"snnc {p}"], x, y)
        grads[p] = [q.grad.clone() for q in nets[f"snnc {p}"].parameters()]
    return {p: all(torch.equal(a, b) for a, b in zip(grads["store"], grads[p])) for p in POLICIES[1:]}


def run(model: str, T: int, batch: int, repeats: int, device: str) -> list[dict]:
    nets, module = methods_for(model, T, device)
    g = torch.Generator().manual_seed(0)
    if module.INPUT_KIND == "image":
        x = torch.randn(batch, *module.INPUT_DIMS, generator=g)
    else:
        x = (torch.rand(T, batch, *module.INPUT_DIMS, generator=g) < 0.3).float()
    x, y = x.to(device), torch.randint(0, 10, (batch,), generator=g).to(device)
    same = grads_identical(nets, x, y)
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    saved = {name: saved_bytes(net, x) for name, net in nets.items()}
    for net in nets.values():
        step(net, x, y)  # warm-up (the first step of each also built its kernels)
    times = {name: [] for name in nets}
    for _ in range(repeats):
        for name, net in nets.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(net, x, y)
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    peaks = {name: cuda_peak(net, x, y) for name, net in nets.items()} if device == "cuda" else {}
    base_t, base_b = statistics.median(times["snnc store"]), saved["snnc store"]
    rows = []
    for name in nets:
        ms = statistics.median(times[name]) * 1e3
        rows.append(dict(model=model, T=T, batch=batch, method=name, params=params[name],
                         saved_mib=saved[name] / 2**20, bytes_ratio=saved[name] / base_b, step_ms=ms,
                         time_ratio=ms / (base_t * 1e3), peak_mib=peaks.get(name),
                         identical=same.get(name.replace("snnc ", ""))))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per method (default 7)")
    parser.add_argument("--quick", action="store_true", help="resnet18 at T = 4, 5 repeats")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's default allocator settings")
    args = parser.parse_args(argv)
    if args.device == "cpu" and not args.default_malloc:
        reexec_reusing_freed_memory(__file__)
    torch.set_num_threads(args.threads)
    models, Ts, repeats = (["resnet18"], [4], 5) if args.quick else (args.models, args.T, args.repeats)
    print(f"device {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}, recipe tet, "
          f"batch {args.batch}, median of {repeats} steps (forward, TET loss, backward), methods interleaved")
    peak = args.device == "cuda"
    head = (f"{'model':<9} {'T':>2}  {'method':<16} {'params':>10} {'saved MiB':>10} {'x store':>8} "
            f"{'step ms':>9} {'x store':>8}" + (f" {'peak MiB':>9}" if peak else "") + "  grads")
    print(head)
    print("-" * len(head))
    for model in models:
        for T in Ts:
            for r in run(model, T, args.batch, repeats, args.device):
                same = "" if r["identical"] is None else ("identical" if r["identical"] else "DIFFER")
                print(f"{r['model']:<9} {r['T']:>2}  {r['method']:<16} {r['params']:>10,} {r['saved_mib']:>10.1f} "
                      f"{r['bytes_ratio']:>8.3f} {r['step_ms']:>9.1f} {r['time_ratio']:>8.3f}"
                      + (f" {r['peak_mib']:>9.1f}" if peak else "") + f"  {same}", flush=True)
    print("x store: ratio to snnc store in the same run; grads: pack's and recompute's first-step gradients "
          "against store's (torch.equal on every parameter)")


if __name__ == "__main__":
    main()
