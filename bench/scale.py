"""Throughput of the generated training on this CPU, and how its cost grows with batch, T, depth and processes.

    python bench/scale.py                 # all tables (several minutes on a 2-core CPU)
    python bench/scale.py --steps 2       # fewer timed steps per measurement
    python bench/scale.py --only batch,T  # some of: batch, T, depth, procs

batch, T, depth: one training step of the generated model.py and train.py's
compute_loss (forward, loss, backward, AdamW step) on random data of the
network's input shape, timed step by step after one warm-up step; the table
gives the median. resnet18 at T=4 for batch 8-64, resnet18 at batch 8 for
T=1-8, toy (models/toy.snn) at T=4 and batch 8 for L = 5, 13, 21.

procs: the generated train.py itself, as one process and under torchrun with
2 processes (DDP, gloo), each process with batch 8 and one thread; the rate
is train.py's own samples_per_s (all ranks' samples over rank 0's training
time), the median over the epochs after the first.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snnc.compiler import compile_to  # noqa: E402


def build(tmp: Path, model: str, overrides: dict, recipe: str = "sdt"):
    out = tmp / f"{model}-{'-'.join(f'{k}{v}' for k, v in overrides.items()) or 'default'}"
    if not out.exists():
        compile_to(ROOT / "models" / f"{model}.snn", recipe, out, overrides)
    spec = importlib.util.spec_from_file_location(f"train_{out.name.replace('-', '_')}", out / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return out, module


def step_times(mod, batch: int, steps: int) -> list[float]:
    """Seconds of each of `steps` training steps after one warm-up step."""
    torch.manual_seed(0)
    net = mod.model.build_model().train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, *mod.model.INPUT_DIMS)
    y = torch.randint(0, mod.model.CLASSES, (batch,))
    times = []
    for _ in range(1 + steps):
        start = time.perf_counter()
        outputs, aux = net(x)
        loss = mod.compute_loss(outputs, aux, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_py_rate(build_dir: Path, nproc: int, threads: int, batch: int, steps: int, epochs: int) -> float:
    """Median samples/s over epochs 2.. of train.py with `nproc` processes (torchrun when > 1)."""
    run = Path(tempfile.mkdtemp(prefix="snnc-scale-"))
    n = nproc * batch * steps
    args = [str(build_dir / "train.py"), "--data", f"synthetic:{n}", "--batch-size", str(batch), "--epochs",
            str(epochs), "--quiet", "--out", str(run / "run")]
    cmd = [sys.executable] + (["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                               f"--master_port={_free_port()}"] if nproc > 1 else []) + args
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rates = [json.loads(line)["samples_per_s"] for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:])


def table(title: str, rows: list[tuple], headers: tuple) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).rjust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def sweep(tmp, model, points, make_overrides, batch_of, steps, label):
    rows, base = [], None
    for p in points:
        _, mod = build(tmp, model, make_overrides(p))
        b = batch_of(p)
        med = statistics.median(step_times(mod, b, steps))
        base = base or (med, b / med)
        rows.append((f"{label}={p}", b, f"{med:.3f}", f"{b / med:.1f}", f"{med / base[0]:.2f}",
                     f"{(b / med) / base[1]:.2f}"))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the in-process tables")
    p.add_argument("--only", default="batch,T,depth,procs")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    heads = ("config", "batch", "s/step (median)", "samples/s", "time ratio", "throughput ratio")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s), {args.steps} timed steps "
          f"after 1 warm-up; ratios against the first row")
    with tempfile.TemporaryDirectory(prefix="snnc-scale-") as work:
        tmp = Path(work)
        if "batch" in only:
            table("resnet18, T=4, by batch", sweep(tmp, "resnet18", (8, 16, 32, 64), lambda b: {"T": "4"},
                                                   lambda b: b, args.steps, "batch"), heads)
        if "T" in only:
            table("resnet18, batch 8, by T", sweep(tmp, "resnet18", (1, 2, 4, 8), lambda t: {"T": str(t)},
                                                   lambda t: 8, args.steps, "T"), heads)
        if "depth" in only:
            table("toy, T=4, batch 8, by depth L", sweep(tmp, "toy", (5, 13, 21), lambda L: {"T": "4", "L": str(L)},
                                                         lambda L: 8, args.steps, "L"), heads)
        if "procs" in only:
            out, _ = build(tmp, "resnet18", {"T": "4"})
            rows, base = [], None
            for nproc, threads in ((1, 1), (1, 2), (2, 1)):
                rate = train_py_rate(out, nproc, threads, 8, args.steps, 3)
                base = base or rate
                rows.append((f"{nproc} process(es) x {threads} thread(s)", 8 * nproc, f"{rate:.1f}",
                             f"{rate / base:.2f}"))
            table("resnet18 train.py, T=4, batch 8 per process", rows,
                  ("config", "global batch", "samples/s (median)", "throughput ratio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
