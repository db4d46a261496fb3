"""Run folders edited or damaged after training: every field is checked before use.

Each case changes one thing in a copy of a trained run, then exports it (and resumes it where the
field matters there): the result is a diagnostic naming the file, exit 1, no traceback, nothing
written, and no allocation sized by the tampered value.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clirun import ROOT
from snnc.cli.main import main
from snnc.runtime import checkpoint

DIGITS = str(ROOT / "models" / "digits.snn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tampered")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["compile", DIGITS, "--recipe", "two(warmup=0)+tet", "--set", "width=8", "-o", str(tmp / "build")]) == 0
    assert main(["train", str(tmp / "build"), "--out", str(tmp / "run"), "--epochs", "2", "--quiet"]) == 0
    torch.set_num_threads(before)
    return tmp


def _edit_ir(run: Path, pattern: str, replacement: str) -> None:
    path = run / "model.ir"
    text, n = re.subn(pattern, replacement, path.read_text(), count=1)
    assert n == 1, pattern
    path.write_text(text)


def _edit_manifest(run: Path, **fields) -> None:
    path = run / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def _edit_checkpoint(run: Path, edit) -> None:
    state = checkpoint.load(run / "checkpoint.pt")
    edit(state)
    checkpoint.save_atomic({k: v for k, v in state.items() if k != "format"}, run / "checkpoint.pt")


def _nan_decode(state):
    state["model"]["decode.f"] = torch.tensor([1.0, float("nan"), 1.0, float("inf")])


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


CASES = {
    "a reset mode that is code": (lambda r: _edit_ir(r, r"reset=hard", "reset=torch.os.sep"), "not valid snnc IR"),
    "a surrogate parameter that is a name": (lambda r: _edit_ir(r, r"triangle\(beta=1\.0\)", "triangle(beta=x)"),
                                             "not valid snnc IR"),
    "a malformed node name": (lambda r: _edit_ir(r, r"%stem\.conv =", "%stem..conv ="), "not valid snnc IR"),
    "classes as a string": (lambda r: _edit_manifest(r, classes="10"), "field 'classes'"),
    "a network name that is code": (lambda r: _edit_manifest(r, network="__import__('os')"), "field 'network'"),
    "input dims of a billion": (lambda r: _edit_manifest(r, input={"kind": "image", "dims": [1, 10**9, 8]}),
                                "field 'input'"),
    "a preprocess scale of infinity": (lambda r: _edit_manifest(r, data={"spec": "digits", "preprocess": {
        "scale": float("inf"), "mean": [0.0], "std": [1.0]}}), "data.preprocess is malformed"),
    "a preprocess mean of 400 digits": (lambda r: _edit_manifest(r, data={"spec": "digits", "preprocess": {
        "scale": 1.0, "mean": [10**400], "std": [1.0]}}), "data.preprocess is malformed"),
    "a manifest nested 100,000 deep": (lambda r: (r / "manifest.json").write_text("[" * 100_000),
                                       "nests deeper than any snnc file"),
    "T of a billion in the checkpoint": (lambda r: _edit_checkpoint(r, _set("T", 10**9)), "field 'T'"),
    "epoch as a string": (lambda r: _edit_checkpoint(r, _set("epoch", "2")), "field 'epoch'"),
    "a schedule of the wrong form": (lambda r: _edit_checkpoint(r, _set("schedule", [[4, 2]])), "field 'schedule'"),
    "an epoch order of the wrong form": (lambda r: _edit_checkpoint(r, _set("epoch_order", [["--seed", 0]])),
                                         "field 'epoch_order'"),
    "a sparse weight": (lambda r: _edit_checkpoint(r, lambda s: s["model"].__setitem__(
        "decode.f", s["model"]["decode.f"].to_sparse())), "field 'model'"),
    "metrics holding a tensor": (lambda r: _edit_checkpoint(r, _set("metrics", {"test_acc": torch.tensor(0.5)})),
                                 "field 'metrics'"),
    "diverged TWO weights": (lambda r: _edit_checkpoint(r, _nan_decode), "'decode.f' holds 2 non-finite"),
    "a diverged BN variance": (lambda r: _edit_checkpoint(
        r, lambda s: s["model"].__setitem__("stem_bn.running_var", -torch.ones(8))), "non-finite"),
}
RESUMED = {"T of a billion in the checkpoint", "epoch as a string", "a reset mode that is code",
           "a schedule of the wrong form", "an epoch order of the wrong form"}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_run_is_refused_before_anything_is_written(case, trained, tmp_path, capsys):
    tamper, message = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    tamper(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "deploy"), "--check-data", "digits"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "deploy").exists()
    if case in RESUMED:
        assert main(["train", str(trained / "build"), "--out", str(run), "--resume", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error:" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def _moment_of_another_shape(state):
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"] = torch.zeros(3, 3, 3)


RESUME_CASES = {
    "no optimizer state": lambda s: s.pop("optimizer"),
    "an optimizer state that is a string": _set("optimizer", "adamw"),
    "no parameter groups": lambda s: s["optimizer"].__setitem__("param_groups", []),
    "no schedule state": lambda s: s.pop("scheduler"),
    "hooks as a list": _set("hooks", []),
    "a moment of another shape": _moment_of_another_shape,
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_a_damaged_optimizer_state_is_a_diagnostic_on_resume(case, trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    _edit_checkpoint(run, RESUME_CASES[case])
    capsys.readouterr()
    assert main(["train", str(trained / "build"), "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err and "checkpoint.pt" in err, err
    assert checkpoint.load(run / "checkpoint.pt")["epoch"] == 2  # no epoch trained on it


@pytest.mark.parametrize("field", ["epoch", "batch"])
def test_a_position_past_the_run_is_a_diagnostic_on_resume(field, trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    _edit_checkpoint(run, _set(field, 10**9))
    capsys.readouterr()
    assert main(["train", str(trained / "build"), "--out", str(run), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"field '{field}' is 1000000000" in err and "Traceback" not in err, err


def test_a_run_ir_past_the_size_limits_is_refused_as_at_compile(trained, tmp_path, capsys, monkeypatch):
    # The same network on 8192x8192 inputs (compiled with the override): the weights still fit, but
    # one sample would take gigabytes, which export's check would allocate.
    big = tmp_path / "big.snn"
    big.write_text(Path(DIGITS).read_text().replace("input image[1, 8, 8]", "input image[1, 8192, 8192]"))
    monkeypatch.setenv("SNNC_ALLOW_LARGE", "1")
    assert main(["compile", str(big), "--recipe", "two(warmup=0)+tet", "--set", "width=8", "-o",
                 str(tmp_path / "bigbuild")]) == 0
    monkeypatch.delenv("SNNC_ALLOW_LARGE")
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    shutil.copy(tmp_path / "bigbuild" / "model.ir", run / "model.ir")
    _edit_manifest(run, input={"kind": "image", "dims": [1, 8192, 8192]})
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "deploy"), "--check-data", "synthetic:8"]) == 1
    err = capsys.readouterr().err
    assert "model.ir: network 'digits' is too large to train" in err and "Traceback" not in err, err


def test_non_finite_numbers_never_reach_generated_code():
    from snnc.backends.torch.lower import float_literal

    assert float_literal(0.1) == "0.1"
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="non-finite"):
            float_literal(bad)


def test_raw_inputs_give_the_trained_accuracy_in_a_fresh_process(trained, tmp_path):
    """deploy/model.py preprocesses raw digits itself (the manifest records how)."""
    assert main(["export", str(trained / "run"), "-o", str(tmp_path / "deploy")]) == 0
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["input"]["preprocess"]["scale"] == 1 / 16
    script = """
import sys, numpy as np, torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
sys.path.insert(0, sys.argv[1])
from model import load_model, predict
bunch = load_digits()
_, test = train_test_split(np.arange(len(bunch.target)), test_size=0.25, stratify=bunch.target, random_state=0)
raw = torch.tensor(bunch.images[test], dtype=torch.float32).unsqueeze(1)   # grey levels 0..16
y = torch.tensor(bunch.target[test])
print(float((predict(load_model(), raw, raw=True) == y).float().mean()))
print(float((predict(load_model(), raw) == y).float().mean()))
"""
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "deploy")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    with_preprocessing, without = (float(v) for v in out.stdout.split())
    assert with_preprocessing == pytest.approx(manifest["metrics"]["test_acc"], abs=1e-6)
    assert without < with_preprocessing  # raw pixels fed as if preprocessed lose accuracy


# ------------------------------------------------------------------ fuzz
from hypothesis import given, strategies as st  # noqa: E402

from test_fuzz import answer, cases  # noqa: E402

ODD_VALUES = [0, -1, 1, 2, 10**9, 10**30, 0.5, 1e308, "10", "", "torch.os.sep", "__import__('os')", None, True,
              [], [1, 2], {}, {"kind": "image"}, "nan"]
IR_TOKENS = ["1e999", "-1", "0", "nan", "torch.os.sep", "x", "[]", "[1, 2]", "%", "%nope", "{", "}", "(", ")",
             "triangle(beta=x)", "reset=soft", "out=0", "k=100000", ":", "[T,B]", "\\n"]


def _mutate_ir(text: str, rng) -> str:
    lines = text.splitlines()
    i = rng.randrange(len(lines))
    how = rng.choice(["token", "delete", "duplicate", "swap"])
    if how == "token":
        words = lines[i].split(" ")
        words[rng.randrange(len(words))] = rng.choice(IR_TOKENS)
        lines[i] = " ".join(words)
    elif how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    else:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


@cases(40)
@given(st.sampled_from(["ir", "manifest", "checkpoint", "tensor"]), st.randoms(use_true_random=False), st.data())
def test_fuzzed_run_folders_give_an_export_or_a_diagnostic(trained, tmp_path_factory, part, rng, drawn):
    run = tmp_path_factory.mktemp("fuzzed") / "run"
    shutil.copytree(trained / "run", run)
    if part == "ir":
        (run / "model.ir").write_text(_mutate_ir((run / "model.ir").read_text(), rng))
    elif part == "manifest":
        key = drawn.draw(st.sampled_from(["network", "recipe", "classes", "input", "params", "snnc_version",
                                          "schedule", "data", "kind", "source"]))
        _edit_manifest(run, **{key: drawn.draw(st.sampled_from(ODD_VALUES))})
    elif part == "checkpoint":
        key = drawn.draw(st.sampled_from(["network", "recipe", "epoch", "batch", "T", "stage", "schedule", "metrics",
                                          "model", "params"]))
        _edit_checkpoint(run, _set(key, drawn.draw(st.sampled_from(ODD_VALUES))))
    else:
        def tensor(state):
            name = drawn.draw(st.sampled_from(sorted(state["model"])))
            state["model"][name] = drawn.draw(st.sampled_from([
                torch.zeros(3), torch.full_like(state["model"][name].float(), float("nan")),
                torch.ones(2, 2, dtype=torch.int64), torch.empty(0)]))
        _edit_checkpoint(run, tensor)
    deploy = run.parent / "deploy"
    code = answer(lambda: main(["export", str(run), "-o", str(deploy)]), seconds=30)
    assert code in (0, 1)  # never 70 (an internal error)
    assert deploy.exists() == (code == 0)
    code = answer(lambda: main(["train", str(trained / "build"), "--out", str(run), "--resume", "--quiet"]),
                  seconds=60)
    assert code in (0, 1)


def test_a_refused_unsafe_checkpoint_is_reported_in_whole_words(tmp_path):
    import pickle

    from snnc.diagnostics import SnncError, brief

    class Payload:
        def __reduce__(self):
            return (print, ("never",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": checkpoint.FORMAT, "x": Payload()}, path, pickle_module=pickle)
    with pytest.raises(Exception) as original:
        torch.load(path, weights_only=True)
    full = " ".join(str(original.value).split())
    with pytest.raises(SnncError) as err:
        checkpoint.load(path)
    shown = err.value.message.split(f"{original.type.__name__}: ", 1)[1].rsplit(")", 1)[0]
    assert shown.endswith(" ...") and len(full) > len(shown)
    kept = shown[:-4]
    assert full.startswith(kept) and full[len(kept)] == " "  # cut between words, not inside one
    assert brief(ValueError("word " * 100), 30) == "ValueError: " + " ".join(["word"] * 6) + " ..."  # 29 of 30
