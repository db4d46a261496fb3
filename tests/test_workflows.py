"""The life of a run, for every recipe: run, compile + train, stop + resume, export, check, NIR, report.

Each recipe is one test so the cells share their builds and runs; every command goes through
`snnc.cli.main.main`, exactly as the console script runs it, and an internal error (exit 70)
anywhere fails. The second half is the misuse matrix: each refusal leaves every byte of the
folders involved as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from clirun import ROOT
from snnc.cli.main import main

DIGITS = str(ROOT / "models" / "digits.snn")
SMALL = ["--set", "width=8"]
TIT = "tit(stages=[(2,1),(4,1)])"
RECIPES = ["sdt", "tet", "sml+tet", "cpng+tet", "msg+two(warmup=0)", f"{TIT}+tet", f"{TIT}+two(warmup=0)+tet",
           f"sml+cpng+msg+two(warmup=0)+tet+{TIT}"]  # the largest combination the recipes allow
NIR_REFUSALS = ("NIR cannot express",)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Single-threaded torch: two test workers with a pool each oversubscribe a small machine badly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Cli:
    """Runs `snnc ARGS` in this process; records each cell's outcome."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.table: dict[str, str] = {}

    def __call__(self, cell: str, *argv: str, expect=(0,)) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = self.capsys.readouterr()
        assert code != 70, f"{cell}: internal error\n{err}"
        assert code in expect, f"{cell}: exit {code}\n{out}\n{err}"
        self.table[cell] = "ok" if code == 0 else f"refused ({code})"
        return code, out, err


def _epochs(recipe: str) -> list[str]:
    return [] if "tit" in recipe else ["--epochs", "2"]


def _stable(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in rows]


def _model(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_command_works_for_every_recipe(recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = Cli(capsys)
    cli("run", "run", DIGITS, "--recipe", recipe, *SMALL, "--out", "by-run", "--build-dir", "build-run",
        *_epochs(recipe), "--", "--quiet")
    shipped = json.loads(Path("by-run/deploy/manifest.json").read_text())
    assert shipped["check"]["agreement"] == 1.0 and shipped["T"] == (4 if "tit" in recipe else 4)

    cli("compile", "compile", DIGITS, "--recipe", recipe, *SMALL, "-o", "build")
    cli("train", "train", "build", "--out", "run", "--quiet", *_epochs(recipe))
    assert _stable(Path("run")) == _stable(Path("by-run")), "snnc run and train.py trained differently"

    cli("stop", "train", "build", "--out", "resumed", "--quiet", "--stop-after", "1", *_epochs(recipe))
    assert len(_stable(Path("resumed"))) == 1
    cli("resume", "train", "build", "--out", "resumed", "--quiet", "--resume")
    a, b = _model(Path("run")), _model(Path("resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resume is not bit-identical"
    assert _stable(Path("resumed")) == _stable(Path("run"))

    cli("export", "export", "run", "-o", "deploy")
    _, out, _ = cli("check", "export", "run", "-o", "deploy-checked", "--check-data", "digits")
    assert "agree with the training model on 100.00%" in out
    code, _, err = cli("nir", "export", "run", "-o", "deploy-nir", "--nir", expect=(0, 1))
    if code == 1:
        assert any(reason in err for reason in NIR_REFUSALS), err
        assert not Path("deploy-nir").exists()
    else:
        assert Path("deploy-nir/model.nir").is_file()
    cli("report", "report", "run")
    assert Path("run/report/summary.md").is_file()
    with capsys.disabled():
        print(f"\n  {recipe}: " + ", ".join(f"{cell} {outcome}" for cell, outcome in cli.table.items()))


# ------------------------------------------------------------------ misuse
def _digest(*paths: Path) -> dict:
    """Every file and link under `paths`: content hashes, modes and link targets."""
    out = {}
    for root in paths:
        items = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
        for p in items:
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
            elif p.is_dir():
                out[str(p)] = ("dir", p.stat().st_mode)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits build and its two-epoch run, and a second build with another width."""
    tmp = tmp_path_factory.mktemp("misuse")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        for argv in (["compile", DIGITS, "--recipe", "tet", *SMALL, "-o", "build"],
                     ["compile", DIGITS, "--recipe", "tet", "--set", "width=4", "-o", "build-narrow"],
                     ["compile", DIGITS, "--recipe", "sdt", *SMALL, "-o", "build-sdt"],
                     ["compile", str(ROOT / "tests" / "fixtures" / "tiny.snn"), "--recipe", "tet", "-o", "build-tiny"],
                     ["train", "build", "--out", "run", "--epochs", "2", "--quiet"]):
            assert main(argv) == 0, argv
    finally:
        os.chdir(cwd)
    return tmp


MISUSE = {
    # name: (argv, message the refusal must contain, paths that must not change)
    "compile onto a run folder": (["compile", DIGITS, "-o", "run"], "holds a training run", ["run"]),
    "compile onto a deploy folder": (["compile", DIGITS, "-o", "run-deploy"], "holds a deployed model",
                                     ["run-deploy"]),
    "compile onto a foreign folder with a manifest": (["compile", DIGITS, "-o", "foreign"], "did not write",
                                                      ["foreign"]),
    "compile -o FILE": (["compile", DIGITS, "-o", "a-file"], "is a file", ["a-file"]),
    "compile -o FILE/sub": (["compile", DIGITS, "-o", "a-file/sub"], "is a file, so no folder", ["a-file"]),
    "compile -o a dangling link": (["compile", DIGITS, "-o", "dangling"], "does not exist", ["dangling"]),
    "compile -o .": (["compile", DIGITS, "-o", "."], "current folder", ["run", "build"]),
    "resume with another network": (["train", "build-tiny", "--out", "run", "--resume"], "network: the run trains",
                                    ["run"]),
    "resume with another recipe": (["train", "build-sdt", "--out", "run", "--resume"], "recipe: the run uses",
                                   ["run"]),
    "resume with another --set": (["train", "build-narrow", "--out", "run", "--resume"],
                                  "parameter width: the run has 8, this build 4", ["run"]),
    "train --out FILE": (["train", "build", "--out", "a-file"], "is a file", ["a-file"]),
    "train --out a foreign folder": (["train", "build", "--out", "foreign"], "training did not write", ["foreign"]),
    "train --out a build folder": (["train", "build", "--out", "build-sdt"], "not a training run", ["build-sdt"]),
    "train --out another tool's run folder": (["train", "build", "--out", "foreign-run"], "training did not write",
                                              ["foreign-run"]),
    "compile --force onto another tool's run folder": (["compile", DIGITS, "-o", "foreign-run", "--force"],
                                                       "did not write", ["foreign-run"]),
    "export a run with no checkpoint": (["export", "run-no-checkpoint", "-o", "deploy"], "no checkpoint",
                                        ["run-no-checkpoint"]),
    "export onto an existing file": (["export", "run", "-o", "a-file"], "is a file", ["a-file", "run"]),
    "export onto a foreign weights folder": (["export", "run", "-o", "foreign-weights"], "did not write",
                                             ["foreign-weights", "run"]),
    "export into the run it reads": (["export", "run", "-o", "run/deploy/.."], "which this command reads", ["run"]),
    "export onto a build folder": (["export", "run", "-o", "build"], "holds a build folder", ["build", "run"]),
    "export with check data that is missing": (["export", "run", "-o", "deploy", "--check-data", "cifar10:missing"],
                                               "cifar10", ["run"]),
    "report on a foreign folder": (["report", "foreign"], "not a training run folder", ["foreign"]),
    "report on a build folder": (["report", "build"], "not a training run folder", ["build"]),
    "report --force into the run it reads": (["report", "run", "-o", "run", "--force"], "which this command reads",
                                             ["run"]),
}


def _stage(root: Path) -> None:
    """The folders the misuse cases point at (fresh per case: a refusal must leave them as they are)."""
    (root / "a-file").write_text("a user's file\n")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "my project"}\n')
    (foreign / "metrics.jsonl.bak").write_text("{}\n")
    other_run = root / "foreign-run"  # another tool's training output: same file names, no snnc manifest
    other_run.mkdir()
    (other_run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (other_run / "checkpoint.pt").write_text("not ours\n")
    (other_run / "notes.txt").write_text("a user's notes\n")
    weights = root / "foreign-weights"
    weights.mkdir()
    (weights / "weights.safetensors").write_text("not ours\n")
    os.symlink(root / "nowhere", root / "dangling")


@pytest.mark.parametrize("case", list(MISUSE))
def test_misuse_is_refused_and_changes_nothing(case, trained, tmp_path, capsys, monkeypatch):
    argv, message, watched = MISUSE[case]
    for name in ("run", "build", "build-sdt", "build-narrow", "build-tiny"):
        shutil.copytree(trained / name, tmp_path / name, symlinks=True)
    shutil.copytree(trained / "run", tmp_path / "run-no-checkpoint")
    (tmp_path / "run-no-checkpoint" / "checkpoint.pt").unlink()
    _stage(tmp_path)
    monkeypatch.chdir(tmp_path)
    if case == "compile onto a deploy folder":
        assert main(["export", "run", "-o", "run-deploy"]) == 0
    capsys.readouterr()
    before = _digest(*(tmp_path / w for w in watched))
    listing = sorted(p.name for p in tmp_path.iterdir())
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in err and "internal error" not in err
    if message:
        assert message in err, err
    assert _digest(*(tmp_path / w for w in watched)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing, "a refused command left something behind"
