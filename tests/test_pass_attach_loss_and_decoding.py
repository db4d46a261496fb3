"""attach-loss and attach-decoding: loss nodes per recipe, TWO decoding node."""

from passkit import expanded, golden_after
from snnc.passes.attach_decoding import attach_decoding, is_decoded
from snnc.passes.attach_loss import attach_loss, has_loss, loss_node
from snnc.passes.insert_surrogate_modules import insert_surrogate_modules

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
