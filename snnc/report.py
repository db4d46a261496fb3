"""`snnc report RUN_DIR`: plots and a Markdown summary of a training run.

Reads RUN_DIR/metrics.jsonl (one record per epoch), RUN_DIR/model.ir (the
training IR the trainer copies there) and RUN_DIR/manifest.json, and writes
into RUN_DIR/report/ (or another folder):

- loss.png, accuracy.png, firing_rates.png, and when the recipe has them
  cpng.png (per-layer chi and beta over epochs and the final beta, as in the
  CPNG paper's Fig. 3 and 4) and two.png (TWO's output weights over epochs);
- energy.png and an energy estimate from synaptic operations (TET paper,
  "Network Efficiency"; 45 nm figures of Rathi & Roy 2020): the first layer
  reads the real-valued input, so it costs MACs x T multiply-accumulates;
  every later conv/fc costs (firing rate of its input) x MACs x T accumulates
  (pooling, flatten and identity pass their input's rate on; an add of spike
  tensors adds the rates; anything else counts as real-valued);
- summary.md, and data.json with every number behind the plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from math import prod
from pathlib import Path
from statistics import median

from snnc.diagnostics import SnncError
from snnc.runfolder import finite_number, read_ir, read_manifest

PJ_PER_AC = 0.9    # one accumulate (a synaptic operation on a spike)
PJ_PER_MAC = 4.6   # one multiply-accumulate
# Ops through which a spike tensor stays a spike tensor (or its average): the input rate carries over.
# A slice keeps part of it; its own rate is not recorded, so the whole tensor's stands for it.
_SAME_RATE = ("identity", "flatten", "tokens", "dropout", "avgpool", "adaptive_avgpool", "maxpool", "slice")


@dataclass
class LayerEnergy:
    layer: str            # IR node name
    op: str
    macs: int             # per sample and time step
    source: str | None    # the LIF layer whose spikes it reads (None: real-valued input)
    rate: float | None
    ops: float            # operations per sample over all T steps
    pj: float


def read_metrics(run: Path) -> list[dict]:
    """The per-epoch records; lines torn by a crash are skipped."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SnncError(f"{run} has no metrics.jsonl", hint="train first: python BUILD_DIR/train.py --out RUN_DIR")
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if _well_formed(record):
            records.append(record)
    if not records:
        raise SnncError(f"{path} holds no complete epoch yet")
    return records


_MAX_NAMES = 4096  # layers (or time steps) a record may name: far more than any network has


def _well_formed(r) -> bool:
    """A metrics line as train.py writes it, in the fields the report reads; others are skipped like torn ones."""
    if not isinstance(r, dict) or not isinstance(r.get("epoch"), int) or isinstance(r["epoch"], bool):
        return False
    numbers = ("train_loss", "test_loss", "train_acc", "test_acc", "samples_per_s", "lr")
    if not all(r.get(k) is None or finite_number(r[k]) for k in numbers):
        return False
    if not all(r.get(k) is None or (isinstance(r[k], int) and not isinstance(r[k], bool)) for k in ("T", "stage")):
        return False
    rates, cpng, two = r.get("firing_rates", {}), r.get("cpng", {}), r.get("two_weights", [])
    return (isinstance(rates, dict) and len(rates) <= _MAX_NAMES and all(finite_number(v) for v in rates.values())
            and isinstance(cpng, dict) and len(cpng) <= _MAX_NAMES
            and all(isinstance(v, dict) and finite_number(v.get("beta")) and finite_number(v.get("chi")) for v in cpng.values())
            and isinstance(two, list) and len(two) <= _MAX_NAMES and all(finite_number(v) for v in two))


def _input_rate(graph, name: str, rates: dict[str, float]) -> tuple[str | None, float | None]:
    """(LIF node, its rate) whose spikes reach node `name`'s input, or (None, None) for real values."""
    from snnc.names import python_name

    node = graph.by_name[name]
    while node.op in _SAME_RATE:
        node = graph.by_name[node.inputs[0]]
    if node.op == "add" and all(graph.by_name[i].op in ("lif",) + _SAME_RATE for i in node.inputs):
        parts = [_input_rate(graph, i, rates) for i in node.inputs]  # e.g. SEW ADD: rates add up
        if all(r is not None for _, r in parts):
            return "+".join(s for s, _ in parts), sum(r for _, r in parts)
    if node.op == "cat":  # spikes side by side: the rate of the whole, weighted by each part's size
        parts = [_input_rate(graph, i, rates) for i in node.inputs]
        if all(r is not None for _, r in parts):
            sizes = [prod(graph.by_name[i].features) for i in node.inputs]
            return ",".join(s for s, _ in parts), sum(r * n for (_, r), n in zip(parts, sizes)) / sum(sizes)
    if node.op == "lif" and python_name(node.name) in rates:
        return node.name, float(rates[python_name(node.name)])
    return None, None


def energy(graph, rates: dict[str, float], T: int) -> list[LayerEnergy]:
    """Per conv/fc layer of the deployed network: operations and picojoules per sample over T steps."""
    from snnc.ir.analysis import costs

    out = []
    for row in costs(graph, role="main").per_layer:
        if not row["macs"]:
            continue
        node = graph.by_name[row["name"]]
        source, rate = _input_rate(graph, node.inputs[0], rates)
        if rate is None:
            ops, pj = row["macs"] * T, row["macs"] * T * PJ_PER_MAC
        else:
            ops = rate * row["macs"] * T
            pj = ops * PJ_PER_AC
        out.append(LayerEnergy(row["name"], row["op"], row["macs"], source, rate, ops, pj))
    return out


def _series(records: list[dict], key: str) -> dict[str, list[float | None]]:
    """{layer: [value per epoch]} from records whose `key` is {layer: value or {...}}."""
    names = list(dict.fromkeys(n for r in records for n in (r.get(key) or {})))
    return {n: [(r.get(key) or {}).get(n) for r in records] for n in names}


def collect(run: Path) -> dict:
    """Every number the report shows."""
    records = read_metrics(run)
    epochs = [r["epoch"] for r in records]
    data = {"epochs": epochs,
            "loss": {k: [r.get(k) for r in records] for k in ("train_loss", "test_loss")},
            "accuracy": {k: [r.get(k) for r in records] for k in ("train_acc", "test_acc")},
            "samples_per_s": [r.get("samples_per_s") for r in records],
            "firing_rates": _series(records, "firing_rates"),
            "stages": _stage_starts(records)}
    cpng = _series(records, "cpng")
    if cpng:
        data["cpng"] = {part: {n: [v[part] if v else None for v in vals] for n, vals in cpng.items()}
                        for part in ("beta", "chi")}
    if any("two_weights" in r for r in records):
        data["two_weights"] = [r.get("two_weights") for r in records]
    data["manifest"] = read_manifest(run / "manifest.json") if (run / "manifest.json").is_file() else {}
    ir = run / "model.ir"
    if ir.is_file():
        graph = read_ir(ir)
        last = records[-1]
        T = int(last.get("T") or graph.params["T"])
        layers = energy(graph, last.get("firing_rates") or {}, T)
        data["energy"] = {"T": T, "layers": [asdict(x) for x in layers], "total_pj": sum(x.pj for x in layers),
                          "ann_pj": sum(x.macs for x in layers) * PJ_PER_MAC}
        if "cpng" in data:
            data["cpng"]["initial_beta"] = _initial_betas(graph)
            data["cpng"]["chi_limit"] = graph.attrs.get("cpng_chi_limit")
    return data


def _stage_starts(records: list[dict]) -> list[dict]:
    """[{"epoch": first epoch of a TIT stage, "T": its T}] after the first stage."""
    starts = []
    for prev, r in zip(records, records[1:]):
        if r.get("stage") != prev.get("stage"):
            starts.append({"epoch": r["epoch"], "T": r.get("T")})
    return starts


def _initial_betas(graph) -> dict[str, float]:
    """{layer: the surrogate beta the run started from} for CPNG's adaptive layers."""
    from snnc.names import python_name

    out = {}
    for node in graph.nodes:
        if node.op == "lif" and node.attrs.get("adaptive_beta"):
            params = dict(node.attrs["surrogate"].params)
            if "beta" in params:
                out[python_name(node.name)] = float(params["beta"])
    return out


def _figure(title: str, ylabel: str, panels: int = 1):
    from matplotlib.figure import Figure  # the Agg canvas, no display and no pyplot state

    fig = Figure(figsize=(6.4 * panels, 4.2), layout="constrained")
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    axes[0].set_title(title)
    axes[0].set_ylabel(ylabel)
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def _lines(ax, epochs, series: dict, stages: list[dict] = (), xlabel: str = "epoch") -> None:
    """One line per series over epochs, with TIT's stage switches marked."""
    from matplotlib.ticker import MaxNLocator

    for name, values in series.items():
        ax.plot(epochs, [math.nan if v is None else v for v in values], marker=".", label=name)
    for stage in stages:
        ax.axvline(stage["epoch"] - 0.5, color="gray", linestyle=":", linewidth=1)
        ax.annotate(f"T={stage['T']}", (stage["epoch"] - 0.5, 1), xycoords=("data", "axes fraction"),
                    xytext=(2, -10), textcoords="offset points", fontsize="small", color="gray")
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(series) <= 24:
        ax.legend(fontsize="small")


def plots(data: dict, folder: Path) -> list[Path]:
    epochs, written = data["epochs"], []

    def save(fig, name):
        fig.savefig(folder / name, dpi=110)
        written.append(folder / name)

    stages = data.get("stages", [])
    # The training loss is the recipe's objective (TET, SML, ... terms), not comparable with the
    # test cross-entropy of the time-averaged output: each gets its own panel.
    fig, (train, test) = _figure("Training loss (the recipe's objective)", "training loss", 2)
    _lines(train, epochs, {"train_loss": data["loss"]["train_loss"]}, stages)
    _lines(test, epochs, {"test_loss": data["loss"]["test_loss"]}, stages)
    test.set_title("Test cross-entropy of the time-averaged output")
    test.set_ylabel("cross-entropy")
    save(fig, "loss.png")
    fig, (ax,) = _figure("Accuracy", "accuracy")
    _lines(ax, epochs, data["accuracy"], stages)
    save(fig, "accuracy.png")
    fig, (ax,) = _figure("Firing rate per LIF layer (last batch of each epoch)", "spikes per neuron and step")
    _lines(ax, epochs, data["firing_rates"], stages)
    save(fig, "firing_rates.png")
    if "cpng" in data:
        cpng = data["cpng"]
        fig, (chi, beta, final) = _figure("CPNG: chi per layer", "proportion of non-zero gradients", 3)
        _lines(chi, epochs, cpng["chi"], stages)
        if cpng.get("chi_limit") is not None:
            chi.axhline(cpng["chi_limit"], color="gray", linestyle="--", label="chi_limit")
            chi.legend(fontsize="small")
        _lines(beta, epochs, cpng["beta"], stages)
        beta.set_title("beta per layer")
        beta.set_ylabel("surrogate beta")
        names = list(cpng["beta"])
        initial = cpng.get("initial_beta") or {}
        final.bar(range(len(names)), [cpng["beta"][n][-1] or math.nan for n in names], label="final")
        final.scatter(range(len(names)), [initial.get(n, math.nan) for n in names], color="black", marker="_",
                      s=200, label="initial", zorder=3)
        final.set_title("final and initial beta per layer")
        final.set_xlabel("layer (in network order)")
        final.set_ylabel("surrogate beta")
        final.legend(fontsize="small")
        save(fig, "cpng.png")
    if "two_weights" in data:
        width = max(len(f or []) for f in data["two_weights"])
        series = {f"f[{t}]": [f[t] if f and t < len(f) else None for f in data["two_weights"]] for t in range(width)}
        fig, (ax,) = _figure("TWO: output weight of each time step", "f[t]")
        _lines(ax, epochs, series, stages)
        save(fig, "two.png")
    if "energy" in data:
        layers = data["energy"]["layers"]
        fig, (ax,) = _figure(f"Energy per sample over T={data['energy']['T']} steps", "pJ")
        ax.bar(range(len(layers)), [x["pj"] for x in layers])
        ax.set_xticks(range(len(layers)), [x["layer"] for x in layers], rotation=60, ha="right", fontsize="small")
        ax.set_xlabel("layer")
        save(fig, "energy.png")
    return written


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def summary(data: dict, images: list[Path]) -> str:
    m, loss, acc = data["manifest"], data["loss"], data["accuracy"]
    test = [a for a in acc["test_acc"] if a is not None]
    rates = [r for r in data["samples_per_s"] if r]
    lines = [f"# Run report: {m.get('network', '?')} with {m.get('recipe_slug', '?')}", "",
             f"- recipe: `{m.get('recipe', '?')}`", f"- epochs: {len(data['epochs'])}",
             f"- final test accuracy: {_pct(acc['test_acc'][-1])} (best {_pct(max(test) if test else None)})"]
    if loss["train_loss"][-1] is not None:
        lines.append(f"- final train loss: {loss['train_loss'][-1]:.4f}")
    if rates:
        lines.append(f"- throughput: {median(rates):.0f} samples/s (median over epochs)")
    lines += ["", "| layer | firing rate (last epoch) |", "|---|---|"]
    lines += [f"| {n} | {v[-1]:.4f} |" for n, v in data["firing_rates"].items() if v[-1] is not None]
    if "cpng" in data:
        lines += ["", "| layer | final beta | final chi |", "|---|---|---|"]
        lines += [f"| {n} | {b[-1]:.4f} | {data['cpng']['chi'][n][-1]:.4f} |"
                  for n, b in data["cpng"]["beta"].items() if b[-1] is not None]
    if "two_weights" in data and data["two_weights"][-1]:
        lines += ["", "TWO output weights f[t]: " + ", ".join(f"{f:.4f}" for f in data["two_weights"][-1])]
    if "energy" in data:
        e = data["energy"]
        lines += ["", f"## Energy estimate (per sample, T={e['T']}; {PJ_PER_AC} pJ per accumulate, "
                      f"{PJ_PER_MAC} pJ per MAC, 45 nm)", "",
                  "| layer | MACs per step | input | input rate | operations | energy (pJ) |",
                  "|---|---|---|---|---|---|"]
        for x in e["layers"]:
            rate = "real-valued (MACs)" if x["rate"] is None else f"{x['rate']:.4f}"
            lines.append(f"| {x['layer']} | {x['macs']:,} | {x['source'] or 'input'} | {rate} | {x['ops']:,.0f} | "
                         f"{x['pj']:,.0f} |")
        lines += ["", f"Total: {e['total_pj'] / 1e6:.4f} uJ per sample; an ANN with the same MACs: "
                      f"{e['ann_pj'] / 1e6:.4f} uJ ({e['total_pj'] / e['ann_pj']:.3f}x)."]
    else:
        lines += ["", "No model.ir in the run folder, so no energy estimate (runs of older snnc versions)."]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def write_report(run: str | Path, out: str | Path | None = None, force: bool = False) -> tuple[Path, dict]:
    """Writes the report of `run` into `out` (default RUN_DIR/report); returns (folder, data)."""
    from snnc.outputs import check_destination, folder_kind, staged_folder

    run = Path(run)
    if not run.is_dir():
        raise SnncError(f"no run folder at {run}", hint="pass the --out folder of a training run")
    if folder_kind(run) != "run":
        raise SnncError(f"{run} is not a training run folder (no manifest.json of a run with its metrics.jsonl "
                        f"or checkpoint.pt)", hint="pass the --out folder of a training run")
    folder = check_destination(Path(out) if out else run / "report", "report", force=force, inside=(run,))
    data = {"kind": "report", **collect(run)}
    with staged_folder(folder) as tmp:
        images = plots(data, tmp)
        (tmp / "data.json").write_text(json.dumps(data, indent=1) + "\n")
        (tmp / "summary.md").write_text(summary(data, images))
    return folder, data
