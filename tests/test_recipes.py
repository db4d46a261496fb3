"""The --recipe language: parsing, defaults, canonical spelling, located errors."""

import signal
from pathlib import Path

import pytest

from clirun import snnc
from snnc.diagnostics import SnncError, render
from snnc.pipeline import compile_source
from snnc.recipes import MAX_RECIPE_CALLS, MAX_RECIPE_DEPTH, RECIPES, parse_recipe

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
    ("tit(stages=[(2, 60000), (4, 50000)])", "the stages train 110,000 epochs in all; at most 100,000", None),
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


# ------------------------------------------------------------------ named recipes that recurse or blow up
def with_recipes(lines: list[str]) -> str:
    """The digits network with `lines` as its recipe definitions."""
    text = (ROOT / "models" / "digits.snn").read_text().replace("  recipe sml = sml(k = 64)\n", "")
    return text.replace("  input ", "".join(f"  {line}\n" for line in lines) + "  input ", 1)


def definitions(lines: list[str]):
    from snnc.frontend import parse_network

    return parse_network(with_recipes(lines), "named.snn").recipes


def recipe_error(lines: list[str], recipe: str | None) -> SnncError:
    """The error of `--recipe recipe` (or, for None, of checking every definition), within 5 s."""
    from snnc.recipes import check_definitions

    def expire(signum, frame):
        raise TimeoutError("no answer within 5 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        with pytest.raises(SnncError) as info:
            if recipe is None:
                check_definitions(definitions(lines))
            else:
                compile_source(with_recipes(lines), file="named.snn", recipe=recipe)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert info.value.loc is not None and info.value.loc.file == "named.snn", render(info.value)
    return info.value


def chain(n: int, last: str = "tet") -> list[str]:
    return [f"recipe r{i} = r{i + 1}" for i in range(n)] + [f"recipe r{n} = {last}"]


@pytest.mark.parametrize("recipe", ["r0", None])
def test_a_long_chain_is_a_located_error_not_a_recursion_error(recipe):
    err = recipe_error(chain(1000), recipe)
    assert f"nests named recipes more than {MAX_RECIPE_DEPTH} deep" in err.message
    assert err.loc.line == 5 + MAX_RECIPE_DEPTH - 1 or recipe is None  # the reference one level too deep


def test_chains_up_to_the_depth_limit_work():
    lines = chain(MAX_RECIPE_DEPTH - 1)  # r0 .. r31: 32 named recipes
    assert compile_source(with_recipes(lines), file="named.snn", recipe="r0").recipe.slug() == "tet"
    assert "more than" in recipe_error(chain(MAX_RECIPE_DEPTH), "r0").message


@pytest.mark.parametrize("recipe", ["r0", None])
def test_doubling_definitions_answer_at_once(recipe):
    lines = [f"recipe r{i} = r{i + 1} + r{i + 1}" for i in range(30)] + ["recipe r30 = tet"]  # 2**30 calls
    err = recipe_error(lines, recipe)
    assert f"expands to more than {MAX_RECIPE_CALLS} recipe calls" in err.message
    assert render(err).splitlines()[1].split("|")[1].strip().startswith("recipe r")  # points at a definition


def test_depth_counts_through_shared_definitions():
    """b0 -> ... -> b16 -> a5 -> ... -> a20 is 33 deep, also when the a chain was expanded first."""
    lines = [f"recipe a{i} = a{i + 1}" for i in range(20)] + ["recipe a20 = tet"]
    lines += [f"recipe b{i} = b{i + 1}" for i in range(16)] + ["recipe b16 = a5"]
    assert "more than" in recipe_error(lines, "b0").message
    assert "more than" in recipe_error(lines, None).message  # a0 first, then b0 reuses a5's expansion
    assert compile_source(with_recipes(lines), file="named.snn", recipe="a0").recipe.slug() == "tet"


@pytest.mark.parametrize("lines,cycle", [
    (["recipe a = a"], "a -> a"),
    (["recipe a = b", "recipe b = c + tet", "recipe c = a"], "a -> b -> c -> a"),
    (["recipe a = sml + b", "recipe b = tet + b"], "b -> b"),
])
def test_cycles_are_located(lines, cycle):
    err = recipe_error(lines, lines[0].split()[1])
    assert f"refers to itself: {cycle}" in err.message and err.notes[0].loc.file == "named.snn"


@pytest.mark.parametrize("lines,message", [
    (["recipe fast = sml + tet", "recipe broken = smll"], "unknown recipe 'smll'"),
    (["recipe broken = tet(lam = 7)"], "out of range"),
    (["recipe both = sdt + tet"], "conflict"),
    (["recipe y = tet", "recipe y = sdt"], "recipe 'y' is defined twice"),
    (["recipe sml = sml(kk = 3)"], "has no parameter 'kk'"),
    (["recipe twice = one + one", "recipe one = tet"], "given twice"),
])
def test_check_validates_every_named_recipe(tmp_path, lines, message):
    assert message in recipe_error(lines, None).message
    path = tmp_path / "named.snn"
    path.write_text(with_recipes(lines))
    r = snnc("check", str(path))
    assert r.returncode == 1 and message in r.stderr and "named.snn:" in r.stderr, r.stderr


def test_check_accepts_good_named_recipes():
    from snnc.recipes import check_definitions

    check_definitions(definitions(["recipe a = sml + b", "recipe b = tet", "recipe sml = sml(k = 8)"]))


@pytest.mark.parametrize("text", [" ", "\t", "\u2028", "  \n ", "\u3000"])
def test_whitespace_recipe_is_located(text):
    with pytest.raises(SnncError) as info:
        parse_recipe(text)
    assert info.value.message == "the recipe is empty" and str(info.value.loc) == "--recipe:1:1"
    assert render(info.value).splitlines()[2].strip().startswith("| ^")
