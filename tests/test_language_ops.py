"""The ops beyond conv nets in the language: what each builds in the IR, with shapes, attributes and names."""

import pytest

from snnc.diagnostics import SnncError
from snnc.ir.printer import print_graph
from snnc.ir.textparse import parse
from snnc.pipeline import compile_source

HEAD = "  head = flatten -> fc(classes)\n}\n"


def graph(body: str, input_decl: str = "input image[3, 8, 8]", params: str = "", head: str = HEAD, **sets):
    text = f"network m(T = 2, classes = 10{params}) {{\n  {input_decl}\n{body}{head}"
    g = compile_source(text, {k: str(v) for k, v in sets.items()}, file="m.snn").graph
    assert parse(print_graph(g)) == g  # the canonical text round-trips with every new op
    return g


def node(g, name):
    return g.node(name)


@pytest.mark.parametrize("body, name, op, shape", [
    ("  a = conv(4) -> lif\n  b = a -> conv(6) -> lif\n  c = cat(a, b, a)\n", "c.cat", "cat", ("T", "B", 14, 8, 8)),
    ("  a = conv(4) -> lif\n  g = a -> adaptive_avgpool -> sigmoid\n  c = mul(a, g)\n", "c.mul", "mul",
     ("T", "B", 4, 8, 8)),
    ("  a = conv(4) -> lif\n  g = a -> adaptive_avgpool -> sigmoid\n  c = mul(g, a)\n", "c.mul", "mul",
     ("T", "B", 4, 8, 8)),
    ("  a = conv(4) -> lif\n  b = a -> conv(4) -> lif\n  c = iand(a, b)\n", "c.iand", "iand", ("T", "B", 4, 8, 8)),
    ("  s = conv(4) -> dropout(0.25) -> layernorm -> gelu -> sigmoid\n", "s.dropout", "dropout", ("T", "B", 4, 8, 8)),
    ("  s = conv(8) -> lif -> slice(2, 7)\n", "s.slice", "slice", ("T", "B", 5, 8, 8)),
    ("  s = conv(8) -> lif -> sum_tokens\n", "s.sum_tokens", "sum_tokens", ("T", "B", 8, 1, 1)),
])
def test_op_shapes(body, name, op, shape):
    n = node(graph(body), name)
    assert n.op == op and n.shape == shape


def test_token_ops_and_attention():
    body = ("  t = conv(8, 2, 2, pad = 0) -> tokens\n"
            "  q = t -> linear(8) -> bn -> lif\n  k = t -> linear(8, bias = false) -> bn -> lif\n"
            "  v = t -> linear(8) -> bn -> lif\n"
            "  a = ssa(q, k, v, heads = 2) -> lif(vth = 0.5) -> linear(12) -> layernorm\n"
            "  kv = mul(k, v) -> sum_tokens -> lif(vth = 0.5)\n  d = mul(q, kv)\n  s = a -> mean_tokens\n")
    g = graph(body, head="  head = fc(classes)\n}\n")
    assert node(g, "t.tokens").shape == ("T", "B", 8, 16)
    assert dict(node(g, "k.linear").attrs) == {"out": 8, "bias": False} and node(g, "k.bn").shape == ("T", "B", 8, 16)
    attn = node(g, "a.ssa")
    assert attn.inputs == ("q.lif", "k.lif", "v.lif") and dict(attn.attrs) == {"heads": 2, "scale": 0.125}
    assert node(g, "a.linear").shape == ("T", "B", 12, 16)
    assert node(g, "kv.sum_tokens").shape == ("T", "B", 8, 1) and node(g, "d.mul").shape == ("T", "B", 8, 16)
    assert node(g, "s.mean_tokens").shape == ("T", "B", 12)


def test_vote_and_plif():
    g = graph("  neuron plif(tau = 4.0, per_channel = true)\n  s = conv(4) -> bn -> plif -> plif(decay = 0.25)\n",
              head="  head = flatten -> fc(10 * classes) -> lif -> vote(10)\n}\n")
    first, second = node(g, "s.plif0"), node(g, "s.plif1")
    assert first.op == second.op == "lif"
    assert first.attrs["learn_decay"] == "channel" and first.attrs["decay"] == 0.75 and first.attrs["decay_input"]
    assert second.attrs["decay"] == 0.25 and second.attrs["learn_decay"] == "channel"
    assert "learn_decay" not in node(g, "head.lif").attrs
    assert node(g, "head.vote").shape == ("T", "B", 10)


def test_plif_defaults_follow_the_paper():
    g = graph("  s = conv(4) -> bn -> plif\n")
    a = node(g, "s.plif").attrs
    assert (a["decay"], a["decay_input"], a["learn_decay"], a["reset"]) == (0.5, True, "layer", "hard")


def test_encoders_on_the_input():
    g = graph("  s = conv(4) -> lif\n", "input image[3, 8, 8] @encode(poisson(seed = 7))")
    assert dict(node(g, "x").attrs) == {"kind": "image", "dims": (3, 8, 8), "encoding": "poisson", "seed": 7}
    assert dict(node(graph("  s = conv(4) -> lif\n", "input image[3, 8, 8] @encode(direct)"), "x").attrs) == \
        {"kind": "image", "dims": (3, 8, 8)}
    assert node(graph("  s = conv(4) -> lif\n", "input image[3, 8, 8] @encode(poisson)"), "x").attrs["seed"] == 0


def test_word_parameters_choose_chains():
    body = ("  a = conv(4) -> lif\n  b = a -> conv(4) -> lif\n"
            "  c = add(a, b) if g == ADD else iand(a, b) if g == IAND else mul(a, b)\n")
    assert node(graph(body, params=", g = ADD"), "c.add").op == "add"
    g = graph(body, params=", g = ADD", g="IAND")
    assert node(g, "c.iand").op == "iand" and g.params["g"] == "IAND"
    with pytest.raises(SnncError, match="takes a word"):
        graph(body, params=", g = ADD", g="3")


@pytest.mark.parametrize("body, message", [
    ("  a = conv(4) -> lif\n  c = cat(a)\n", "cat needs two or more values"),
    ("  a = conv(4) -> lif\n  c = mul(a, a, a)\n", "mul needs two values"),
    ("  a = conv(4) -> lif\n  c = cat(a, nope)\n", "unknown value 'nope'"),
    ("  a = conv(4) -> lif\n  c = iand(a, a, p = 1)\n", "iand needs two values"),
    ("  a = conv(4) -> lif\n  c = ssa(a, a, a, heads = 2, scale = -1.0)\n", "'scale' = -1.0 is out of range"),
    ("  s = conv(4) -> dropout(1.0)\n", "'p' = 1.0 is out of range"),
    ("  s = conv(4) -> mean_tokens\n", "mean_tokens needs a \\[D,N\\] input"),
])
def test_refusals_are_located(body, message):
    with pytest.raises(SnncError, match=message) as info:
        graph(body)
    assert info.value.loc is not None and info.value.loc.file == "m.snn" and info.value.loc.line >= 3
