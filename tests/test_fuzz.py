"""Bad input, fuzzed: every user-facing reader answers with a result or a SnncError, never a traceback or a hang.

Sources (random text, mutated zoo files, deep nesting, huge numbers, unicode,
NUL bytes, 1 MB files), recipe strings, --set values, data specs and
checkpoint/weights files. Each case runs under a wall-clock alarm, so a hang
fails the test instead of stalling it. `pytest tests/test_fuzz.py
--hypothesis-show-statistics` reports how many cases ran; SNNC_FUZZ_SCALE=N
runs N times as many.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import signal
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.diagnostics import SnncError, render
from snnc.frontend import read_source
from snnc.frontend.declarations import parse_override
from snnc.ir.printer import print_graph
from snnc.ir.textparse import parse as parse_ir
from snnc.pipeline import compile_source
from snnc.budget import MAX_ACTIVATION_BYTES, MAX_PARAM_BYTES
from snnc.ir.analysis import footprint
from snnc.recipes import CANONICAL_ORDER, MAX_RECIPE_CALLS, MAX_RECIPE_DEPTH, RECIPES, parse_recipe
from snnc.runtime import checkpoint, data, weights

ROOT = Path(__file__).resolve().parent.parent
ZOO = {p.stem: p.read_text() for p in sorted((ROOT / "models").glob("*.snn"))}
SMALL = ("digits", "toy", "vggsnn", "cifarnet")  # the cheap ones to compile many times
SCALE = int(os.environ.get("SNNC_FUZZ_SCALE", "1"))  # e.g. 20 for a longer campaign than the test suite's


def cases(n: int) -> settings:
    return settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=n * SCALE)


@contextmanager
def time_limit(seconds: float):
    """Raises TimeoutError in this (main) thread if the block runs longer than `seconds`."""
    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def answer(fn, seconds: float = 20.0, located: bool = False):
    """fn()'s result, or the SnncError it raised (rendered, and located if asked); anything else fails."""
    with time_limit(seconds):
        try:
            return fn()
        except SnncError as err:
            text = render(err)
            assert text.startswith(str(err)) and err.message
            if located:
                assert err.loc is not None and err.loc.line >= 1 and err.loc.col >= 1, text
            return err


def compile_text(text: str, recipe: str = "sdt"):
    result = answer(lambda: compile_source(text, {}, file="fuzz.snn", recipe=recipe), located=True)
    if not isinstance(result, SnncError):  # a valid IR: the canonical text must parse back to it
        assert parse_ir(print_graph(result.graph)) == result.graph
    return result


# ------------------------------------------------------------------ sources
TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_]\w*|\d+\.\d*(?:[eE][+-]?\d+)?|\d+|->|//|==|!=|<=|>=|.", re.S)
VOCAB = ["network", "block", "input", "neuron", "surrogate", "norm", "recipe", "if", "else", "x", "in", "not",
         "and", "or", "true", "false", "conv", "bn", "lif", "fc", "flatten", "add", "identity", "tdbn",
         "(", ")", "[", "]", "{", "}", ",", "=", "->", "+", "-", "*", "/", "//", "%", "@", ".", ":", ";", "\n",
         "#", "'", '"', "\\", "0", "-1", "1e308", "1e999", "9" * 40, "4611686018427387905", "0.0", "1.5",
         "é", "λ", "\u202e", "\ufeff", "\x00", "\t", "\r", "😀", "__class__", "import", "os", "a" * 5000]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


@st.composite
def mutated_sources(draw) -> str:
    toks = tokens(ZOO[draw(st.sampled_from(SMALL))])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(toks) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert"]))
        if kind == "delete":
            del toks[i]
        elif kind == "duplicate":
            toks.insert(i, toks[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        else:
            word = draw(st.sampled_from(VOCAB) | st.text(max_size=8))
            toks[i:i + (kind == "replace")] = [word]
    return "".join(toks)


NESTINGS = {
    "parens": lambda d: "(" * d + "16" + ")" * d,
    "minus": lambda d: "-" * (2 * d) + "16",
    "not": lambda d: "not " * d + "16",
    "list": lambda d: "[" * d + "16" + "]" * d,
    "sum": lambda d: "+".join(["1"] * d),
    "call": lambda d: "f(" * d + ")" * d,
}


@cases(100)
@given(mutated_sources())
def test_mutated_zoo_sources(text):
    compile_text(text)


@cases(100)
@given(st.text(max_size=300))
def test_random_text(text):
    compile_text(text)


@cases(60)
@given(st.sampled_from(sorted(NESTINGS)), st.integers(1, 3000), st.booleans())
def test_deep_nesting(kind, depth, in_group):
    source = ZOO["digits"]
    if in_group:  # nested chain groups around the head
        text = source.replace("head   = adaptive_avgpool", "head   = " + "(" * depth + "adaptive_avgpool"
                              + ")" * depth)
    else:
        text = source.replace("width = 16", "width = " + NESTINGS[kind](depth))
    result = compile_text(text)
    if depth > 400 and (in_group or kind != "parens"):  # redundant parentheses add no nesting
        assert isinstance(result, SnncError)  # far past any real source


@cases(60)
@given(st.sampled_from(["width = 16", "T = 4", "classes = 10"]),
       st.one_of(st.integers(), st.floats(), st.text(alphabet="0123456789.eE+-", min_size=1, max_size=400)))
def test_numbers(param, value):
    name = param.split()[0]
    compile_text(ZOO["digits"].replace(param, f"{name} = {value}"))


def _blocks_chain(n: int) -> str:
    defs = "".join(f"  block b{i}(c) {{\n    out = b{i + 1}(c)\n  }}\n" for i in range(n))
    return ZOO["digits"].replace("  stem ", defs + f"  block b{n}(c) {{\n    out = conv(c, 3)\n  }}\n  stem ") \
        .replace("layer1 = basic(width)", "layer1 = b0(width)")


MEGA = 1_000_000
HUGE = {name: text.encode() for name, text in {
    "comments": ZOO["digits"] + "# " + "x" * (MEGA - 2),
    "statements": ZOO["digits"].replace("  head", "".join(f"  s{i} = conv(16, 3) -> bn -> lif\n"
                                                         for i in range(MEGA // 32)) + "  head"),
    "one_sum": ZOO["digits"].replace("width = 16", "width = " + "1+" * (MEGA // 2) + "1"),
    "one_name": ZOO["digits"].replace("width = 16", "w" * MEGA + " = 16"),
    "one_number": ZOO["digits"].replace("width = 16", "width = " + "7" * MEGA),
    "parens": ZOO["digits"].replace("width = 16", "width = " + "(" * (MEGA // 2) + "16" + ")" * (MEGA // 2)),
    "unicode": ZOO["digits"].replace("width = 16", "width = 16 " + "λ" * (MEGA // 2)),
    "repeats": ZOO["digits"].replace("layer1 = basic(width)", "layer1 = (basic(width) x 1000) x 1000"),
    "block_chain": _blocks_chain(500),
}.items()}
HUGE["random_bytes"] = random.Random(0).randbytes(MEGA)
HUGE["too_big"] = b"#" * (8 * MEGA)


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_sources_answer_in_time(name, tmp_path):
    path = tmp_path / "huge.snn"
    path.write_bytes(HUGE[name])
    result = answer(lambda: compile_source(path, {}, recipe="sdt"), seconds=30)
    if isinstance(result, SnncError):
        assert result.loc is not None or "bytes" in result.message, render(result)


@cases(50)
@given(st.binary(max_size=200))
def test_file_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("bytes") / "net.snn"
    path.write_bytes(blob)
    answer(lambda: read_source(path))


# ------------------------------------------------------------------ recipes and --set
@st.composite
def recipe_strings(draw) -> str:
    def value():
        return draw(st.sampled_from(["1", "0", "-3", "0.5", "1e999", "true", "[]", "[(2,3)]", "[(2, 3, 0.1)]",
                                     "x", "layer2.0", "[1, 2]", "(1,)", "9" * 60, "[[[[1]]]]"]))

    calls = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(RECIPES) + ["sml2", "", "tet tet", "two("]))
        params = [p.name for p in RECIPES[name].params] if name in RECIPES else []
        args = [f"{draw(st.sampled_from(params + ['zzz']))}={value()}" if draw(st.booleans()) else value()
                for _ in range(draw(st.integers(0, 3)))]
        calls.append(f"{name}({', '.join(args)})" if args or draw(st.booleans()) else name)
    text = "+".join(calls)
    toks = tokens(text)
    if toks and draw(st.booleans()):
        i = draw(st.integers(0, len(toks) - 1))
        toks[i:i + draw(st.integers(0, 1))] = [draw(st.sampled_from(VOCAB))]
        text = "".join(toks)
    return text


@cases(100)
@given(recipe_strings() | st.text(max_size=80))
def test_recipe_strings(text):
    answer(lambda: parse_recipe(text))


@cases(100)
@given(st.text(max_size=40) | st.sampled_from(["1e999", "nan", "-inf", "9" * 5000, "0x10", "1_000", " 4 ", "True"]))
def test_set_values(text):
    result = answer(lambda: parse_override("T", text))
    assert isinstance(result, (SnncError, bool, int, float))


@cases(30)
@given(st.dictionaries(st.sampled_from(["T", "width", "classes", "nope", "", "__class__"]),
                       st.sampled_from(["0", "1", "2", "-1", "3.5", "true", "1e9", "abc", "16"]), max_size=3))
def test_set_overrides_compile(overrides):
    result = answer(lambda: compile_source(ROOT / "models" / "digits.snn", overrides, recipe="sdt"))
    assert isinstance(result, SnncError) or result.graph.network == "digits"


# ------------------------------------------------------------------ data paths
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "train", "test"]

@st.composite
def data_specs(draw, folder: Path) -> str:
    kind = draw(st.sampled_from(["digits", "synthetic", "cifar10", "cifar100", "dvs", "imagenet", ""]))
    if draw(st.booleans()):
        return kind
    where = draw(st.sampled_from(["missing", "file", "garbage", "text"]))
    if where == "text":
        path = draw(st.text(max_size=30))
    elif where == "missing":
        path = str(folder / "no" / "such")
    else:
        sub = folder / draw(st.sampled_from(["a", "b", "c"]))
        sub.mkdir(exist_ok=True)
        for name in CIFAR_FILES:  # empty (truncated) batches; other pickles: test_cifar_batches_of_other_pickles
            (sub / name).write_bytes(b"")
        for name in ("train.pt", "test.pt"):
            (sub / name).write_bytes(draw(st.binary(max_size=64)) if where == "garbage" else b"")
        path = str(sub if where == "garbage" else sub / "train.pt")
    # synthetic:N allocates N + N/4 samples of 3x32x32 floats: keep N small here (see the report on limits)
    if kind == "synthetic" and path.isdigit() and int(path) > 4096:
        path = "4096"
    return f"{kind}:{path}"


@cases(80)
@given(st.data())
def test_data_specs(tmp_path_factory, drawn):
    spec = drawn.draw(data_specs(tmp_path_factory.mktemp("data")))
    result = answer(lambda: data.load(spec), seconds=60)
    assert isinstance(result, (SnncError, data.Data))


# Found by fuzzing the CIFAR reader with pickle-shaped bytes: each must be a data error, not a
# TypeError, OverflowError, MemoryError or RuntimeError traceback.
OTHER_PICKLES = {
    "int": pickle.dumps(5),
    "bytes_data": pickle.dumps({b"data": b"abc", b"labels": [0]}),
    "wrong_shape": pickle.dumps({b"data": [[1, 2]], b"labels": [0]}),
    "overflow": b"\x80\x02\x8e14\xfd\xde\xbc\xf6-\xd3",
    "type_error": b"\x80\x02}\x98",
}


@pytest.mark.parametrize("name", sorted(OTHER_PICKLES))
def test_cifar_batches_of_other_pickles(tmp_path, name):
    for file in CIFAR_FILES:
        (tmp_path / file).write_bytes(OTHER_PICKLES[name])
    assert isinstance(answer(lambda: data.load(f"cifar10:{tmp_path}")), SnncError)


# ------------------------------------------------------------------ checkpoints and weights
class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _payload_files(folder: Path) -> dict[str, bytes]:
    marker = folder / "pwned"
    raw = pickle.dumps({"format": checkpoint.FORMAT, "model": Payload(marker)})
    buf = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, "model": Payload(marker)}, buf)  # torch's zip format, same payload
    return {"raw.pt": raw, "zip.pt": buf.getvalue()}


def test_payload_is_live_but_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    files = _payload_files(tmp_path)
    for name, blob in files.items():
        path = tmp_path / name
        path.write_bytes(blob)
        for load in (checkpoint.load, weights.load_state_dict):
            assert isinstance(answer(lambda: load(path)), SnncError)
            assert not marker.exists(), f"{load.__module__}.{load.__name__} ran code from {name}"
    pickle.loads(files["raw.pt"])  # the control: plain unpickling does run the payload
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(io.BytesIO(files["zip.pt"])) as z:
        pickle.loads(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
    assert marker.exists()


@pytest.mark.parametrize("state, shown", [
    ({3: torch.zeros(2)}, "3"),
    ({"w": torch.zeros(2, 2).to_sparse()}, "'w'"),
    ({"w": torch.zeros(4, device="meta")}, "'w'"),
    ({"w": torch.zeros(1).expand(10_000)}, "'w'"),
])
def test_weights_of_another_form_are_a_diagnostic(tmp_path, state, shown):
    torch.save(state, tmp_path / "w.pt")
    err = answer(lambda: weights.load_state_dict(tmp_path / "w.pt"))
    assert isinstance(err, SnncError) and f"holds entries a state dict does not: {shown}" in str(err), err


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ck") / "checkpoint.pt"
    checkpoint.save_atomic({"model": torch.nn.Linear(4, 3).state_dict(), "epoch": 1}, path)
    return path.read_bytes()


@cases(100)
@given(st.data())
def test_checkpoint_bytes(tmp_path_factory, real_checkpoint, drawn):
    kind = drawn.draw(st.sampled_from(["random", "truncated", "flipped"]))
    if kind == "random":
        blob = drawn.draw(st.binary(max_size=2000))
    elif kind == "truncated":
        blob = real_checkpoint[:drawn.draw(st.integers(0, len(real_checkpoint) - 1))]
    else:
        blob = bytearray(real_checkpoint)
        for _ in range(drawn.draw(st.integers(1, 8))):
            blob[drawn.draw(st.integers(0, len(blob) - 1))] ^= 1 << drawn.draw(st.integers(0, 7))
        blob = bytes(blob)
    folder = tmp_path_factory.mktemp("ckf")
    for name in ("checkpoint.pt", "weights.safetensors"):
        (folder / name).write_bytes(blob)
    ck = answer(lambda: checkpoint.load(folder / "checkpoint.pt"))
    if kind != "flipped":  # a flipped bit may land in padding and leave a valid file
        assert isinstance(ck, SnncError)
    for name in ("checkpoint.pt", "weights.safetensors"):
        state = answer(lambda: weights.load_state_dict(folder / name))
        assert isinstance(state, SnncError) or all(isinstance(v, torch.Tensor) for v in state.values())


# ------------------------------------------------------------------ named-recipe graphs
# Definitions `recipe rI = ...` naming built-in recipes and each other: chains, doubling, cycles and
# random graphs. A small recursive reference says which must work; every other one must be a located
# error, and every answer comes within the alarm (the old expansion hung on 2**26 calls).
BARE = ["sdt", "tet", "sml", "msg", "cpng", "two"]  # built-in recipes that bind without arguments


def network_with(definitions: dict[str, list[str]]) -> str:
    lines = "".join(f"  recipe {name} = {' + '.join(calls)}\n" for name, calls in definitions.items())
    return ZOO["digits"].replace("  input ", lines + "  input ", 1)


def reference_expansion(definitions: dict[str, list[str]], name: str, depth: int = 0, path=()) -> list[str] | None:
    """The built-in calls `name` stands for, or None where snnc must refuse (cycle, too deep, too many calls)."""
    if name not in definitions:
        return [name]
    if name in path or depth >= MAX_RECIPE_DEPTH:
        return None
    out: list[str] = []
    for call in definitions[name]:
        inner = reference_expansion(definitions, call, depth + 1, path + (name,))
        if inner is None or len(out) + len(inner) > MAX_RECIPE_CALLS:
            return None
        out += inner
    return out


def reference_ok(definitions: dict[str, list[str]], name: str) -> bool:
    calls = reference_expansion(definitions, name)
    return calls is not None and len(set(calls)) == len(calls) and not {"sdt", "tet"} <= set(calls)


@st.composite
def recipe_graphs(draw) -> tuple[str, dict[str, list[str]]]:
    family = draw(st.sampled_from(["chain", "doubling", "cycle", "dag"]))
    if family == "chain":  # r0 = r1, ..., rN = a built-in one
        n = draw(st.integers(1, 40) | st.integers(1, 1200))
        defs = {f"r{i}": [f"r{i + 1}"] for i in range(n)}
        defs[f"r{n}"] = [draw(st.sampled_from(BARE))]
    elif family == "doubling":  # rI = rJ + rJ: 2**N calls
        n = draw(st.integers(1, 45))
        defs = {f"r{i}": [f"r{i + 1}", f"r{i + 1}"] for i in range(n)}
        defs[f"r{n}"] = [draw(st.sampled_from(BARE))]
    elif family == "cycle":  # r0 -> ... -> rN -> rK, with a built-in call on the way
        n = draw(st.integers(0, 40))
        defs = {f"r{i}": [f"r{i + 1}"] for i in range(n)}
        defs[f"r{n}"] = [f"r{draw(st.integers(0, n))}", draw(st.sampled_from(BARE))]
    else:  # random graphs: each name calls 1-3 later names or built-in ones; back edges make cycles
        n = draw(st.integers(1, 60))
        names = [f"r{i}" for i in range(n)]
        back = draw(st.booleans()) and draw(st.booleans())
        defs = {name: [draw(st.sampled_from((names if back else names[i + 1:]) + BARE))
                       for _ in range(draw(st.integers(1, 3)))] for i, name in enumerate(names)}
    return family, defs


@cases(120)
@given(recipe_graphs(), st.data())
def test_named_recipe_graphs(graph, drawn):
    from hypothesis import event

    from snnc.frontend import parse_network
    from snnc.recipes import check_definitions

    family, defs = graph
    name = drawn.draw(st.sampled_from(sorted(defs)))
    net = answer(lambda: parse_network(network_with(defs), "fuzz.snn"), seconds=10)
    assert not isinstance(net, SnncError), render(net)
    named = {r.name: r for r in net.recipes}
    result = answer(lambda: parse_recipe(name, named), seconds=10, located=True)
    ok = reference_ok(defs, name)
    assert isinstance(result, SnncError) != ok, (family, name, render(result) if not ok else result)
    if ok:
        assert result.slug() == "+".join(n for n in CANONICAL_ORDER if n in reference_expansion(defs, name))
    checked = answer(lambda: check_definitions(net.recipes), seconds=10, located=True)
    assert isinstance(checked, SnncError) != all(reference_ok(defs, n) for n in defs)
    event(f"{family}: {outcome(result)}")


def outcome(result) -> str:
    """A result's kind for --hypothesis-show-statistics: ok, or the error without its names."""
    if not isinstance(result, SnncError):
        return "ok"
    return "error: " + re.sub(r"'[^']*'", "X", result.message).split(":")[0]


# ------------------------------------------------------------------ out-of-range numbers: train.py and --set
TRAIN_FLAGS = ["--batch-size", "--eval-batch-size", "--epochs", "--stop-after", "--warmup-epochs", "--seed",
               "--workers", "--lr", "--weight-decay"]
# The documented bounds (docs/training.md), stated here independently of options.py.
WITHIN = {"--batch-size": lambda v: 1 <= v <= 65536, "--eval-batch-size": lambda v: 1 <= v <= 65536,
          "--epochs": lambda v: 1 <= v <= 100_000, "--stop-after": lambda v: 1 <= v <= 100_000,
          "--warmup-epochs": lambda v: 0 <= v <= 100_000, "--seed": lambda v: 0 <= v < 2**32,
          "--workers": lambda v: v >= 0, "--lr": lambda v: 0 < v < float("inf"),
          "--weight-decay": lambda v: 0 <= v < float("inf")}


@cases(150)
@given(st.sampled_from(TRAIN_FLAGS),
       st.one_of(st.integers(-2**70, 2**70), st.integers(-3, 70_000), st.floats(allow_nan=True),
                 st.sampled_from(["nan", "inf", "-inf", "1e9", "1e999", "0x10", "", "1_000", " 7 "])))
def test_train_py_numeric_options(flag, value):
    from hypothesis import event

    from snnc.runtime.options import TrainSpec, available_cpus, make_parser, validate

    spec = TrainSpec("net", "sdt", "sdt", 4, "image", (1, 8, 8), 10, ["stem.lif"])
    parser = make_parser(spec)
    parser.exit = lambda status=0, message=None: (_ for _ in ()).throw(ValueError(message))  # no SystemExit
    try:
        with time_limit(5):
            args = parser.parse_args([flag, str(value)])
    except ValueError:
        event("refused by argparse")
        return
    name = flag[2:].replace("-", "_")
    given_value = getattr(args, name)
    found = answer(lambda: validate(args, spec), seconds=5)
    assert isinstance(found, list) and all(isinstance(p, str) and p.startswith("--") for p in found)
    assert (not found) == WITHIN[flag](given_value), (flag, value, found)
    assert args.workers <= available_cpus() or found
    event("accepted" if not found else "refused by validate")


@cases(80)
@given(st.sampled_from(["T", "width", "classes"]),
       st.one_of(st.integers(-10, 2**64), st.sampled_from([10**k for k in range(3, 13)]),
                 st.floats(), st.sampled_from(["1e8", "1e9", "2e9", "9" * 30, "1e999", "nan"])))
def test_set_out_of_range(name, value):
    from hypothesis import event

    result = answer(lambda: compile_source(ROOT / "models" / "digits.snn", {name: str(value)}), seconds=20)
    if isinstance(result, SnncError):
        assert result.loc is not None or "--set" in result.message, render(result)
        event("too large" if "too large" in result.message else "other error")
    else:
        fp = footprint(result.graph)
        assert fp.param_bytes <= MAX_PARAM_BYTES and fp.activation_bytes <= MAX_ACTIVATION_BYTES
        event("compiled")


# ------------------------------------------------------------------ huge widths and inputs
WIDTH_SITES = {  # digits.snn text -> a template with {n}
    "stem": ("conv(width, 3)", "conv({n}, 3)"),
    "block": ("main = conv(c, 3, stride)", "main = conv({n}, 3, stride) -> conv(c, 1)"),
    "head": ("fc(classes)", "fc({n}) -> fc(classes)"),
    "classes": ("classes = 10", "classes = {n}"),
    "input": ("input image[1, 8, 8]", "input image[1, {n}, {n}]"),
    "channels": ("input image[1, 8, 8]", "input image[{n}, 8, 8]"),
    "T": ("T = 4", "T = {n}"),
}


@cases(80)
@given(st.sampled_from(sorted(WIDTH_SITES)), st.integers(0, 40), st.sampled_from(["sdt", "sml", "sml(k = 100000)"]))
def test_huge_widths(site, exponent, recipe):
    from hypothesis import event

    old, new = WIDTH_SITES[site]
    n = 10 ** (exponent // 4) * (1, 2, 3, 7)[exponent % 4]
    result = compile_text(ZOO["digits"].replace(old, new.format(n=n)), recipe=recipe)  # located, if an error
    if isinstance(result, SnncError):
        event("too large" if "too large to train" in result.message else "other error")
    else:
        fp = footprint(result.graph)
        assert fp.param_bytes <= MAX_PARAM_BYTES and fp.activation_bytes <= MAX_ACTIVATION_BYTES
        event("compiled")


@cases(40)
@given(st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u2029\u3000", max_size=12))
def test_blank_recipes_are_located(text):
    result = answer(lambda: parse_recipe(text), located=True)
    assert isinstance(result, SnncError) and result.message == "the recipe is empty"
