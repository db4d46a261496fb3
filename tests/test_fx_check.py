"""Every generated model.py, traced back with torch.fx, computes exactly its IR's graph (snnc/importer/fxcheck.py)."""

from pathlib import Path

import pytest

from snnc.backends.torch.render import render_model
from snnc.diagnostics import SnncError
from snnc.importer.fxcheck import check_generated, load_generated, model_view
from snnc.importer.fxgraph import compare, ir_view
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(p.stem for p in (ROOT / "models").glob("*.snn"))
RECIPES = ["sdt", "tet", "sml", "sml+tet", "cpng+tet", "msg+two", "tit(stages=[(2,1),(4,1)])",
           "sml+tet+tit(stages=[(2,1),(4,1)])", "msg(mask_p=0.3, rescale=true)+cpng+two+tet"]
REFUSALS = ("sml needs residual blocks", "cpng needs a triangle")
_checked: dict[str, list[str]] = {}  # recipes that only change train.py give the same model.py: check it once


def compiled(model: str, recipe: str, fuse: bool = True):
    try:
        return compile_source(ROOT / "models" / f"{model}.snn", recipe=recipe, fuse=fuse)
    except SnncError as err:
        assert err.message.startswith(REFUSALS), err.message
        pytest.skip(f"{model} refuses {recipe}: {err.message}")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_generated_model_is_the_ir(model, recipe):
    c = compiled(model, recipe)
    text = render_model(c.graph, model, "")
    if text not in _checked:
        _checked[text] = check_generated(c.graph, text)
    assert _checked[text] == []


@pytest.mark.parametrize("model", MODELS)
def test_unfused_bn_and_lif_are_the_ir(model):
    c = compiled(model, "sml+tet" if model not in ("vggsnn",) else "tet", fuse=False)
    assert check_generated(c.graph, render_model(c.graph, model, c.recipe.canonical())) == []


# ---- networks beyond the zoo: flat inputs, shared values, 3-way adds, BN read twice, unfused paths, wide SML
EDGE = {
    "flat": """network flat(T = 3, classes = 5) {
  input image[20]
  neuron lif(tau = 2.0, vth = 0.7, reset = soft, detach_reset = true)
  surrogate arctan(beta = 3)
  norm tdbn
  block res(n) {
    a   = fc(n) -> bn -> lif
    b   = a -> fc(n) -> bn
    out = add(a, b, a) -> lif
  }
  body = fc(16) -> bn -> lif -> res(16) x 2
  head = fc(classes)
}""",
    "shared": """network shared(T = 2, classes = 3) {
  input image[2, 9, 9]
  neuron if(vth = 0.5)
  surrogate rectangle(beta = 2)
  block b(c) {
    main  = conv(c, 3, groups = 2) -> bn
    left  = main -> lif
    right = main -> lif(vth = 0.3) -> conv(c, 1)
    out   = add(left, right, main)
  }
  stem = lif -> conv(4, 3, 2, pad = 0) -> bn
  s    = stem -> lif
  u    = add(stem, s) -> b(4) -> maxpool(3, 2, 1) -> avgpool(2, 1, pad = 1)
  head = adaptive_avgpool(2) -> flatten -> fc(8, bias = false) -> bn -> if -> fc(classes)
}""",
    "wide": """network wide(T = 2, classes = 10) {
  input events[2, 16, 16]
  norm bn(eps = 0.001, momentum = 0.2)
  block unit(c) {
    out = conv(c, 3) -> bn -> lif -> conv(c, 3) -> bn -> lif @surrogate(arctan(beta = 3))
  }
  stem = conv(300, 3) -> bn -> lif
  body = unit(300) x 2 -> identity
  head = flatten -> fc(classes)
}""",
}
EDGE_CASES = [(n, r) for n in EDGE for r in ("sdt", "sml(n=1)+tet", "cpng(beta=2)+msg(mask_p=0.2)+two+tet")]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name,recipe", EDGE_CASES)
def test_edge_networks(name, recipe, fuse):
    if name == "flat" and "sml" in recipe:  # SML modules convolve spike-rate maps: refused, located
        with pytest.raises(SnncError, match="gives a flat") as info:
            compile_source(EDGE[name], file=f"{name}.snn", recipe=recipe, fuse=fuse)
        assert info.value.loc is not None and info.value.loc.file == "flat.snn"
        return
    c = compile_source(EDGE[name], file=f"{name}.snn", recipe=recipe, fuse=fuse)
    assert check_generated(c.graph, render_model(c.graph, name, "")) == []


# ---- the check notices what a broken lowering would do
def _broken(model: str, recipe: str, old: str, new: str) -> list[str]:
    c = compile_source(ROOT / "models" / f"{model}.snn", recipe=recipe)
    text = render_model(c.graph, model, c.recipe.canonical())
    assert old in text
    return check_generated(c.graph, text.replace(old, new, 1))


def test_a_wrong_stride_is_caught():
    problems = _broken("digits", "sdt", "nn.Conv2d(16, 32, 3, stride=2", "nn.Conv2d(16, 32, 3, stride=1")
    assert any("conv" in p and "IR has 1, model has 0" in p for p in problems), problems


def test_a_lost_residual_is_caught():
    problems = _broken("digits", "sdt", "layer1_0_out_add = layer1_0_main_bn1 + stem_lif",
                       "layer1_0_out_add = layer1_0_main_bn1")
    assert any("'add'" in p for p in problems), problems


def test_a_miswired_layer_is_caught():
    problems = _broken("digits", "sdt", "layer1_0_main_bn1 + stem_lif", "layer1_0_main_bn1 + layer1_0_main_lif")
    assert problems and problems[0] == "same layers, connected differently"


def test_a_wrong_surrogate_is_caught():
    problems = _broken("digits", "sdt", "surrogate='triangle(beta=1.0)', mask_p=0.0, rescale=False, layer=0",
                       "surrogate='triangle(beta=2.0)', mask_p=0.0, rescale=False, layer=0")
    assert any("triangle(beta=2.0)" in p for p in problems), problems


TDBN = """network small(T = 2, classes = 3) {
  input image[1, 4, 4]
  neuron lif(vth = 0.5)
  norm tdbn
  body = conv(4, 3) -> bn -> lif -> flatten -> fc(classes)
}
"""


def test_a_fused_bn_without_its_tdbn_scale_is_caught():
    c = compile_source(TDBN, file="small.snn", recipe="sdt")
    text = render_model(c.graph, "small", "sdt")
    assert check_generated(c.graph, text) == []
    broken = text.replace("scale=self.body_bn.scale)", "scale=1.0)")
    assert broken != text
    assert any("'bn', 4, 1e-05, 0.1, 0.5" in p for p in check_generated(c.graph, broken))


def test_aux_outputs_in_the_wrong_order_are_caught():
    c = compile_source(ROOT / "models" / "digits.snn", recipe="sml")
    text = render_model(c.graph, "digits", "sml")
    module = load_generated(text.replace("[sm1_fc2, sm2_fc2]", "[sm2_fc2, sm1_fc2]"))
    actual, problems, _ = model_view(module)
    mapping, differences = compare(ir_view(c.graph), actual)
    assert mapping is None and differences
