"""Language features end to end: source text -> expanded IR."""

import math

import pytest

from snnc.diagnostics import SnncError
from snnc.pipeline import compile_source


def build(body: str, params: str = "T = 4", overrides=None, header: str = "input image[3, 8, 8]"):
    src = f"network n({params}) {{\n  {header}\n{body}\n}}\n"
    return compile_source(src, overrides, file="n.snn").graph


HEAD = "  head = flatten -> fc(10)"


def lifs(g):
    return [n for n in g.nodes if n.op == "lif"]


def test_parameters_defaults_and_set_override():
    g = build("  s = conv(width, 3) -> bn -> lif\n" + HEAD, "T = 4, width = 8")
    assert g.node("s.conv").attrs["out"] == 8
    g = build("  s = conv(width, 3) -> bn -> lif\n" + HEAD, "T = 4, width = 8", {"width": "12", "T": "6"})
    assert g.node("s.conv").attrs["out"] == 12 and g.params["T"] == 6


def test_expressions_in_arguments():
    g = build("  s = conv(2 * w + 1, k = w // 2 - 1) -> bn -> lif\n" + HEAD, "T = 4, w = 6")
    assert g.node("s.conv").attrs["out"] == 13 and g.node("s.conv").attrs["k"] == 2


def test_global_neuron_and_per_layer_override():
    g = build("  neuron lif(decay = 0.25, vth = 0.5)\n  s = conv(4) -> bn -> lif -> conv(4) -> bn -> lif(vth = 2)\n"
              + HEAD)
    a, b = lifs(g)
    assert (a.attrs["decay"], a.attrs["vth"]) == (0.25, 0.5)
    assert (b.attrs["decay"], b.attrs["vth"]) == (0.25, 2.0)


def test_tau_becomes_decay_and_a_layer_decay_replaces_a_default_tau():
    g = build("  neuron lif(tau = 4, decay_input = true)\n  s = conv(4) -> bn -> lif -> conv(4) -> lif(decay = 0.5)\n"
              + HEAD)
    a, b = lifs(g)
    assert a.attrs["decay"] == 0.75 and a.attrs["decay_input"] is True
    assert b.attrs["decay"] == 0.5


def test_if_neuron_is_lif_with_decay_one():
    g = build("  neuron if(vth = 0.5, detach_reset = true)\n  s = conv(4) -> bn -> if\n" + HEAD)
    (n,) = lifs(g)
    assert n.name == "s.if" and n.attrs["decay"] == 1.0 and n.attrs["detach_reset"] and n.attrs["vth"] == 0.5


def test_surrogate_default_and_annotation_scopes():
    g = build("  surrogate dspike\n  block b(c) {\n    out = conv(c) -> bn -> lif\n  }\n"
              "  s = b(4) -> b(4) @surrogate(arctan(beta = 2)) -> (conv(4) -> lif) @surrogate(sigmoid)\n" + HEAD)
    names = [str(n.attrs["surrogate"]) for n in lifs(g)]
    assert names == ["dspike(b=2.5, region=1.0)", "arctan(beta=2.0)", "sigmoid(alpha=4.0)"]


def test_default_surrogate_is_triangle():
    g = build("  s = conv(4) -> lif\n" + HEAD)
    assert str(lifs(g)[0].attrs["surrogate"]) == "triangle(beta=1.0)"


def test_norm_tdbn_sets_branch_factor_on_bns_feeding_add():
    g = build("  norm tdbn\n  neuron lif(vth = 0.5)\n  block b(c) {\n    main = conv(c) -> bn -> lif -> conv(c) -> bn\n"
              "    skip = conv(c, 1) -> bn\n    out = add(main, skip) -> lif\n  }\n  s = b(4)\n" + HEAD)
    bns = {n.name: n.attrs for n in g.nodes if n.op == "bn"}
    assert bns["s.0.main.bn0"]["a"] == 1.0
    assert math.isclose(bns["s.0.main.bn1"]["a"], 1 / math.sqrt(2))
    assert math.isclose(bns["s.0.skip.bn"]["a"], 1 / math.sqrt(2))
    assert all(a["mode"] == "tdbn" and a["vth"] == 0.5 for a in bns.values())


def test_conditional_skip_path_follows_block_arguments():
    body = ("  block b(c, stride = 1) {\n    main = conv(c, 3, stride) -> bn\n"
            "    skip = (conv(c, 1, stride) -> bn) if stride != 1 or in != c else identity\n"
            "    out = add(main, skip) -> lif\n  }\n  s = b(3) -> b(6, stride = 2)\n" + HEAD)
    g = build(body)
    assert g.node("s.0.skip.identity").op == "identity"
    assert g.node("s.1.skip.conv").attrs["stride"] == 2
    assert g.node("s.1").attrs["block"] == "b" and g.node("s.1").shape == ("T", "B", 6, 4, 4)


def test_chained_else_branches():
    body = "  s = conv(1) if w == 1 else conv(2) if w == 2 else conv(3)\n" + HEAD
    for w in (1, 2, 3):
        assert build(body, "T = 4, w = 1", {"w": str(w)}).node("s.conv").attrs["out"] == w


def test_repetition_names_units_and_addressable_stages():
    g = build("  block b(c) {\n    out = conv(c) -> lif\n  }\n  layer1 = b(4) x 3\n"
              "  body = (conv(4) -> lif) x depth\n" + HEAD, "T = 4, depth = 2")
    from snnc.passes.expand_blocks import block_instances

    assert [m.name for m in block_instances(g)] == ["layer1.0", "layer1.1", "layer1.2"]
    assert {"body.0.conv", "body.0.lif", "body.1.conv", "body.1.lif"} <= set(g.by_name)


def test_repeated_op_kinds_are_numbered():
    g = build("  s = conv(4) -> bn -> lif -> conv(4) -> bn -> lif\n" + HEAD)
    assert {"s.conv0", "s.conv1", "s.bn0", "s.bn1", "s.lif0", "s.lif1"} <= set(g.by_name)


def test_nested_blocks_expand_with_full_names():
    body = ("  block inner(c) {\n    out = conv(c) -> lif\n  }\n"
            "  block outer(c) {\n    a = inner(c) -> inner(c)\n    out = add(a, a)\n  }\n  s = outer(4)\n" + HEAD)
    g = build(body)
    assert {"s.0.a.0.out.conv", "s.0.a.1.out.lif", "s.0.a.1", "s.0"} <= set(g.by_name)
    from snnc.passes.expand_blocks import block_instances

    assert [m.name for m in block_instances(g)] == ["s.0"]


def test_stage_values_can_start_chains_and_be_added():
    g = build("  a = conv(4) -> lif\n  b = conv(4) -> lif\n  c = add(a, b)\n  d = a -> flatten -> fc(10)\n")
    assert g.node("c.add").inputs == ("a.lif", "b.lif")
    assert g.node("d.flatten").inputs == ("a.lif",)


def test_comments_semicolons_and_wrapped_chains():
    g = build("  # a comment line\n  s = conv(4)   # trailing comment\n      -> bn\n      -> lif; t = flatten\n"
              "  u = fc(\n    10,\n    bias = false\n  )\n")
    assert g.node("u.fc").attrs["bias"] is False and g.node("t.flatten").inputs == ("s.lif",)


def test_events_input_and_flat_input():
    g = build("  s = conv(4) -> lif\n" + HEAD, header="input events[2, 8, 8]")
    assert g.node("x").attrs["kind"] == "events"
    g = build("  s = fc(16) -> lif -> fc(10)", header="input image[64]")
    assert g.node("s.fc0").shape == ("T", "B", 16)


def test_pools_and_their_defaults():
    g = build("  s = avgpool -> maxpool(3, 1, 1) -> adaptive_avgpool(2)\n" + HEAD)
    assert g.node("s.avgpool").attrs["stride"] == 2 and g.node("s.avgpool").shape == ("T", "B", 3, 4, 4)
    assert g.node("s.maxpool").shape == ("T", "B", 3, 4, 4)
    assert g.node("s.adaptive_avgpool").shape == ("T", "B", 3, 2, 2)


@pytest.mark.parametrize("body,message", [
    ("  s = conv(4) -> lif\n  t = conv(4) -> s\n" + HEAD, "can only start a chain"),
    ("  s = conv(4) -> lif\n  t = add(s)\n" + HEAD, "add needs two or more values"),
    ("  s = conv(4, groups = 3)\n" + HEAD, "groups=3 must divide"),
    ("  s = flatten -> conv(4)\n  t = fc(10)", "conv needs a [C,H,W] input"),
    ("  block b(c) {\n    out = conv(c)\n  }\n  s = b(4, d = 1)\n" + HEAD, "has no parameter 'd'"),
    ("  s = lif @surrogate(arctan, sigmoid)\n" + HEAD, "@surrogate takes one surrogate"),
    ("  neuron lif(decay = 0.5)\n  neuron lif(decay = 0.3)\n" + HEAD, "is set twice"),
    ("  s = conv(4) -> lif(decay = 1, decay_input = true)\n" + HEAD, "decay_input = true needs decay < 1"),
    ("  input image[1, 8, 8]\n" + HEAD, "exactly one input"),
    ("  block conv(c) {\n    out = lif\n  }\n" + HEAD, "name of a built-in op"),
])
def test_semantic_errors(body, message):
    with pytest.raises(SnncError) as info:
        build(body)
    assert message in str(info.value)
    assert info.value.loc is not None and info.value.loc.file == "n.snn"
