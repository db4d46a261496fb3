"""The passes on the ops beyond conv nets: strip-aux drops dropout, fold-bn folds into token linears,
CPNG adapts neurons fed by a norm, SML reads token blocks as maps, fuse-lif leaves PLIF alone."""

import pytest

from snnc.diagnostics import SnncError
from snnc.ir.verify import verify
from snnc.passes.annotate_surrogate import annotate_surrogate
from snnc.passes.dce import dce
from snnc.passes.fold_bn import fold_bn
from snnc.passes.fuse_lif import fuse_lif
from snnc.passes.insert_surrogate_modules import insert_surrogate_modules
from snnc.passes.strip_aux import strip_aux
from snnc.pipeline import compile_source

CPNG = {"chi_limit": 0.2, "per_batch": False, "beta": None}
NET = """network n(T = 2, classes = 10, size = 8) {{
  input image[3, size, size]
  surrogate arctan(beta = 1.0)
{body}
}}
"""
TRANSFORMER = """  block enc(d) {
    skip = identity
    q    = linear(d) -> bn -> lif
    k    = linear(d) -> bn -> lif
    v    = linear(d) -> bn -> lif
    a    = ssa(q, k, v, heads = 2) -> lif(vth = 0.5) -> linear(d) -> layernorm -> lif
    out  = add(skip, a) -> dropout(0.1)
  }
  stem = conv(8, 3) -> bn -> plif -> maxpool(2) -> tokens
  body = enc(8) x 2
  head = mean_tokens -> fc(classes)"""


def graph(body=TRANSFORMER, **sets):
    return compile_source(NET.format(body=body), {k: str(v) for k, v in sets.items()}, file="n.snn").graph


def test_strip_aux_drops_dropout_and_rewires_its_readers():
    g = strip_aux(graph())
    assert not g.of_op("dropout") and verify(g)
    assert g.node("body.0").inputs == ("body.0.out.add",)  # the block marker read the dropout
    assert g.node("head.mean_tokens").inputs == ("body.1",)
    assert strip_aux(g) == g


def test_fold_bn_folds_into_token_linears():
    g = fold_bn(strip_aux(graph()))
    q = g.node("body.0.q.linear")
    assert q.attrs["folded_bn"] == "body.0.q.bn" and q.attrs["bias"] and not g.of_op("bn", "affine")
    assert g.node("body.0.q.lif").inputs == ("body.0.q.linear",)
    out = dce(g)
    assert out.attrs["phase"] == "inference" and out.of_op("ssa", "layernorm", "tokens", "mean_tokens") and verify(out)


def test_cpng_adapts_all_but_the_attention_counts():
    g = annotate_surrogate(graph(), cpng=CPNG)
    adaptive = {n.name for n in g.nodes if n.attrs.get("adaptive_beta")}
    lifs = {n.name for n in g.nodes if n.op == "lif"}
    assert lifs - adaptive == {"body.0.a.lif0", "body.1.a.lif0"}  # after the attention product
    assert {"stem.plif", "body.0.a.lif1", "body.0.q.lif"} <= adaptive  # after bn, after layernorm
    sdsa = graph("  s = conv(4) -> lif\n  kv = mul(s, s) -> sum_tokens -> lif(vth = 0.5)\n"
                 "  c = add(s, s) -> lif\n  head = flatten -> fc(classes)")
    marked = {n.name for n in annotate_surrogate(sdsa, cpng=CPNG).nodes if n.attrs.get("adaptive_beta")}
    assert marked == {"s.lif", "c.lif"}  # a conv without bn and a sum of spikes still adapt, as before


def test_cpng_refuses_a_network_with_nothing_to_adapt():
    with pytest.raises(SnncError, match="cpng has no neuron to adapt") as info:
        annotate_surrogate(graph("  a = conv(4) -> sum_tokens -> lif\n  head = flatten -> fc(classes)"), cpng=CPNG)
    assert info.value.loc is not None and info.value.loc.line == 4


def test_sml_reads_token_blocks_as_square_maps():
    g = insert_surrogate_modules(graph(), n=1, k=16)
    m = g.node("sm1.map")
    assert m.op == "token_map" and m.inputs == ("sm1.rate",) and m.shape == ("B", 8, 4, 4) and m.role == "aux"
    assert g.node("sm1.conv7").inputs == ("sm1.map",) and verify(g)


def test_sml_refuses_tokens_that_are_not_a_square():
    text = NET.format(body=TRANSFORMER).replace("input image[3, size, size]", "input image[3, size, 12]")
    with pytest.raises(SnncError, match="gives 24 tokens, which are not a square map") as info:
        insert_surrogate_modules(compile_source(text, file="n.snn").graph, n=1, k=16)
    assert info.value.loc.file == "n.snn"


def test_fuse_lif_leaves_plif_unfused():
    g = fuse_lif(graph())
    assert "fuse_bn" not in g.node("stem.plif").attrs and g.node("body.0.q.lif").attrs["fuse_bn"]
