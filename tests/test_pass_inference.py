"""Inference passes: strip-aux, fold-bn, bake-decoding, dce; verify() enforces the inference form."""

import math

import pytest

from passkit import ROOT, golden_after
from snnc.diagnostics import SnncError
from snnc.ir.verify import IRError, verify
from snnc.passes.bake_decoding import bake_decoding
from snnc.passes.dce import dce
from snnc.passes.fold_bn import fold_bn, is_bn_free
from snnc.passes.strip_aux import has_no_aux, strip_aux
from snnc.pipeline import compile_source


def trained_graph(model="digits", recipe="sml+tet+two+msg+cpng"):
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return compile_source(f"models/{model}.snn", recipe=recipe).graph
    finally:
        os.chdir(cwd)


def test_strip_aux_removes_modules_losses_and_annotations(update_goldens):
    g = strip_aux(trained_graph())
    assert has_no_aux(g) and not g.aux_outputs and g.attrs["phase"] == "stripped"
    assert not any(n.name.startswith("sm") or n.op.endswith("_loss") for n in g.nodes)
    assert all(set(n.attrs) == {"decay", "vth", "reset", "decay_input"} for n in g.nodes if n.op == "lif")
    assert not {"cpng_chi_limit", "sml_blocks"} & set(g.attrs)
    golden_after("strip-aux", g, update_goldens, "digits")


def test_strip_aux_no_change_on_stripped():
    g = strip_aux(trained_graph())
    assert strip_aux(g) == g


def test_fold_bn_into_convs(update_goldens):
    g = fold_bn(strip_aux(trained_graph()))
    assert is_bn_free(g) and not g.of_op("affine")
    conv = g.node("stem.conv")
    assert conv.attrs["bias"] and conv.attrs["folded_bn"] == "stem.bn" and conv.attrs["bn_scale"] == 1.0
    assert g.node("stem.lif").inputs == ("stem.conv",)
    assert g.node("layer1.0.out.add").inputs == ("layer1.0.main.conv1", "layer1.0.skip.identity")
    golden_after("fold-bn", g, update_goldens, "digits")


def test_fold_bn_records_the_tdbn_factor():
    g = fold_bn(strip_aux(trained_graph("vgg16", "sdt")))
    assert all(n.attrs["bn_scale"] == 1.0 for n in g.of_op("conv"))  # no BN of vgg16 feeds an add
    g = fold_bn(strip_aux(trained_graph("resnet34", "sdt")))
    scales = {n.name: n.attrs["bn_scale"] for n in g.of_op("conv")}
    assert math.isclose(scales["layer1.0.main.conv1"], 1 / math.sqrt(2)) and scales["stem.conv"] == 1.0


def test_unfoldable_bn_becomes_affine():
    src = """network n(T = 2) {
  input image[1, 4, 4]
  a = conv(2) -> avgpool(2) -> bn -> lif -> flatten -> fc(3)
}"""
    g = fold_bn(strip_aux(compile_source(src, file="n.snn", recipe="sdt").graph))
    assert g.node("a.bn").op == "affine" and g.node("a.bn").attrs["from_bn"] == "a.bn"
    assert "folded_bn" not in g.node("a.conv").attrs


def test_bake_decoding():
    g = bake_decoding(strip_aux(trained_graph()), weights=(0.5, 1.0, 1.25, 1.25))
    node = g.node("decode")
    assert node.op == "time_weights" and node.attrs["weights"] == (0.5, 1.0, 1.25, 1.25)
    with pytest.raises(SnncError, match="4 steps"):
        bake_decoding(strip_aux(trained_graph()), weights=(1.0, 1.0))
    with pytest.raises(SnncError, match="needs the trained TWO weights"):
        bake_decoding(strip_aux(trained_graph()))
    plain = strip_aux(trained_graph(recipe="sdt"))
    assert bake_decoding(plain) == plain


def test_dce_leaves_an_inference_graph(update_goldens):
    g = dce(fold_bn(bake_decoding(strip_aux(trained_graph()), weights=(1.0,) * 4)))
    verify(g)
    assert g.attrs["phase"] == "inference" and not g.of_op("identity")
    assert g.node("layer1.0.out.add").inputs == ("layer1.0.main.conv1", "stem.lif")
    assert g.output == "decode"
    golden_after("dce", g, update_goldens, "digits")


def test_verify_rejects_training_leftovers_in_an_inference_graph():
    from snnc.ir.attrs import Attrs

    g = dce(fold_bn(bake_decoding(strip_aux(trained_graph()), weights=(1.0,) * 4)))
    lif = g.node("stem.lif")
    bad = g.replace(nodes=[n.with_attrs(mask_p=0.5) if n is lif else n for n in g.nodes])
    with pytest.raises(IRError, match="no training annotations"):
        verify(bad)
    conv = g.node("stem.conv")
    bn = conv.replace(name="stem.bn", op="bn", inputs=(conv.name,), attrs=Attrs(mode="bn", eps=1e-5, momentum=0.1))
    nodes = list(g.nodes)
    nodes.insert(nodes.index(conv) + 1, bn)
    with pytest.raises(IRError, match="no bn nodes"):
        verify(g.replace(nodes=nodes))


def test_dce_removes_unused_branches():
    src = """network n(T = 2) {
  input image[1, 4, 4]
  a = conv(2) -> lif
  unused = a -> conv(5) -> lif
  out = a -> flatten -> fc(3)
}"""
    g = dce(fold_bn(strip_aux(compile_source(src, file="n.snn", recipe="sdt").graph)))
    assert not any(n.name.startswith("unused") for n in g.nodes)
    assert dce(g) == g
