"""Extra time and memory of SML (2 modules, k = 256) over plain training of ResNet-18.

    python bench/sml_overhead.py [--batch-size 8] [--steps 5] [--T 1 2 4]

For each T it compiles models/resnet18.snn with `sdt` and with `sml(n=2, k=256)`,
and times full training steps (forward, loss, backward, SGD step) on random
CIFAR-sized data, alternating the two models step by step so that both see the
same machine load. Memory is counted exactly rather than sampled: parameters,
gradients, optimizer state and every tensor autograd saves for backward
(deduplicated by storage), which is what dominates a GPU's peak during training.
The table prints medians and the overhead next to the SML paper's Table 4.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PAPER = {1: (53.84, 11.34), 2: (27.42, 8.22), 4: (11.88, 6.13)}  # T: (+time %, +memory %), SML Table 4


def load_train_module(build: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{build.name}", build / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_pair(tmp: Path, T: int):
    from snnc.compiler import compile_to

    out = {}
    for name, recipe in (("plain", "sdt"), ("sml", "sml(n=2, k=256)")):
        build = tmp / f"{name}-T{T}"
        compile_to(ROOT / "models" / "resnet18.snn", recipe, build, {"T": str(T)})
        out[name] = load_train_module(build)
    return out


class SavedBytes:
    """Bytes of distinct storages autograd saves for backward during one forward."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, t: torch.Tensor):
        s = t.untyped_storage()
        self.storages[s.data_ptr()] = s.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def training_memory(module, batch: int) -> int:
    torch.manual_seed(0)
    net = module.model.build_model().train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    saved = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        outputs, aux = net(x)
        loss = module.compute_loss(outputs, aux, y)
    loss.backward()
    opt.step()
    params = list(net.parameters())
    state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    return saved.total + tensor_bytes(params) * 2 + tensor_bytes(state)


def step_times(modules: dict, batch: int, steps: int, warmup: int = 1) -> dict[str, list[float]]:
    nets = {}
    for name, module in modules.items():
        torch.manual_seed(0)
        net = module.model.build_model().train()
        nets[name] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), module.compute_loss)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    times = {name: [] for name in modules}
    for i in range(warmup + steps):
        for name, (net, opt, loss_fn) in nets.items():  # interleaved: both see the same load
            start = time.perf_counter()
            outputs, aux = net(x)
            loss = loss_fn(outputs, aux, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--memory-batch-size", type=int, default=64,
                   help="batch for the (exact, one-step) memory count; activations dominate at real batch sizes")
    p.add_argument("--T", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args(argv)
    print(f"ResNet-18, CIFAR input, time: batch {args.batch_size}, median of {args.steps} steps, "
          f"{torch.get_num_threads()} threads; memory: batch {args.memory_batch_size}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for T in args.T:
            modules = compile_pair(Path(tmp), T)
            times = step_times(modules, args.batch_size, args.steps)
            t_plain, t_sml = statistics.median(times["plain"]), statistics.median(times["sml"])
            m_plain, m_sml = (training_memory(modules[n], args.memory_batch_size) for n in ("plain", "sml"))
            rows.append((T, t_plain, t_sml, m_plain, m_sml))
            print(f"  T={T} done", file=sys.stderr)
    print(f"{'T':>2}  {'plain s/step':>12}  {'SML s/step':>10}  {'+time':>7}  {'paper':>7}  "
          f"{'plain MB':>9}  {'SML MB':>8}  {'+memory':>8}  {'paper':>7}")
    for T, tp, ts, mp, ms in rows:
        paper_t, paper_m = PAPER.get(T, (float("nan"), float("nan")))
        print(f"{T:>2}  {tp:>12.3f}  {ts:>10.3f}  {100 * (ts / tp - 1):>+6.1f}%  {paper_t:>+6.2f}%  "
              f"{mp / 2**20:>9.1f}  {ms / 2**20:>8.1f}  {100 * (ms / mp - 1):>+7.2f}%  {paper_m:>+6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
