"""The `snnc` command line through a subprocess: exit codes, help, formats."""

import json
import shlex

import pytest

from clirun import ROOT, snnc
from snnc import __version__
from snnc.ir.textparse import parse

COMMANDS = ["check", "ir", "info", "passes"]


def test_version():
    r = snnc("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"snnc {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = snnc(command, "--help")
    assert r.returncode == 0 and "usage: snnc " + command in r.stdout


def test_check_the_whole_zoo():
    models = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "models").glob("*.snn"))
    r = snnc("check", *models)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok") == len(models)


def test_user_error_exit_1_without_traceback():
    r = snnc("check", "tests/diagnostics/bad_unknown_op.snn")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("tests/diagnostics/bad_unknown_op.snn:3:28: error: unknown op or block 'lfi'")
    assert "hint: did you mean 'lif'?" in r.stderr


def test_debug_shows_the_traceback():
    r = snnc("check", "--debug", "tests/diagnostics/bad_unknown_op.snn")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_check_reports_every_bad_file_and_continues():
    r = snnc("check", "models/digits.snn", "tests/diagnostics/bad_unknown_op.snn", "tests/diagnostics/bad_empty.snn")
    assert r.returncode == 1
    assert "models/digits.snn: ok" in r.stdout
    assert r.stderr.count(": error: ") == 2


def test_missing_file_is_a_user_error():
    r = snnc("info", "models/nope.snn")
    assert r.returncode == 1 and "error: no such file: models/nope.snn" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["ir"], ["check"], ["frobnicate"], ["ir", "models/toy.snn", "--format", "xml"],
                                  ["info", "models/toy.snn", "--set", "L"]])
def test_usage_errors_exit_2(args):
    r = snnc(*args)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_unknown_set_name():
    r = snnc("info", "models/toy.snn", "--set", "depth=3")
    assert r.returncode == 1
    assert "--set depth: network 'toy' has no parameter 'depth'" in r.stderr


def test_info_json_and_set():
    r = snnc("info", "models/toy.snn", "--json", "--set", "L=13")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["params"]["L"] == 13 and data["lif_layers"] == 16 and data["classes"] == 10


def test_ir_text_parses_back():
    r = snnc("ir", "models/digits.snn")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# snnc-ir v1 after fuse-lif")  # the default recipe, sdt, runs to the end
    assert parse(r.stdout).network == "digits"


def test_ir_all_shows_every_step():
    r = snnc("ir", "models/digits.snn", "--all")
    assert r.returncode == 0
    for step in ("build", "expand-blocks", "annotate-surrogate", "attach-loss", "fuse-lif"):
        assert f"after {step}" in r.stdout


def test_ir_after_unknown_pass():
    r = snnc("ir", "models/digits.snn", "--after", "expand-block")
    assert r.returncode == 1 and "did you mean 'expand-blocks'?" in r.stderr


def test_ir_json_and_dot():
    r = snnc("ir", "models/digits.snn", "--format", "json")
    data = json.loads(r.stdout)
    assert data["output"] == "head.fc" and any(n["op"] == "lif" for n in data["nodes"])
    r = snnc("ir", "models/digits.snn", "--format", "dot")
    assert r.stdout.startswith('digraph "digits"') and '"stem.conv" -> "stem.bn";' in r.stdout


def test_passes_lists_expand_blocks():
    r = snnc("passes")
    assert r.returncode == 0 and "expand-blocks" in r.stdout


def test_run_compiles_trains_and_exports(tmp_path):
    r = snnc("run", str(ROOT / "models" / "digits.snn"), "--recipe", "sml+tet", "--epochs", "1", "--data",
             "synthetic:64", "--", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[1/3] compiled digits" in r.stdout and "[3/3] exported runs/digits-sml+tet/deploy/" in r.stdout
    assert "predictions agree on 100.00%" in r.stdout
    assert (tmp_path / "build" / "digits-sml+tet" / "train.py").is_file()
    again = snnc("run", str(ROOT / "models" / "digits.snn"), "--recipe", "sml+tet", "--epochs", "1", "--data",
                 "synthetic:64", "--", "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and "runs/digits-sml+tet-2" in again.stdout  # an earlier run is kept


def test_train_help_works_without_a_folder():
    for argv in (["train", "--help"], ["train"]):
        r = snnc(*argv)
        assert r.returncode == 0 and "usage: snnc train DIR" in r.stdout and "--epochs" in r.stdout, r.stderr


@pytest.mark.parametrize("source, spec", [("models/digits.snn", "digits"), ("models/resnet18.snn", "cifar10:PATH"),
                                          ("models/vggsnn.snn", "nmnist:PATH"), ("models/mnist.snn", "mnist5k")])
def test_the_compile_hint_names_data_that_fits(tmp_path, source, spec):
    r = snnc("compile", source, "-o", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert f"--data {spec} " in r.stdout


def test_the_compile_hint_is_a_command_to_paste_for_any_folder_name(tmp_path):
    out = tmp_path / "my build ü's"
    r = snnc("compile", "models/digits.snn", "-o", str(out))
    assert r.returncode == 0, r.stderr
    hint = next(line for line in r.stdout.splitlines() if line.startswith("train it with:"))
    words = shlex.split(hint.split(":", 1)[1].split("(or:")[0])
    assert words[:3] == ["snnc", "train", str(out)], words
    assert shlex.split(hint.split("(or:")[1].rstrip(")"))[:2] == ["python", str(out / "train.py")]


def test_run_refuses_epochs_with_a_tit_schedule_before_compiling(tmp_path):
    r = snnc("run", str(ROOT / "models" / "digits.snn"), "--recipe", "tit(stages=[(2,1),(4,1)])", "--epochs", "3",
             cwd=tmp_path)
    assert r.returncode == 1 and "conflicts with the tit schedule" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--", "--out", "elsewhere"], "--out after -- would override"),
    (["--", "--data=synthetic:64"], "--data after -- would override"),
    (["--", "--batch-size", "8"], "--batch-size after -- would override"),
    (["--build-dir", "same", "--out", "same"], "overlap"),
    (["--build-dir", "b", "--out", "b/run"], "overlap"),
])
def test_run_refuses_paths_its_steps_would_disagree_on_before_any_work(tmp_path, argv, message):
    r = snnc("run", str(ROOT / "models" / "digits.snn"), *argv, cwd=tmp_path)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_and_train_share_their_defaults():
    from snnc.cli.build_commands import RUN_TRAIN_OPTIONS
    from snnc.cli.main import build_parser

    args = build_parser().parse_args(["run", "models/digits.snn"])
    assert all(getattr(args, name) is None for name in RUN_TRAIN_OPTIONS)  # train.py's defaults apply


def test_compile_reports_a_syntax_error_without_importing_torch(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.snn"
    bad.write_text("network n(T = 4) {\n  input image[1, 8, 8]\n  s = conv(8, 3) ->\n}\n")
    script = ("import sys\nfrom snnc.cli.main import main\n"
              f"code = main(['compile', {str(bad)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
              "print(code, 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["1", "False"], r.stderr  # torch takes about a second to import
    assert "bad.snn:4:1: error" in r.stderr


def test_run_takes_a_memory_policy_and_compile_the_cpu_backend(tmp_path):
    r = snnc("run", str(ROOT / "models" / "digits.snn"), "--recipe", "tet", "--memory", "pack", "--epochs", "1",
             "--data", "synthetic:64", "--out", "r", "--", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["memory"] == "pack"
    r = snnc("compile", str(ROOT / "models" / "digits.snn"), "--backend", "cpu", "-o", "b", cwd=tmp_path)
    assert r.returncode == 0 and "BACKEND = 'cpu'" in (tmp_path / "b" / "model.py").read_text(), r.stderr
