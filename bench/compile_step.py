"""One training step of a generated model, eager against torch.compile (the LIF layers as custom ops).

    python bench/compile_step.py                              # digits and resnet18, batch 8, T = 4, 1 thread
    python bench/compile_step.py --models digits --steps 21

A step is forward, the SDT loss, backward and an AdamW update, on random inputs of the
network's shape. The two models start from the same weights; their steps alternate
within each repeat (so load from other processes hits both alike) after warm-up steps,
and the table gives medians and the ratio eager / compiled (> 1: compile is faster).
The first compiled step, which compiles, is reported apart, with the difference of the
first step's losses (same weights, same input) and the largest over all steps (the weights
drift apart once Inductor's own float rounding flips a spike). Both run the same kernels
for the LIF layers (snnc.ops.library); compile can fuse only what lies around them.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import torch

import snnc

ROOT = Path(__file__).resolve().parent.parent


def load_model(name: str, out: Path):
    snnc.compile(str(ROOT / "models" / f"{name}.snn"), recipe="sdt", out=str(out))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", out / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_step(net, params):
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        out, _ = net(x)
        loss = torch.nn.functional.cross_entropy(out.mean(0), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def measure(name: str, batch: int, T: int, steps: int, warmup: int, workdir: Path) -> dict:
    module = load_model(name, workdir / name)
    torch.manual_seed(0)
    eager_net = module.build_model()
    eager_net.T = T
    compiled_model = copy.deepcopy(eager_net)
    compiled_net = torch.compile(compiled_model)
    eager = make_step(eager_net, eager_net.parameters())
    compiled = make_step(compiled_net, compiled_model.parameters())
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, *module.INPUT_DIMS, generator=gen)
    y = torch.randint(0, module.CLASSES, (batch,), generator=gen)
    start = time.perf_counter()
    first_loss = compiled(x, y)
    first_s = time.perf_counter() - start
    losses = [(eager(x, y), first_loss)]
    for _ in range(warmup):
        losses.append((eager(x, y), compiled(x, y)))
    times = {"eager": [], "compiled": []}
    for _ in range(steps):
        for label, fn in (("eager", eager), ("compiled", compiled)):
            t0 = time.perf_counter()
            loss = fn(x, y)
            times[label].append(time.perf_counter() - t0)
            if label == "eager":
                pair = [loss]
            else:
                losses.append((pair[0], loss))
    eager_ms = statistics.median(times["eager"]) * 1e3
    compiled_ms = statistics.median(times["compiled"]) * 1e3
    return dict(name=name, batch=batch, T=T, eager_ms=eager_ms, compiled_ms=compiled_ms, first_s=first_s,
                first_diff=abs(losses[0][0] - losses[0][1]), loss_diff=max(abs(a - b) for a, b in losses))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["digits", "resnet18"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--steps", type=int, default=7, help="timed steps of each (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="steps after the compiling one (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; training step = forward, SDT loss, "
          f"backward, AdamW; median of {args.steps}")
    print(f"{'model':<10} {'batch':>5} {'T':>3} {'eager ms':>10} {'compiled ms':>12} {'eager/compiled':>15} "
          f"{'first compiled step s':>22} {'step-1 |loss diff|':>19} {'max |loss diff|':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = measure(name, args.batch, args.T, args.steps, args.warmup, Path(tmp))
            print(f"{r['name']:<10} {r['batch']:>5} {r['T']:>3} {r['eager_ms']:>10.1f} {r['compiled_ms']:>12.1f} "
                  f"{r['eager_ms'] / r['compiled_ms']:>15.2f} {r['first_s']:>22.1f} {r['first_diff']:>19.2e} "
                  f"{r['loss_diff']:>16.2e}", flush=True)


if __name__ == "__main__":
    main()
