"""expand-blocks: inlining, markers, no-change on expanded graphs, pass manager checks."""

from pathlib import Path

import pytest

from snnc import frontend
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Node
from snnc.passes import PASSES, Step, run_pipeline
from snnc.passes.expand_blocks import block_instances, expand_blocks, is_expanded
from snnc.passes.registry import PassFailure, register

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built():
    return frontend.load(ROOT / "models" / "resnet18.snn")[1]


def test_builder_output_has_blocks_and_calls(built):
    assert built.blocks and built.of_op("call") and not is_expanded(built)
    # layer1's two blocks share one instantiation: same arguments, same input shape.
    assert built.node("layer1.0").attrs["block"] == built.node("layer1.1").attrs["block"]


def test_expands_every_call(built):
    g = expand_blocks(built)
    assert is_expanded(g)
    assert len([n for n in g.nodes if n.op == "lif"]) == 17
    assert g.node("layer2.0.skip.conv").inputs == ("layer1.1",)
    marker = g.node("layer2.0")
    assert marker.op == "identity" and marker.attrs["block"] == "basic" and marker.inputs == ("layer2.0.out.lif",)
    assert [m.name for m in block_instances(g)] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]


def test_no_change_returns_the_same_object(built):
    g = expand_blocks(built)
    assert expand_blocks(g) is g


def test_shapes_and_locations_survive(built):
    g = expand_blocks(built)
    conv = g.node("layer3.0.main.conv0")
    assert conv.shape == ("T", "B", 256, 8, 8)
    assert conv.loc is not None and conv.loc.file.endswith("resnet18.snn") and conv.loc.line == 11


def test_pass_manager_names_the_failing_pass(built):
    @register("test-break-shapes")
    def break_shapes(graph):
        """Corrupts one shape (test only)."""
        return graph.replace(nodes=[n.replace(shape=("T", "B", 1)) if n.name == "head.fc" else n
                                    for n in graph.nodes])

    try:
        with pytest.raises(Exception) as info:
            run_pipeline(built, [Step("expand-blocks"), Step("test-break-shapes")])
        assert "after pass 'test-break-shapes' (ran before it: expand-blocks)" in str(info.value)
    finally:
        PASSES.pop("test-break-shapes")


def test_pass_manager_checks_requires(built):
    @register("test-needs-expanded", requires=("expanded",))
    def needs(graph):
        """Requires expanded input (test only)."""
        return graph

    try:
        with pytest.raises(PassFailure, match="requires 'expanded'"):
            run_pipeline(built, [Step("test-needs-expanded")])
        run_pipeline(built, [Step("expand-blocks"), Step("test-needs-expanded")])
    finally:
        PASSES.pop("test-needs-expanded")


def test_markers_are_plain_identities_to_shape_inference():
    node = Node("a", "identity", ("x",), Attrs(block="basic"), ("T", "B", 3))
    assert node.attrs["block"] == "basic"
