"""Golden IR dumps of every zoo model, after the frontend and after expand-blocks."""

from pathlib import Path

import pytest

from goldens import check_golden
from snnc.ir.printer import print_graph
from snnc.ir.textparse import parse
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.snn"))


@pytest.fixture(scope="module")
def compiled():
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return {m.stem: compile_source(f"models/{m.name}") for m in MODELS}
    finally:
        os.chdir(cwd)


def test_zoo_is_complete():
    names = {m.stem for m in MODELS}
    assert {"resnet18", "resnet19", "resnet34", "sew_resnet34", "vggsnn", "cifarnet", "vgg16", "toy",
            "digits", "spikformer", "sdt", "sew_resnet", "plif_net", "densenet", "se_resnet"} <= names


@pytest.mark.parametrize("model", [m.stem for m in MODELS])
def test_golden_ir(model, compiled, update_goldens):
    for step, graph in compiled[model].stages:
        text = print_graph(graph, step)
        check_golden(ROOT / "tests" / "golden" / "ir" / f"{model}.{step}.ir", text, update_goldens)
        assert parse(text) == graph, f"{model} after {step} does not round-trip"


def test_printing_is_deterministic(compiled):
    again = compile_source(ROOT / "models" / "resnet18.snn")
    assert print_graph(again.graph) == print_graph(compiled["resnet18"].graph).replace(
        "models/resnet18.snn", str(ROOT / "models" / "resnet18.snn"))


def test_golden_transformer_compile(update_goldens, monkeypatch):
    """One transformer through a whole training pipeline: SML modules on token blocks, TET, MSG, fusion."""
    monkeypatch.chdir(ROOT)
    c = compile_source("models/spikformer.snn", recipe="sml(n=2, k=64)+msg+tet")
    text = print_graph(c.graph, c.stages[-1][0])
    check_golden(ROOT / "tests" / "golden" / "ir" / "spikformer.sml+msg+tet.ir", text, update_goldens)
    assert parse(text) == c.graph
    assert [n.name for n in c.graph.nodes if n.op == "token_map"] == ["sm1.map", "sm2.map"]
