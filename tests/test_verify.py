"""verify() rejects each broken invariant, and accepts every zoo model."""

from pathlib import Path

import pytest

from snnc.ir.attrs import Attrs
from snnc.ir.graph import Node
from snnc.ir.verify import IRError, verify
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return compile_source(ROOT / "models" / "digits.snn").graph


def swap(graph, name, **changes):
    return graph.replace(nodes=[n.replace(**changes) if n.name == name else n for n in graph.nodes])


def test_accepts_a_valid_graph(graph):
    assert verify(graph) is graph


@pytest.mark.parametrize("name,changes,message", [
    ("stem.conv", dict(shape=("T", "B", 16, 4, 4)), "differs from inferred"),
    ("stem.conv", dict(attrs=Attrs(out=16, k=3, stride=1, pad=1, groups=1, bias=False, colour=1)), "no attribute"),
    ("stem.conv", dict(attrs=Attrs(out=16, k=3, stride=1, groups=1, bias=False)), "missing attribute 'pad'"),
    ("stem.conv", dict(attrs=Attrs(out=0, k=3, stride=1, pad=1, groups=1, bias=False)), "out of range"),
    ("stem.conv", dict(attrs=Attrs(out=16.0, k=3, stride=1, pad=1, groups=1, bias=False)), "canonical form"),
    ("stem.conv", dict(op="convolution"), "unknown op"),
    ("stem.conv", dict(inputs=("head.fc",)), "not defined before"),
    ("stem.conv", dict(role="side"), "unknown role"),
    ("stem.bn", dict(attrs=Attrs(mode="tdbn", eps=1e-5, momentum=0.1)), "tdbn needs both"),
    ("stem.lif", dict(attrs=Attrs(decay=0.5, vth=1.0, reset="hard", decay_input=False, detach_reset=False,
                                  surrogate="triangle")), "a surrogate must be written like"),
    ("layer1.0.out.add", dict(inputs=("layer1.0.main.bn1",)), "takes 2..None inputs"),
])
def test_rejects(graph, name, changes, message):
    with pytest.raises(IRError) as info:
        verify(swap(graph, name, **changes))
    assert message in str(info.value)


def test_rejects_duplicate_names(graph):
    nodes = list(graph.nodes)
    nodes.insert(2, nodes[1])
    with pytest.raises(IRError, match="duplicate node name"):
        verify(graph.replace(nodes=nodes))


def test_main_node_may_not_read_aux(graph):
    g = swap(graph, "stem.conv", role="aux")
    with pytest.raises(IRError, match="main node reads aux node"):
        verify(g)


def test_output_must_exist_and_be_main(graph):
    with pytest.raises(IRError, match="not defined"):
        verify(graph.replace(output="nope"))
    extra = Node("side.fc", "fc", ("head.flatten",), Attrs(out=3, bias=True), ("T", "B", 3), "aux")
    g = graph.replace(nodes=list(graph.nodes) + [extra], aux_outputs=("head.fc",))
    with pytest.raises(IRError, match="must be an aux node"):
        verify(g)


@pytest.mark.parametrize("model", sorted(p.stem for p in (ROOT / "models").glob("*.snn")))
def test_every_stage_of_every_zoo_model_verifies(model):
    for _, g in compile_source(ROOT / "models" / f"{model}.snn").stages:
        verify(g)
