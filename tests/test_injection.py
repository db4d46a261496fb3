"""Nothing a user writes reaches generated code except validated identifiers and numbers (DESIGN.md).

1. Every user-controlled name refuses text that is not a valid identifier, with a located diagnostic.
2. A network whose every name is a valid identifier that means something to Python or to the
   generated code (os, exec, torch, nn, self, print, open, build_model, ...), compiled from a file
   whose name carries quotes, a newline and code, gives model.py and train.py whose ASTs import,
   call and reference exactly what the same network with plain names gives; user names appear only
   as attributes, as locals assigned before use, and inside plain identifier strings; the file name
   only inside comments; and importing and running them does not run the file name's code.
"""

from __future__ import annotations

import ast
import importlib.util
import re

import pytest
import torch

from snnc.compiler import compile_to
from snnc.diagnostics import SnncError
from snnc.pipeline import compile_source

SOURCE = """network {net}(T = 4, classes = 10, {width} = 8, {reps} = 1) {{
  input image[1, 8, 8]
  neuron lif(decay = 0.5, vth = 1.0, reset = hard)
  surrogate triangle(beta = 1.0)
  norm bn
  recipe {quick} = sml(n = 1) + tet

  block {block}({c}, stride = 1) {{
    {main} = conv({c}, 3, stride) -> bn -> lif -> conv({c}, 3) -> bn
    {skip} = (conv({c}, 1, stride) -> bn) if stride != 1 or in != {c} else identity
    {out} = add({main}, {skip}) -> lif
  }}

  {stem} = conv({width}, 3) -> bn -> lif @surrogate(arctan(beta = 2))
  {layer1} = {block}({width}) x {reps}
  {layer2} = {block}(2 * {width}, stride = 2)
  {head} = adaptive_avgpool -> flatten -> fc(classes)
}}
"""
PLAIN = dict(net="net", width="width", reps="reps", quick="quick", block="basic", c="c", main="main", skip="skip",
             out="out", stem="stem", layer1="layer1", layer2="layer2", head="head")
# Valid identifiers that name Python builtins, modules, or the generated code's own globals.
LOADED = dict(net="os", width="torch", reps="exec", quick="eval", block="F", c="self", main="nn", skip="LIF",
              out="print", stem="open", layer1="sys", layer2="losses", head="build_model")
RECIPE = "{quick}+cpng+msg+two(warmup=0)"
MARKER = "PWNED"
# A file name that would be code if it escaped a comment or a string.
EVIL_FILE = f"{MARKER}\"'\n__import__('pathlib').Path('{MARKER}_ran').touch() #\\ ;\"\"\".snn"

PAYLOADS = ['a"b', "a'b", "a\nimport os", "__import__", "__class__", "import", "lambda", "a;b", "a)b", "é", "a b",
            "1a", "a-b", "a#b", "a\\b", "a\x00b", "{", "a.__class__"]
POSITIONS = ["net", "width", "block", "c", "main", "stem", "quick"]  # each also used elsewhere in SOURCE


@pytest.mark.parametrize("position", POSITIONS)
def test_names_that_are_not_identifiers_are_refused_with_a_location(position):
    for payload in PAYLOADS:
        names = {**PLAIN, position: payload}
        with pytest.raises(SnncError) as info:
            compile_source(SOURCE.format(**names), {}, file="inject.snn", recipe=RECIPE.format(**names))
        assert info.value.loc is not None and info.value.loc.file == "inject.snn", ascii(payload)


@pytest.mark.parametrize("where", ["recipe", "set_name", "set_value", "surrogate", "reset", "annotation", "kind"])
def test_other_user_strings_are_refused(where):
    for payload in PAYLOADS:
        text, recipe, overrides = SOURCE.format(**PLAIN), RECIPE.format(**PLAIN), {}
        if where == "recipe":
            recipe = f"{payload}+tet"
        elif where == "set_name":
            overrides = {payload: "4"}
        elif where == "set_value":
            overrides = {"width": payload}
        elif where == "surrogate":
            text = text.replace("surrogate triangle(beta", f"surrogate {payload}(beta")
        elif where == "reset":
            text = text.replace("reset = hard", f"reset = {payload}")
        elif where == "annotation":
            text = text.replace("@surrogate(arctan", f"@{payload}(arctan")
        else:
            text = text.replace("input image", f"input {payload}")
        with pytest.raises(SnncError):
            compile_source(text, overrides, file="inject.snn", recipe=recipe)


def _docstring_ids(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def summary(text: str) -> dict:
    """What a generated file does, as far as injection goes."""
    tree = ast.parse(text)
    docs = _docstring_ids(tree)
    out = {"imports": set(), "calls": set(), "globals": set(), "strings": set(), "docstrings": set()}
    for fn in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        body = fn.body if fn is not tree else [s for s in fn.body if not isinstance(s, (ast.FunctionDef,
                                                                                         ast.ClassDef))]
        stored = {n.id for s in body for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        stored |= {a.arg for a in ast.walk(fn) if isinstance(a, ast.arg)}
        for s in body:
            for n in ast.walk(s):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in stored:
                    out["globals"].add(n.id)
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out["imports"].add(ast.dump(n))
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            out["calls"].add(n.func.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out["docstrings" if id(n) in docs else "strings"].add(n.value)
    return out


SAFE_STRING = re.compile(r"[A-Za-z0-9_.,=()\[\] +\-]*\Z")  # identifiers, numbers and spelling punctuation


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loaded_names_and_an_evil_file_name_change_nothing_but_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    builds = {}
    for label, names, file in (("plain", PLAIN, "plain.snn"), ("loaded", LOADED, EVIL_FILE)):
        src = tmp_path / label / file
        src.parent.mkdir()
        src.write_text(SOURCE.format(**names))
        compile_to(src, RECIPE.format(**names), tmp_path / f"build-{label}")
        builds[label] = tmp_path / f"build-{label}"
    user = set(LOADED.values())
    for generated in ("model.py", "train.py"):
        text = (builds["loaded"] / generated).read_text()
        plain, loaded = summary((builds["plain"] / generated).read_text()), summary(text)
        assert loaded["imports"] == plain["imports"]
        assert loaded["calls"] == plain["calls"]          # no user name is ever called as a bare function
        assert loaded["globals"] == plain["globals"]      # nor looked up as a module-level or builtin name
        assert all(SAFE_STRING.match(s) for s in loaded["strings"]), loaded["strings"] - plain["strings"]
        assert not any(MARKER in s for s in loaded["strings"] | loaded["docstrings"])
        for line in text.splitlines():                    # the file name only ever inside a comment
            if MARKER in line:
                assert "#" in line[: line.index(MARKER)], line
        new_idents = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)} - \
            {n.id for n in ast.walk(ast.parse((builds["plain"] / generated).read_text())) if isinstance(n, ast.Name)}
        assert not new_idents & (plain["globals"] | set(dir(__builtins__))), new_idents
        assert any(u in text for u in user)               # the names did reach the code, as identifiers
    model = _import(builds["loaded"] / "model.py", "injected_model")
    net = model.build_model()
    outputs, aux = net(torch.randn(2, 1, 8, 8))
    assert outputs.shape == (4, 2, 10) and len(aux) == 1
    train = _import(builds["loaded"] / "train.py", "injected_train")
    assert train.SPEC.network == "os"
    assert not list(tmp_path.rglob(f"{MARKER}_ran"))      # the file name's code never ran


def test_ir_dump_of_a_file_with_a_newline_in_its_name_parses_back(tmp_path):
    from snnc.ir.textparse import parse

    src = tmp_path / EVIL_FILE
    src.write_text(SOURCE.format(**PLAIN))
    compile_to(src, "sdt", tmp_path / "build")
    parse((tmp_path / "build" / "model.ir").read_text())


def test_sml_at_a_stage_with_an_upper_case_name(tmp_path):
    src = tmp_path / "net.snn"
    src.write_text(SOURCE.format(**{**PLAIN, "layer2": "Layer2"}))
    compile_to(src, "sml(at=[Layer2.0])", tmp_path / "build")
