"""Bounds of the generated train.py's numeric options (snnc/runtime/options.py validate())."""

import subprocess
import sys

import pytest

from snnc.runtime.options import MAX_BATCH, MAX_EPOCHS, MAX_SEED, TrainSpec, available_cpus, make_parser, validate

SPEC = TrainSpec("net", "sdt", "sdt", 4, "image", (1, 8, 8), 10, ["stem.lif"])
TIT = TrainSpec("net", "tit", "tit", 4, "image", (1, 8, 8), 10, ["stem.lif"], stages=[(2, 1), (4, 1)])


def problems(*argv: str, spec: TrainSpec = SPEC) -> list[str]:
    return validate(make_parser(spec).parse_args(list(argv)), spec)


def test_defaults_and_sensible_values_pass():
    assert problems() == []
    assert problems("--batch-size", str(MAX_BATCH), "--epochs", str(MAX_EPOCHS), "--seed", str(MAX_SEED),
                    "--lr", "10", "--weight-decay", "0", "--warmup-epochs", "0", "--stop-after", "1") == []


@pytest.mark.parametrize("flag,value,message", [
    ("--batch-size", "0", "--batch-size must be in [1, 65,536]"),
    ("--batch-size", "1000000000", "--batch-size must be in [1, 65,536]"),
    ("--eval-batch-size", str(MAX_BATCH + 1), "--eval-batch-size must be in"),
    ("--epochs", "0", "--epochs must be in [1, 100,000]"),
    ("--epochs", str(10**12), "--epochs must be in"),
    ("--stop-after", str(MAX_EPOCHS + 1), "--stop-after must be in"),
    ("--warmup-epochs", "-1", "--warmup-epochs must be in [0, 100,000]"),
    ("--warmup-epochs", str(10**9), "--warmup-epochs must be in"),
    ("--seed", "-1", "--seed must be in"),
    ("--seed", str(2**64), "--seed must be in"),
    ("--lr", "inf", "--lr must be a positive finite number"),
    ("--lr", "nan", "--lr must be a positive finite number"),
    ("--lr", "0", "--lr must be a positive finite number"),
    ("--weight-decay", "inf", "--weight-decay must be a finite number >= 0"),
    ("--weight-decay", "nan", "--weight-decay must be a finite number >= 0"),
    ("--weight-decay", "-0.1", "--weight-decay must be a finite number >= 0"),
    ("--workers", "-1", "--workers must be at least 0"),
    ("--threads", "0", "--threads must be at least 1"),
])
def test_out_of_range_values_are_usage_errors(flag, value, message):
    found = problems(flag, value)
    assert len(found) == 1 and found[0].startswith(message), found


def test_epochs_conflict_with_a_tit_schedule():
    assert problems("--epochs", "3", spec=TIT) == [
        "--epochs conflicts with the tit schedule in the recipe; change tit(stages=...) instead"]


def test_workers_are_capped_at_the_cpus_with_a_note(capsys):
    args = make_parser(SPEC).parse_args(["--workers", "100000"])
    assert validate(args, SPEC) == [] and args.workers == available_cpus()
    assert f"note: --workers 100000 is more than the {available_cpus()} CPUs available" in capsys.readouterr().err
    args = make_parser(SPEC).parse_args(["--workers", "1"])
    assert validate(args, SPEC) == [] and args.workers == 1 and capsys.readouterr().err == ""


def test_train_py_answers_a_huge_batch_with_a_usage_error(tmp_path):
    from trainkit import build

    out, _ = build(tmp_path, "digits", "sdt")
    r = subprocess.run([sys.executable, str(out / "train.py"), "--batch-size", "1000000000", "--lr", "inf",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--batch-size must be in [1, 65,536]; --lr must be a positive finite number" in r.stderr
    assert not (tmp_path / "run").exists()


def test_threads_are_set_deliberately(monkeypatch):
    import torch

    from snnc.runtime.setup import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("snnc.runtime.setup.available_cpus", lambda: 8)
        torch.set_num_threads(4)  # torch's default: more than the share below, less than the CPUs
        for local, want in (("1", 4), ("4", 2), ("16", 1)):
            monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
            args = make_parser(SPEC).parse_args([])
            assert set_threads(args) == want == args.threads == torch.get_num_threads()
        args = make_parser(SPEC).parse_args(["--threads", "3"])
        assert set_threads(args) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_train_py_sets_openmp_up_before_torch_and_keeps_the_users_setting(tmp_path):
    import os

    from snnc.compiler import compile_to

    for loop in ("trainer", "inline"):
        compile_to("models/digits.snn", "tet", tmp_path / loop, loop=loop)
        lines = (tmp_path / loop / "train.py").read_text().splitlines()
        imports = [i for i, line in enumerate(lines) if line.startswith(("import ", "from "))]
        assert lines[imports[0]].startswith("import snnc.runtime.openmp"), loop
    probe = "import snnc.runtime.openmp, os, torch; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "10000"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "GOMP_SPINCOUNT": "7"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "7"
