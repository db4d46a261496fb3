"""The --recipe language: parsing, defaults, canonical spelling, located errors."""

from pathlib import Path

import pytest

from clirun import snnc
from snnc.diagnostics import SnncError, render
from snnc.pipeline import compile_source
from snnc.recipes import RECIPES, parse_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_canonical_spelling():
    r = parse_recipe("tet+sml")
    assert r.slug() == "sml+tet"
    # tet's phi defaults to a threshold of the network: compiling spells it out, parsing alone cannot
    assert r.canonical() == "sml(n=2, k=256, alpha=0.5, lam=0.9, tdis=3.0)+tet(lam=0.05)"
    assert parse_recipe(r.canonical()).canonical() == r.canonical()


def test_parameters_and_tit_stages():
    r = parse_recipe("sml(n=3, k=128)+tet(lam=0.001)+tit(stages=[(2,30),(4,10, 0.01)])")
    assert r.get("sml")["n"] == 3 and r.get("sml")["k"] == 128 and r.get("tet")["lam"] == 0.001
    assert r.get("tit")["stages"] == ((2, 30), (4, 10, 0.01))
    assert parse_recipe("sml(at=[layer2.0, 3])").get("sml")["at"] == ("layer2.0", 3)
    assert parse_recipe("msg").get("msg") == {"mask_p": 0.5, "rescale": False}
    assert parse_recipe("sdt").loss == "sdt" and parse_recipe("sml").loss == "sdt"


def fails(text, named=None):
    with pytest.raises(SnncError) as info:
        parse_recipe(text, named)
    return render(info.value)


@pytest.mark.parametrize("text,message,hint", [
    ("smll+tet", "unknown recipe 'smll'", "did you mean 'sml'?"),
    ("sml(kk=3)", "recipe 'sml' has no parameter 'kk'", "did you mean 'k'?"),
    ("msg(mask_p=1.0)", "'mask_p' = 1.0 is out of range; it must be in [0, 1)", None),
    ("msg(mask_p=-0.1)", "out of range", None),
    ("tet(lam=1.5)", "'lam' = 1.5 is out of range; it must be in [0, 1]", None),
    ("sml(lam=2)", "out of range", None),
    ("sdt+tet", "recipes 'sdt' and 'tet' conflict", None),
    ("tet+tet(lam=0.1)", "recipe 'tet' is given twice", None),
    ("tit", "recipe 'tit' needs 'stages'", None),
    ("tit(stages=[(0, 3)])", "stage T must be a positive integer", None),
    ("tit(stages=[2, 3])", "each stage is (T, epochs)", None),
    ("sml(n=2, at=[1])", "either 'n' or 'at'", None),
    ("sml(at=[0])", "1-based", None),
    ("cpng(chi_limit=0)", "out of range", None),
    ("two(m=1)", "out of range", None),
    ("sml(", "unexpected end of recipe", None),
    ("", "the recipe is empty", None),
])
def test_errors(text, message, hint):
    out = fails(text)
    assert message in out
    if hint:
        assert hint in out


def test_error_points_into_the_recipe_string():
    out = fails("sml+tet(lam=3)")
    assert out.splitlines()[1].strip().endswith("sml+tet(lam=3)") and "^^^^^" in out.splitlines()[2]


SRC = """network n(T = 4) {
  input image[1, 8, 8]
  recipe quick = sml(n = 1, k = 16) + tet(lam = 0.1)
  recipe sml = sml(k = 32)
  block b(c) {
    out = conv(c) -> bn -> lif
  }
  s = b(4) x 2
  head = flatten -> fc(10)
}
"""


def test_named_recipes_and_file_defaults():
    c = compile_source(SRC, file="n.snn", recipe="quick+two")
    assert c.recipe.slug() == "sml+two+tet" and c.recipe.get("sml")["k"] == 16
    c = compile_source(SRC, file="n.snn", recipe="sml")
    assert c.recipe.get("sml")["k"] == 32
    c = compile_source(SRC, file="n.snn", recipe="sml(k=8, n=1)")
    assert c.recipe.get("sml")["k"] == 8


def test_compile_time_recipe_errors():
    def err(recipe, model="resnet18"):
        with pytest.raises(SnncError) as info:
            compile_source(ROOT / "models" / f"{model}.snn", recipe=recipe)
        return render(info.value)

    assert "asks for more modules than the network has blocks (8)" in err("sml(n=9)")
    assert "'layer5.0' is not a block" in err("sml(at=[layer5.0])")
    assert "did you mean 'layer2." in err("sml(at=[layer2.O])")
    assert "at=9 is not a block" in err("sml(at=[9])")
    assert "sml needs residual blocks" in err("sml", "vggsnn")
    out = err("cpng")
    assert "cpng needs a triangle, rectangle or arctan surrogate" in out and "dspike" in out
    assert "resnet18.snn:" in out  # located at the offending layer


def test_snnc_recipes_lists_everything():
    r = snnc("recipes")
    assert r.returncode == 0
    for name, recipe in RECIPES.items():
        assert name in r.stdout
        for p in recipe.params:
            assert p.name in r.stdout
    assert "mask_p: float, in [0, 1), default 0.5" in r.stdout
