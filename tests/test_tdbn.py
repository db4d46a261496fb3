"""tdBN's a*vth factor: vth is that of the neuron the BN feeds (docs/methods.md §9)."""

import math

import pytest
import torch

from snnc.diagnostics import SnncError
from snnc.pipeline import compile_source
from trainkit import build

# The first declared neuron has vth = 1.0 and no layer below uses it, so a threshold
# taken from the declarations instead of the fed neuron shows up in every expectation.
SOURCE = """network n(T = 2) {
  input image[3, 8, 8]
  neuron lif(vth = 1.0)
  norm tdbn
  block res(c) {
    main = conv(c) -> bn -> lif(vth = 0.5) -> conv(c) -> bn
    skip = identity
    out = add(main, skip) -> lif(vth = 0.25)
  }
  block ends_in_bn(c) {
    out = conv(c) -> bn
  }
  block pool(c) {
    out = avgpool(1)
  }
  stem = conv(4) -> bn -> lif(vth = 2)
  body = res(4)
  tail = ends_in_bn(4) -> lif(vth = 0.3)
  pooled = conv(4) -> bn -> avgpool(2) -> lif(vth = 0.75)
  p1 = conv(4) -> bn -> pool(4) -> lif(vth = 0.4)
  p2 = conv(4) -> bn -> pool(4) -> if(vth = 0.9)
  head = flatten -> fc(16) -> bn -> fc(10)
}
"""
# (a, vth) read off the source: a = 1/sqrt(2) where the BN feeds the add; vth of the
# neuron reached directly, after the add, after pooling, across a block's end, or
# through a block shared by two call sites. The last BN feeds no neuron: vth = 1.
EXPECTED = {
    "stem.bn": (1.0, 2.0),
    "body.0.main.bn0": (1.0, 0.5),
    "body.0.main.bn1": (1 / math.sqrt(2), 0.25),
    "tail.0.out.bn": (1.0, 0.3),
    "pooled.bn": (1.0, 0.75),
    "p1.bn": (1.0, 0.4),
    "p2.bn": (1.0, 0.9),
    "head.bn": (1.0, 1.0),
}


def test_tdbn_takes_the_threshold_of_the_neuron_it_feeds():
    g = compile_source(SOURCE, file="n.snn").graph
    got = {n.name: (n.attrs["a"], n.attrs["vth"]) for n in g.of_op("bn")}
    assert got.keys() == EXPECTED.keys()
    for name, (a, vth) in EXPECTED.items():
        assert got[name] == (pytest.approx(a, rel=1e-15), vth), name


def test_generated_bn_outputs_scale_by_a_times_the_fed_threshold(tmp_path):
    source = tmp_path / "n.snn"
    source.write_text(SOURCE)
    _, mod = build(tmp_path, source, "sdt", fuse=False)
    model = mod.model.build_model().double().train()
    seen = {}
    for name in EXPECTED:
        module = model.get_submodule(mod.model.NODE_MODULES[name])
        module.register_forward_hook(lambda m, inp, out, name=name: seen.__setitem__(name, (inp[0], out)))
    g = torch.Generator().manual_seed(3)
    model(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64))
    for name, (a, vth) in EXPECTED.items():
        x, y = seen[name]
        dims = [0] + list(range(2, x.dim()))  # per channel over the merged T*B batch (and H, W)
        mu = x.mean(dims, keepdim=True)
        var = ((x - mu) ** 2).mean(dims, keepdim=True)  # biased, as BN normalises
        expected = a * vth * (x - mu) / torch.sqrt(var + 1e-5)  # gamma = 1, beta = 0 at initialisation
        torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("body,vths", [
    # one BN feeding two neurons with different thresholds
    ("  x1 = conv(4) -> bn\n  u = x1 -> lif(vth = 0.5)\n  w = x1 -> lif\n  s = add(u, w)\n", "0.5, 1"),
    # one block instance whose BN is followed by different neurons at its two call sites
    ("  block cb(c) {\n    out = conv(c) -> bn\n  }\n  s = conv(4)\n  u = cb(4) -> lif(vth = 0.3)\n  w = cb(4) -> lif(vth = 0.6)\n",
     "0.3, 0.6"),
])
def test_a_tdbn_feeding_different_thresholds_is_refused(body, vths):
    src = f"network n(T = 2) {{\n  input image[3, 8, 8]\n  norm tdbn\n{body}  head = flatten -> fc(10)\n}}\n"
    with pytest.raises(SnncError, match=rf"different thresholds \({vths}\)") as err:
        compile_source(src, file="n.snn")
    assert err.value.loc is not None and len(err.value.notes) == 2
