"""`snnc report`: the plots and summary of a run, and the numbers behind them against metrics.jsonl."""

import json

import pytest
import torch

from snnc.cli.main import main as snnc_main
from trainkit import build, read_metrics

WIDTH, T = 4, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch digits run in which beta and the TWO weights move."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("report")
    _, mod = build(tmp, "digits", "sml(n=1)+cpng(chi_limit=0.5)+two(warmup=0)+tet",
                   {"width": str(WIDTH), "T": str(T)})
    folder = tmp / "run"
    assert mod.main(["--data", "synthetic:64", "--batch-size", "16", "--epochs", "2", "--lr", "0.05", "--quiet",
                     "--out", str(folder)]) == 0
    torch.set_num_threads(before)
    return folder


def _expected_energy(record: dict) -> dict[str, float]:
    """pJ per sample of each layer of models/digits.snn, worked out by hand from its source."""
    w, rates = WIDTH, record["firing_rates"]
    layers = {  # name: (MACs per step, the LIF layer feeding it or None for the image)
        "stem.conv": (w * 1 * 9 * 8 * 8, None),
        "layer1.0.main.conv0": (w * w * 9 * 8 * 8, "stem_lif"),
        "layer1.0.main.conv1": (w * w * 9 * 8 * 8, "layer1_0_main_lif"),
        "layer2.0.main.conv0": (2 * w * w * 9 * 4 * 4, "layer1_0_out_lif"),
        "layer2.0.main.conv1": (2 * w * 2 * w * 9 * 4 * 4, "layer2_0_main_lif"),
        "layer2.0.skip.conv": (2 * w * w * 1 * 4 * 4, "layer1_0_out_lif"),
        "head.fc": (10 * 2 * w, "layer2_0_out_lif"),
    }
    return {name: macs * T * 4.6 if src is None else rates[src] * macs * T * 0.9
            for name, (macs, src) in layers.items()}


def test_report_files_and_numbers_match_the_metrics(run, capsys):
    assert (run / "model.ir").is_file() and (run / "manifest.json").is_file()  # copied by the trainer
    assert snnc_main(["report", str(run)]) == 0
    out = run / "report"
    for name in ("loss", "accuracy", "firing_rates", "cpng", "two", "energy"):
        blob = (out / f"{name}.png").read_bytes()
        assert blob.startswith(b"\x89PNG\r\n\x1a\n") and len(blob) > 5000, name
    records = read_metrics(run)
    data = json.loads((out / "data.json").read_text())
    assert data["epochs"] == [1, 2]
    for key in ("train_loss", "test_loss"):
        assert data["loss"][key] == [r[key] for r in records]
    for key in ("train_acc", "test_acc"):
        assert data["accuracy"][key] == [r[key] for r in records]
    assert data["firing_rates"] == {n: [r["firing_rates"][n] for r in records] for n in records[0]["firing_rates"]}
    for part in ("beta", "chi"):
        assert data["cpng"][part] == {n: [r["cpng"][n][part] for r in records] for n in records[0]["cpng"]}
    assert data["two_weights"] == [r["two_weights"] for r in records]
    assert any(b[-1] != 1.0 for b in data["cpng"]["beta"].values()) and records[-1]["two_weights"] != [1.0] * T
    # the beta panel starts from each layer's own surrogate (triangle's default, 1.0) and draws chi_limit
    assert data["cpng"]["initial_beta"] == {n: 1.0 for n in records[0]["cpng"]}
    assert data["cpng"]["chi_limit"] == 0.5 and data["stages"] == []

    expected = _expected_energy(records[-1])
    got = {x["layer"]: x["pj"] for x in data["energy"]["layers"]}
    assert got.keys() == expected.keys()
    for name, pj in expected.items():
        assert got[name] == pytest.approx(pj, rel=1e-9), name
    assert data["energy"]["total_pj"] == pytest.approx(sum(expected.values()), rel=1e-9)

    md = (out / "summary.md").read_text()
    assert f"final test accuracy: {100 * records[-1]['test_acc']:.2f}%" in md
    assert f"Total: {sum(expected.values()) / 1e6:.4f} uJ per sample" in md
    for name in ("loss", "cpng", "two", "energy"):
        assert f"({name}.png)" in md
    assert "uJ per sample" in capsys.readouterr().out


def test_report_skips_torn_lines_and_explains_missing_runs(run, tmp_path, capsys):
    torn = tmp_path / "torn"
    torn.mkdir()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (torn / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:40])
    (torn / "manifest.json").write_bytes((run / "manifest.json").read_bytes())  # no model.ir: an older run
    assert snnc_main(["report", str(torn), "-o", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "data.json").read_text())
    assert data["epochs"] == [1] and "energy" not in data
    assert "no energy estimate" in (tmp_path / "out" / "summary.md").read_text()
    capsys.readouterr()
    assert snnc_main(["report", str(tmp_path / "nothing")]) == 1
    assert snnc_main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no run folder" in err and "is not a training run folder" in err and "Traceback" not in err


def test_report_skips_lines_of_the_wrong_form_as_it_skips_torn_ones(run, tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    good = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    bad = [{**good, "epoch": 2, "firing_rates": {"stem.lif": "high"}}, {**good, "epoch": 3, "firing_rates": [1]},
           {**good, "epoch": 4, "test_acc": "98%"}, {**good, "epoch": 5, "cpng": {"stem.lif": {"beta": None}}},
           {**good, "epoch": 6, "firing_rates": {f"l{i}": 0.1 for i in range(5000)}}, {**good, "epoch": 7,
                                                                                         "test_acc": 10**400}]
    lines = [json.dumps(good)] + [json.dumps(b) for b in bad] + ["[" * 100_000]
    (odd / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (odd / "manifest.json").write_bytes((run / "manifest.json").read_bytes())
    assert snnc_main(["report", str(odd), "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "data.json").read_text())["epochs"] == [1]


def test_report_marks_the_stages_of_a_tit_run(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    _, mod = build(tmp_path, "digits", "tit(stages=[(2,1),(4,2)])+tet", {"width": str(WIDTH)})
    folder = tmp_path / "run"
    assert mod.main(["--data", "synthetic:64", "--batch-size", "32", "--quiet", "--out", str(folder)]) == 0
    assert snnc_main(["report", str(folder)]) == 0
    data = json.loads((folder / "report" / "data.json").read_text())
    assert data["epochs"] == [1, 2, 3] and data["stages"] == [{"epoch": 2, "T": 4}]
    assert data["kind"] == "report"
    torch.set_num_threads(before)


CAT_NET = """
network catnet(T = 2, classes = 3) {
  input image[1, 8, 8]
  neuron lif(decay = 0.5, vth = 1.0, reset = hard)
  a = conv(4, 3) -> bn -> lif
  b = a -> conv(2, 3) -> bn -> lif
  both = cat(a, b) -> conv(3, 1)
  side = b -> slice(0, 1) -> conv(3, 1)
  head = add(both, side) -> adaptive_avgpool -> flatten -> fc(classes)
}
"""


def test_energy_reads_spike_rates_through_cat_and_slice():
    """A conv reading cat(a, b) of two spike tensors does one accumulate per spike: the rate of the
    concatenation is the size-weighted mean of a's and b's; a slice of b passes b's rate."""
    from snnc.names import python_name
    from snnc.pipeline import compile_source
    from snnc.report import PJ_PER_AC, energy

    graph = compile_source(CAT_NET, file="catnet.snn").graph
    lifs = [n for n in graph.nodes if n.op == "lif"]
    rates = {python_name(lifs[0].name): 0.2, python_name(lifs[1].name): 0.5}
    rows = {r.layer: r for r in energy(graph, rates, T=2)}
    cat_conv = next(r for r in rows.values() if r.layer.startswith("both"))
    assert cat_conv.rate == pytest.approx((0.2 * 4 * 64 + 0.5 * 2 * 64) / (6 * 64))
    assert cat_conv.pj == pytest.approx(cat_conv.rate * cat_conv.macs * 2 * PJ_PER_AC)
    side = next(r for r in rows.values() if r.layer.startswith("side"))
    assert side.rate == 0.5 and side.source == lifs[1].name
