"""The whole training step (forward, loss, backward, optimizer) of snnc beside its peers.

    python bench/step.py                                 # resnet18 and resnet19, 1 and 2 threads
    python bench/step.py --nets resnet18 --threads 1 --repeats 5
    python bench/step.py --sml-repo PATH                 # also the SML authors' own ResNet-18/19
    python bench/step.py --load 1                        # with one busy process beside it

Each network (models/*.snn; 3x32x32, T=4, batch 8, SGD with momentum) is trained by:

- snnc tet, snnc sml+tet: the generated model and the recipe's loss (`snnc.build`);
- spikingjelly tet: the same network from SpikingJelly 2.0's multi-step layers (built as in
  bench/memory.py) with TET's loss, where SpikingJelly is installed (`pip install --no-deps
  spikingjelly`);
- authors, authors + SM: with --sml-repo, a local checkout of the SML paper's code
  (github.com/brain-intelligence-lab/surrogate_module_learning; fetched by you, never part of
  snnc): its ResNet18/ResNet19 without and with its surrogate modules (after blocks 3 and 6 for
  ResNet-18, kernels 7-5-3, 256 channels, as its training script), cross-entropy on its
  time-averaged output plus each module's; its LIF is a Python loop over T.

The contenders take turns within each repeat, in an order that rotates (medians; ratios against
snnc tet of the same run; on a shared machine compare ratios). "saved MiB" are the activations autograd keeps (distinct
storages, parameters left out, bench/memory.py's count); "peak MiB" is, on CUDA, the allocator's
peak above the weights during a step and, on the CPU with --peak, the peak resident set of two
steps above the built model and inputs (optimizer state and library workspaces included), each
contender in a fresh process. The profile splits a step's CPU time (torch.profiler, self
times attributed to the nearest conv / BN / optimizer region above them, the rest "neuron+other":
snnc's fused BN+LIF counts there, its BN included). With --load N, N busy processes run beside
the measurement, a shared machine's load; a CPU step at 2 threads should stay within 1.5x of
1 thread then. OpenMP is set up as in the generated train.py (snnc/runtime/openmp.py).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import snnc.runtime.openmp  # noqa: F401  (before torch, as in train.py)
import torch
import torch.nn.functional as F

import snnc
from benchkit import interleaved_ms, reexec_reusing_freed_memory, reset_peak_rss, status_kib, sync
from memory import NETWORKS, Baseline, Kit, saved_bytes
from snnc import losses

ROOT = Path(__file__).resolve().parent.parent
SM_ARGS = dict(sb_places=[3, 3], sb_kernels=[[7, 5, 3]] * 2, sb_pads=256)  # modules after blocks 3 and 6
AUTHORS = {"resnet18": ("models.ResNet", "ResNet18", "ResNet_SB18"),
           "resnet19": ("models.ResNet19", "ResNet19", "ResNet_SB19")}
CATEGORIES = (("optimizer", ("optimizer",)), ("conv", ("conv",)), ("BN", ("batch_norm", "batchnorm")))


class Contender:
    """One model with its loss: step() runs forward, loss, backward and the optimizer."""

    def __init__(self, model, loss, x, y, device):
        self.model, self.loss, self.x, self.y = model.to(device).train(), loss, x, y
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(self.x), self.y).backward()
        with torch.profiler.record_function("optimizer"):
            self.opt.step()


def snnc_contender(net: str, recipe: str, T: int, x, y, device) -> Contender:
    built = snnc.build(ROOT / "models" / f"{net}.snn", recipe, T=T)
    return Contender(built.model, lambda out, y: built.loss(out[0], out[1], y), x, y, device)


def spikingjelly_contender(net: str, T: int, x, y, device) -> Contender | None:
    try:
        build, surrogate = NETWORKS[net]
        model = Baseline(build(Kit("spikingjelly", surrogate)), T, "spikingjelly")
    except ImportError:
        return None
    return Contender(model, lambda out, y: losses.tet(out[0], y), x, y, device)


def authors_contenders(repo: Path, net: str, T: int, x, y, device) -> dict:
    """The SML authors' network without and with surrogate modules, from a local checkout."""
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    module_name, plain, with_sm = AUTHORS[net]
    module = __import__(module_name, fromlist=[plain])
    model = getattr(module, with_sm)(num_classes=10, T=T, **SM_ARGS)
    return {"authors": Contender(getattr(module, plain)(num_classes=10, T=T), F.cross_entropy, x, y, device),
            "authors + SM": Contender(model, lambda outs, y: sum(F.cross_entropy(o, y) for o in outs), x, y, device)}


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 to /dev/null: the profiler's C++ side prints a line per start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_split(contender: Contender, steps: int = 3) -> dict:
    """Share of a step's CPU self time per category (CATEGORIES, else neuron+other)."""
    with quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            contender.step()
    totals = dict.fromkeys([c for c, _ in CATEGORIES] + ["neuron+other"], 0.0)
    for event in prof.events():
        category, e = "neuron+other", event
        while e is not None and category == "neuron+other":
            name = e.name.lower()
            category = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), category)
            e = e.cpu_parent
        totals[category] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def cuda_peak(contender: Contender) -> float:
    sync("cuda")
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    contender.step()
    sync("cuda")
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=["resnet18", "resnet19"], choices=sorted(AUTHORS))
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=11, help="timed steps per contender (default 11)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts (default 1 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sml-repo", type=Path, help="a local checkout of the SML authors' repository")
    parser.add_argument("--load", type=int, default=0, help="busy processes to run beside the measurement")
    parser.add_argument("--no-profile", action="store_true", help="skip the torch.profiler split")
    parser.add_argument("--peak", action="store_true",
                        help="CPU: also the peak resident memory of a step (a fresh process per contender)")
    parser.add_argument("--child-peak", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_peak:
        child_peak(args)
        return
    if args.device == "cpu":
        reexec_reusing_freed_memory(__file__)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    try:
        run(args)
    finally:
        stop.set()
        for p in spinners:
            p.join()


def make_contenders(net: str, args, x, y, device: str, only: str | None = None) -> dict:
    """name -> Contender for `net` (just `only` if given), each from the same seed."""
    makers = {"snnc tet": lambda: snnc_contender(net, "tet", args.T, x, y, device),
              "snnc sml+tet": lambda: snnc_contender(net, "sml+tet", args.T, x, y, device),
              "spikingjelly tet": lambda: spikingjelly_contender(net, args.T, x, y, device)}
    if args.sml_repo:
        makers["authors"] = lambda: authors_contenders(args.sml_repo, net, args.T, x, y, device)["authors"]
        makers["authors + SM"] = lambda: authors_contenders(args.sml_repo, net, args.T, x, y, device)["authors + SM"]
    out = {}
    for name, make in makers.items():
        if only in (None, name):
            torch.manual_seed(0)
            contender = make()
            if contender is not None:
                out[name] = contender
    return out


def inputs(args, device: str):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    return x, torch.randint(0, 10, (args.batch,), generator=g).to(device)


def child_peak(args) -> None:
    """Runs in a fresh process: prints the peak RSS (MiB) of two training steps above the built
    model and its inputs (so it includes the optimizer's state and the libraries' workspaces)."""
    net, name = args.child_peak
    torch.set_num_threads(args.threads[0])
    x, y = inputs(args, "cpu")
    contender = make_contenders(net, args, x, y, "cpu", only=name)[name]
    reset_peak_rss()
    base = status_kib("VmRSS")
    for _ in range(2):
        contender.step()
    print((status_kib("VmHWM") - base) / 1024)


def cpu_peak(args, net: str, name: str, threads: int) -> float | None:
    """child_peak in a subprocess, with glibc returning freed memory at once so that RSS follows use."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    env.pop("GLIBC_TUNABLES", None)
    cmd = [sys.executable, __file__, "--child-peak", net, name, "--threads", str(threads), "--T", str(args.T),
           "--batch", str(args.batch)] + (["--sml-repo", str(args.sml_repo)] if args.sml_repo else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else None


def run(args) -> None:
    device = args.device
    threads = args.threads if device == "cpu" else [torch.get_num_threads()]
    print(f"device {device}, torch {torch.__version__}, T={args.T}, batch {args.batch}, 3x32x32, SGD, "
          f"median of {args.repeats}, {args.load} busy processes beside")
    head = (f"{'net':<9} {'thr':>3}  {'contender':<18} {'step ms':>8} {'x snnc tet':>10} {'saved MiB':>9}"
            + (f" {'peak MiB':>8}" if device == "cuda" or args.peak else "")
            + ("" if args.no_profile else f"  {'conv':>5} {'BN':>5} {'neuron+other':>12} {'optim':>5}"))
    print(head)
    print("-" * len(head))
    by_threads = {}
    for net in args.nets:
        x, y = inputs(args, device)
        contenders = make_contenders(net, args, x, y, device)
        saved = {name: saved_bytes(c.model, x) / 2**20 for name, c in contenders.items()}
        for n in threads:
            if device == "cpu":
                torch.set_num_threads(n)
            ms = interleaved_ms({name: c.step for name, c in contenders.items()}, args.repeats, device)
            by_threads.setdefault(net, {})[n] = ms
            for name, c in contenders.items():
                line = (f"{net:<9} {n:>3}  {name:<18} {ms[name]:>8.1f} {ms[name] / ms['snnc tet']:>10.3f} "
                        f"{saved[name]:>9.1f}")
                if device == "cuda":
                    line += f" {cuda_peak(c):>8.1f}"
                elif args.peak:
                    peak = cpu_peak(args, net, name, n)
                    line += f" {'-' if peak is None else f'{peak:.1f}':>8}"
                if not args.no_profile:
                    split = profile_split(c)
                    line += "  " + " ".join(f"{split[k]:>{w}.0%}" for k, w in
                                            (("conv", 5), ("BN", 5), ("neuron+other", 12), ("optimizer", 5)))
                print(line, flush=True)
    summary(by_threads)


def summary(by_threads: dict) -> None:
    """The issue's targets, from the medians above."""
    print()
    for net, per in by_threads.items():
        for n, ms in per.items():
            parts = [f"{net} {n} thr: sml overhead {ms['snnc sml+tet'] / ms['snnc tet'] - 1:+.1%}"]
            if "spikingjelly tet" in ms:
                parts.append(f"snnc tet / spikingjelly {ms['snnc tet'] / ms['spikingjelly tet']:.3f} (target <= 0.95)")
            if "authors" in ms:
                parts.append(f"snnc tet / authors {ms['snnc tet'] / ms['authors']:.3f} (target <= 0.85)")
            if "authors + SM" in ms:
                parts.append(f"authors' SM overhead {ms['authors + SM'] / ms['authors'] - 1:+.1%}")
            print("; ".join(parts))
        if 1 in per and 2 in per:
            print(f"{net}: snnc tet at 2 threads / 1 thread {per[2]['snnc tet'] / per[1]['snnc tet']:.3f} "
                  f"(target <= 1.5 under load)")


if __name__ == "__main__":
    main()
