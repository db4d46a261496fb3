"""plan-memory: what each node keeps for backward under store, pack and recompute."""

from __future__ import annotations

import pytest
from passkit import ROOT, golden_after

from snnc.diagnostics import SnncError
from snnc.ir import memory as mem
from snnc.ir.printer import print_graph
from snnc.ir.textparse import parse
from snnc.ir.verify import IRError, verify
from snnc.passes.plan_memory import NODE_ATTRS, parse_policy, plan_memory
from snnc.passes.strip_aux import strip_aux
from snnc.pipeline import compile_source


def training(model: str = "digits", recipe: str = "sml+tet", **sets):
    """The training graph after the recipe's passes, without a plan."""
    return compile_source(ROOT / "models" / f"{model}.snn", {k: str(v) for k, v in sets.items()}, recipe=recipe).graph


def unplanned(graph):
    return graph.replace(nodes=[n.with_attrs(**{k: None for k in NODE_ATTRS}) for n in graph.nodes],
                         attrs=graph.attrs.set(memory=None, memory_max_macs=None))


def test_store_changes_nothing_but_annotations():
    g = training()
    planned = plan_memory(g, "store")
    assert unplanned(planned) == g
    fused = mem.fused_bns(g)
    for node in planned.nodes:
        if node.op in mem.LOSS_OPS:
            assert "saves" not in node.attrs
        else:
            assert node.attrs["saves"] == mem.store_saves(g, node, fused)
            assert node.attrs.get("saved_as", "full") == "full" and "recompute_in" not in node.attrs
    assert plan_memory(planned, "store") == planned  # a plan replaces an earlier one


def test_pack_keeps_spikes_as_bits_and_drops_h_behind_a_residual_add():
    g = plan_memory(training(), "pack")
    by = g.by_name
    assert by["layer1.0.main.conv0"].attrs["saved_as"] == "bits"     # reads the stem's spikes
    assert by["stem.conv"].attrs["saved_as"] == "full"               # reads the image
    assert by["stem.lif"].attrs["saves"] == "bn_input"               # the fused BN needs its input anyway
    out = by["layer1.0.out.lif"]
    assert out.attrs["saves"] == "segment" and "recompute_macs" not in out.attrs
    assert mem.segment_members(g, out.name) == ["layer1.0.main.bn1", "layer1.0.out.add", "layer1.0.out.lif"]
    assert mem.all_segment_leaves(g)[out.name] == ["layer1.0.main.conv1", "layer1.0.skip.identity"]
    assert out.attrs["saved_as"] == "mixed"                          # the conv output, and spikes as bits
    assert not any(n.op == "conv" and n.attrs["saves"] == "recomputed" for n in g.nodes)
    assert all(n.attrs.get("saves") != "recomputed" for n in g.nodes if n.role == "aux")


def test_recompute_runs_cheap_convs_again_within_max_macs():
    g = plan_memory(training(), "recompute", max_macs=144)  # 16 channels x 3 x 3: digits' first stage
    by = g.by_name
    assert by["stem.conv"].attrs["recompute_in"] == "stem.lif"
    assert by["layer1.0.main.conv1"].attrs["recompute_in"] == "layer1.0.out.lif"
    assert by["layer2.0.main.conv1"].attrs["saves"] == "input"       # 32 x 3 x 3 = 288 MACs a value: kept
    assert by["layer2.0.skip.conv"].attrs["recompute_in"] == "layer2.0.out.lif"  # 1x1: 16 MACs a value
    assert by["layer1.0.out.lif"].attrs["recompute_macs"] == 16 * 16 * 9 * 8 * 8
    none = plan_memory(training(), "recompute", max_macs=0)
    assert not any(n.op == "conv" and n.attrs["saves"] == "recomputed" for n in none.nodes)
    assert unplanned(none) == unplanned(plan_memory(training(), "pack"))
    sizes = [mem.predict(plan_memory(training(), p, **kw)).per_sample
             for p, kw in (("store", {}), ("pack", {}), ("recompute", {"max_macs": 144}), ("recompute", {}))]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[1] > sizes[2] > sizes[3]


def test_a_segment_is_kept_only_where_it_saves_bytes():
    src = """network n(T = 2) {
  input image[1, 4, 4]
  a = conv(4) -> bn -> lif -> flatten -> fc(8) -> lif -> fc(3)
}"""
    g = plan_memory(compile_source(src, file="n.snn", recipe="sdt").graph, "pack")
    lifs = [n for n in g.nodes if n.op == "lif"]
    # recomputing the second LIF from the fc's output would keep as many bytes as its h
    assert [n.attrs["saves"] for n in lifs] == ["bn_input", "h"]
    assert g.node("a.fc0").attrs["saved_as"] == "bits"  # flatten is a view of the spikes


@pytest.mark.parametrize("policy", ["store", "pack", "recompute"])
def test_golden_plan_and_round_trip(policy, update_goldens, monkeypatch):
    monkeypatch.chdir(ROOT)  # locations in the golden are relative to the repository
    g = compile_source("models/digits.snn", recipe="sml+tet", memory=policy).graph
    golden_after("plan-memory", g, update_goldens, f"digits-sml-tet-{policy}")
    assert parse(print_graph(g)) == g


def test_pipeline_runs_it_last_and_only_when_asked():
    path = ROOT / "models" / "digits.snn"
    names = [name for name, _ in compile_source(path, recipe="tet", memory="pack").stages]
    assert names[-2:] == ["fuse-lif", "plan-memory"]
    assert "plan-memory" not in [name for name, _ in compile_source(path, recipe="tet").stages]
    a, b = (compile_source(path, recipe="tet", memory="recompute(max_macs=9)").graph for _ in range(2))
    assert a.attrs["memory_max_macs"] == 9 and a == b


def test_snnc_ir_shows_the_plan():
    from clirun import snnc

    r = snnc("ir", "models/digits.snn", "--recipe", "tet", "--memory", "recompute(max_macs=0)", "--after",
             "plan-memory")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# snnc-ir v1 after plan-memory") and "memory=recompute, memory_max_macs=0" in r.stdout
    assert "saves=segment" in r.stdout and "saved_as=bits" in r.stdout
    r = snnc("ir", "models/digits.snn", "--recipe", "tet", "--after", "plan-memory")
    assert r.returncode == 1 and "no such step" in r.stderr


def test_policy_spellings():
    assert parse_policy("pack") == ("pack", {"policy": "pack"})
    assert parse_policy("recompute( max_macs = 2304 )") == ("recompute", {"policy": "recompute", "max_macs": 2304})
    for bad in ("bits", "pack(max_macs=1)", "recompute(max_macs=-1)", "recompute(macs=3)", "recompute(max_macs=1"):
        with pytest.raises(SnncError):
            parse_policy(bad)
    with pytest.raises(SnncError, match="unknown memory policy"):
        compile_source(ROOT / "models" / "digits.snn", recipe="tet", memory="squeeze")


def test_verify_checks_the_annotations_and_strip_aux_removes_them():
    g = plan_memory(training(), "recompute")
    bad = g.replace(nodes=[n.with_attrs(saves="everything") if n.name == "stem.conv" else n for n in g.nodes])
    with pytest.raises(IRError, match="saves"):
        verify(bad)
    assert strip_aux(g) == strip_aux(training())
