"""attach-loss and attach-decoding: loss nodes per recipe, TWO decoding node."""

import pytest
import torch

from passkit import ROOT, expanded, golden_after
from snnc.diagnostics import SnncError
from snnc.passes.attach_decoding import attach_decoding, is_decoded
from snnc.passes.attach_loss import attach_loss, has_loss, loss_node
from snnc.passes.insert_surrogate_modules import insert_surrogate_modules
from trainkit import build

TET = {"lam": 0.05, "phi": 1.0}
SML = {"alpha": 0.5, "lam": 0.9, "tdis": 3.0}


def test_sdt_and_tet():
    g = expanded("digits")
    sdt = attach_loss(g)
    assert loss_node(sdt).op == "sdt_loss" and loss_node(sdt).inputs == ("head.fc",) and has_loss(sdt)
    tet = attach_loss(g, loss="tet", tet=TET)
    assert loss_node(tet).op == "tet_loss" and dict(loss_node(tet).attrs) == TET
    assert loss_node(tet).role == "aux" and loss_node(tet).shape == ()


def test_sml_with_tet_exit(update_goldens):
    g = insert_surrogate_modules(expanded("digits"), n=2, k=32)
    g = attach_loss(attach_decoding(g), loss="tet", tet=TET, sml=SML)
    node = loss_node(g)
    assert node.op == "sml_loss" and node.inputs == ("decode", "sm1.fc2", "sm2.fc2")
    assert node.attrs["inner"] == "tet" and node.attrs["tet_lam"] == 0.05
    golden_after("attach-loss", g, update_goldens, "digits-sml-tet-two")


def test_decoding_becomes_the_output():
    g = expanded("digits")
    d = attach_decoding(g, m=0.6, warmup=2)
    assert d.output == "decode" and d.node("decode").inputs == (g.output,) and is_decoded(d)
    assert d.node("decode").attrs["m"] == 0.6 and d.node("decode").role == "main"
    assert not is_decoded(g)


def test_generated_names_do_not_collide_with_user_names():
    src = """network n(T = 2) {
  input image[1, 4, 4]
  loss = conv(2) -> lif
  decode = flatten -> fc(3)
}"""
    from snnc.pipeline import compile_source

    g = compile_source(src, file="n.snn").graph
    out = attach_loss(attach_decoding(g))
    assert out.output == "decode_" and loss_node(out).name == "loss_"


# The first declared neuron and most layers have vth = 1; only the neurons before the
# output layer have vth = 0.25, so phi taken from anywhere else is caught.
MIXED = """network mixed(T = 3, classes = 5) {{
  input image[1, 4, 4]
  neuron lif(vth = 1.0)
  block res(c) {{
    main = conv(c) -> lif -> conv(c)
    skip = identity
    out = add(main, skip) -> lif(vth = {last})
  }}
  stem = conv(2) -> lif
  body = res(2) x 2
  head = avgpool(2) -> flatten -> fc(classes)
}}
"""


def _ce(logits, y):  # cross-entropy written out, averaged over the batch
    return sum(-(logits[b, y[b]] - torch.logsumexp(logits[b], 0)) for b in range(len(y))) / len(y)


def test_tet_phi_defaults_to_the_threshold_before_the_output():
    from snnc.pipeline import compile_source

    for recipe, op in (("tet", "tet_loss"), ("sml(n=1)+tet", "sml_loss"), ("two+tet", "tet_loss")):
        c = compile_source(MIXED.format(last=0.25), file="mixed.snn", recipe=recipe)
        assert (loss_node(c.graph).op, loss_node(c.graph).attrs["phi"]) == (op, 0.25), recipe
        assert "tet(lam=0.05, phi=0.25)" in c.recipe.canonical()
    # cifarnet's neuron has vth = 0.5 (models/cifarnet.snn)
    assert loss_node(compile_source(ROOT / "models" / "cifarnet.snn", recipe="tet").graph).attrs["phi"] == 0.5
    explicit = compile_source(MIXED.format(last=0.25), file="mixed.snn", recipe="tet(phi=0.8)")
    assert loss_node(explicit.graph).attrs["phi"] == 0.8 and "phi=0.8" in explicit.recipe.canonical()


def test_tet_phi_default_refuses_differing_thresholds_before_the_output():
    from snnc.pipeline import compile_source

    src = MIXED.format(last=0.25).replace("head = avgpool(2)", "side = stem -> lif(vth = 0.5)\n"
                                          "  both = add(body, side)\n  head = avgpool(2)")
    with pytest.raises(SnncError, match=r"differ \(0.25, 0.5\)"):
        compile_source(src, file="mixed.snn", recipe="tet")
    assert loss_node(compile_source(src, file="mixed.snn", recipe="tet(phi=0.5)").graph).attrs["phi"] == 0.5


def test_generated_tet_loss_uses_the_default_phi(tmp_path):
    source = tmp_path / "mixed.snn"
    source.write_text(MIXED.format(last=0.25))
    _, mod = build(tmp_path, source, "tet(lam=0.3)")
    g = torch.Generator().manual_seed(7)
    O = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=g)
    per_step = sum(_ce(O[t], y) for t in range(3)) / 3
    mse = sum(float(O[t, b, k] - 0.25) ** 2 for t in range(3) for b in range(6) for k in range(5)) / 90
    assert mod.compute_loss(O, [], y).item() == pytest.approx(0.7 * per_step.item() + 0.3 * mse, rel=1e-12)
