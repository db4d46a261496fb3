"""Surviving faults: SIGKILL at random instants (mid-checkpoint-write included), SIGTERM mid-epoch, torn metrics.

The long version of the kill loop is `python tests/soak/kill_resume.py` (not collected).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnc import outputs
from snnc.runtime import checkpoint
from trainkit import build, read_metrics, stable

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--data", "synthetic:64", "--batch-size", "16", "--lr", "0.02", "--quiet"]  # 4 batches per epoch
RECIPE = "sml(n=1)+msg+two(warmup=0)+cpng+tet"  # state in masks, output weights, beta records, aux branches


def test_sigkill_loop_always_resumes_to_the_uninterrupted_weights():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "soak" / "kill_resume.py"), "--kills", "10",
                           "--epochs", "4", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    print(tally)
    assert tally["problems"] == []
    assert tally["kills"] >= 10 and tally["sigkill"] >= 7 and tally["clean_stops"] >= 1
    assert tally["mid_write"] >= 1 and tally["torn_temporaries_rejected"] >= 1
    assert tally["resumes"] >= 3 and tally["epochs_lost_max"] <= 0
    assert tally["bitwise_equal"] and tally["metrics_equal"]
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(train module, folder, reference run of 3 epochs), single-threaded as the subprocess runs are."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("faults")
    _, mod = build(tmp, "digits", RECIPE, {"width": "4", "T": "2"})
    ref = tmp / "reference"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(ref)]) == 0
    yield mod, tmp, ref
    torch.set_num_threads(before)


def _same_run(a: Path, b: Path) -> None:
    wa, wb = (checkpoint.load(r / "checkpoint.pt")["model"] for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert stable(read_metrics(a)) == stable(read_metrics(b))


def test_sigterm_mid_epoch_saves_exits_143_and_resumes_bitwise(tiny, capsys):
    mod, tmp, ref = tiny
    run = tmp / "sigterm"
    real, calls = mod.compute_loss, {"n": 0}

    def loss_then_sigterm(outputs, aux, y):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, batch 2 of 4
            os.kill(os.getpid(), signal.SIGTERM)
        return real(outputs, aux, y)

    mod.compute_loss = loss_then_sigterm
    try:
        assert mod.main(ARGS + ["--epochs", "3", "--out", str(run)]) == 143
    finally:
        mod.compute_loss = real
    assert "stopped by SIGTERM after 1 epoch(s) and 2 batch(es)" in capsys.readouterr().err
    import threading

    # the 8 s backstop of a stuck batch must not outlive the run (it would end this very process)
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
    ck = checkpoint.load(run / "checkpoint.pt")
    assert (ck["epoch"], ck["batch"]) == (1, 2) and ck["sums"][2] == 32  # 2 batches of 16 counted so far
    assert len(read_metrics(run)) == 1 and not list(run.glob(checkpoint.TEMP_GLOB))
    # another batch size would skip other samples of the epoch: refused, nothing written
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--batch-size", "8"]) == 1
    assert "it ran with --batch-size 16 (now 8)" in capsys.readouterr().err
    # so would another seed (another permutation) or another training set
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--seed", "7"]) == 1
    assert "it ran with --seed 0 (now 7)" in capsys.readouterr().err
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--epochs", "1"]) == 1  # fewer than the run has done
    err = capsys.readouterr().err
    assert "--epochs 1: the run in" in err and "has done 1 epochs and 2 batches of the next already" in err, err
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--data", "synthetic:96"]) == 1
    err = capsys.readouterr().err
    assert "--data synthetic:64 (now synthetic:96), training samples 64 (now 96)" in err, err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    from snnc.cli.main import main as snnc_main  # the weights as they stand say where they stand

    assert snnc_main(["export", str(run), "-o", str(tmp / "deploy_mid_epoch")]) == 0
    assert "from epoch 1 and 2 batches of epoch 2" in capsys.readouterr().out
    assert json.loads((tmp / "deploy_mid_epoch" / "manifest.json").read_text())["checkpoint_batch"] == 2
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--resume"]) == 0
    _same_run(ref, run)


def _train_signalled(mod, out: Path, step: int, signals) -> int:
    """train.py's main for 3 epochs into `out`, sending `signals` to this process in training step
    `step` (1-based, over all epochs); its exit code."""
    real, calls = mod.compute_loss, {"n": 0}

    def loss_then_signal(outputs, aux, y):
        calls["n"] += 1
        if calls["n"] == step:
            for s in signals:
                os.kill(os.getpid(), s)
        return real(outputs, aux, y)

    mod.compute_loss = loss_then_signal
    try:
        return mod.main(ARGS + ["--epochs", "3", "--out", str(out)])
    finally:
        mod.compute_loss = real


def test_ctrl_c_mid_epoch_checkpoints_like_sigterm_and_twice_stops_at_once(tiny, capsys):
    mod, tmp, ref = tiny
    run = tmp / "ctrl_c"
    assert _train_signalled(mod, run, 6, [signal.SIGINT]) == 130  # epoch 2, batch 2 of 4
    err = capsys.readouterr().err
    assert "Ctrl-C: stopping after this batch" in err and "stopped by Ctrl-C after 1 epoch(s) and 2 batch(es)" in err
    ck = checkpoint.load(run / "checkpoint.pt")
    assert (ck["epoch"], ck["batch"]) == (1, 2)
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--resume"]) == 0
    _same_run(ref, run)
    # Twice in one batch: at once, with the epoch-1 checkpoint left as it was.
    twice = tmp / "ctrl_c_twice"
    assert _train_signalled(mod, twice, 6, [signal.SIGINT, signal.SIGINT]) == 130
    assert f"interrupted; the last checkpoint ({twice / 'checkpoint.pt'}) is kept" in capsys.readouterr().err
    ck = checkpoint.load(twice / "checkpoint.pt")
    assert (ck["epoch"], ck["batch"]) == (1, 0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    assert _train_signalled(mod, tmp / "ctrl_c_early", 2, [signal.SIGINT, signal.SIGINT]) == 130
    assert "interrupted; no checkpoint was written" in capsys.readouterr().err


def test_resume_between_epochs_may_change_the_data_and_says_so(tiny, capsys):
    mod, tmp, _ = tiny
    run = tmp / "new_data"
    assert mod.main(ARGS + ["--epochs", "2", "--out", str(run), "--stop-after", "1"]) == 0
    capsys.readouterr()
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--data", "synthetic:32"]) == 0
    assert "note: the run trained on --data synthetic:64 so far; it continues on synthetic:32" in capsys.readouterr().err
    ck = checkpoint.load(run / "checkpoint.pt")
    assert ck["epoch"] == 2 and ck["epoch_order"]["training samples"] == 32


def test_resume_with_another_batch_size_keeps_the_schedule_in_epochs(tiny, capsys):
    mod, tmp, _ = tiny
    run, fresh = tmp / "bigger_batch", tmp / "batch32"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "1"]) == 0  # 4 steps per epoch
    capsys.readouterr()
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--batch-size", "32"]) == 0  # 2 steps per epoch
    assert "the lr schedule at step 2 (the checkpoint counted 4 steps of another size)" in capsys.readouterr().err
    assert mod.main(ARGS + ["--epochs", "3", "--batch-size", "32", "--out", str(fresh)]) == 0
    resumed, reference = read_metrics(run), read_metrics(fresh)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert [r["lr"] for r in resumed[1:]] == pytest.approx([r["lr"] for r in reference[1:]])
    assert resumed[-1]["lr"] == pytest.approx(0.0, abs=1e-12) and resumed[1]["lr"] > 0.001


def test_a_second_training_into_a_busy_run_folder_is_refused(tiny, capsys):
    mod, tmp, ref = tiny
    run = tmp / "busy"
    shutil.copytree(ref, run)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    lock = outputs.lock_folder(run)  # as a training process holds it
    try:
        for extra in (["--resume", "--epochs", "4"], ["--force"]):
            assert mod.main(ARGS + ["--out", str(run), *extra]) == 1
            assert f"another process is training in {run}" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    finally:
        os.close(lock)
    assert mod.main(ARGS + ["--out", str(run), "--resume", "--epochs", "4"]) == 0  # free again
    lock = outputs.lock_folder(run)  # and released by the run that finished
    assert lock is not None
    os.close(lock)


def test_force_starts_over_without_the_old_runs_logs_deploy_and_report(tiny):
    mod, tmp, ref = tiny
    run = tmp / "forced"
    shutil.copytree(ref, run)
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"old curves")
    for name, manifest in (("deploy", "manifest.json"), ("report", "data.json")):
        (run / name).mkdir()
        (run / name / manifest).write_text(json.dumps({"kind": name}))
        (run / name / "summary.md").write_text("the old run")
    (run / "notes.txt").write_text("mine")
    (run / "tensorboard" / "README").write_text("mine too")
    assert mod.main(ARGS + ["--epochs", "1", "--out", str(run), "--force"]) == 0
    assert not (run / "deploy").exists() and not (run / "report").exists()
    assert [p.name for p in (run / "tensorboard").iterdir()] == ["README"]
    assert (run / "notes.txt").read_text() == "mine" and len(read_metrics(run)) == 1


def test_resume_runs_no_code_a_run_folder_names_unless_named_again(tiny, tmp_path, capsys):
    mod, tmp, ref = tiny
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    marker = tmp_path / "ran"
    factory = tmp_path / "factory.py"
    factory.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                       f"def make(train, **kw):\n    raise SystemExit('factory called')\n")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["train_args"]["data"] = f"py:{factory}:make"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as exit_:
        mod.main(["--out", str(run), "--resume", "--epochs", "4"])
    assert exit_.value.code == 2 and not marker.exists()
    assert "which runs Python code; give that --data again to run it" in capsys.readouterr().err


def test_resume_repairs_torn_and_missing_metrics_lines(tiny):
    mod, tmp, ref = tiny
    run = tmp / "torn"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "2"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    # As if killed after the epoch-2 checkpoint, in the middle of appending its metrics line,
    # with a temporary of the next checkpoint left half-written.
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    (run / ".checkpoint.pt.tmp-1").write_bytes((run / "checkpoint.pt").read_bytes()[:1000])
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--resume"]) == 0
    assert not (run / ".checkpoint.pt.tmp-1").exists()
    _same_run(ref, run)


def test_resume_alone_continues_with_the_options_the_run_started_with(tiny):
    mod, tmp, ref = tiny
    run = tmp / "bare-resume"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "1"]) == 0
    recorded = json.loads((run / "manifest.json").read_text())["train_args"]
    assert (recorded["data"], recorded["batch_size"], recorded["lr"]) == ("synthetic:64", 16, 0.02)
    assert mod.main(["--out", str(run), "--resume", "--quiet"]) == 0   # no --data, --batch-size, --lr, --epochs
    _same_run(ref, run)


def _train_subprocess(tiny_build: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(tiny_build / "train.py"), *ARGS, "--epochs", "3", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def _wait_for(predicate, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("phase", ["set-up", "a long first batch"])
def test_sigterm_ends_a_run_promptly_in_any_phase(tiny, phase):
    import time

    from snnc.runtime import trainer

    assert trainer.STOP_GRACE < 10  # the promise: any run ends within 10 s of SIGTERM
    mod, tmp, ref = tiny
    build_dir = Path(mod.__file__).parent
    out = tmp / f"term-{phase.replace(' ', '-')}"
    env = {trainer.SLOW_BATCH_ENV: "60", trainer.STOP_GRACE_ENV: "1"}
    proc = _train_subprocess(build_dir, out, env)
    if phase == "set-up":
        time.sleep(0.3)  # importing torch: long before the first batch
    else:
        _wait_for(lambda: (out / "manifest.json").exists())  # written right before training starts
        time.sleep(0.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - start
    assert proc.returncode in (143, -signal.SIGTERM), err  # before snnc's handler exists the default applies
    assert took < 5, took
    assert not list(out.glob(".checkpoint.pt.tmp-*")) if out.exists() else True
    if phase == "a long first batch":
        assert proc.returncode == 143 and "no batch boundary within 1 s" in err


def test_resume_keeps_the_recorded_flags_unless_turned_off(tiny):
    """--amp changes the arithmetic and --tensorboard what the run writes: a bare --resume keeps the
    flags (they are recorded like --lr), --no-FLAG drops one, and the record follows the latest
    invocation's options."""
    pytest.importorskip("tensorboard")
    mod, tmp, _ = tiny
    run = tmp / "flags"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "1", "--tensorboard", "--amp"]) == 0
    recorded = json.loads((run / "manifest.json").read_text())["train_args"]
    assert (recorded["tensorboard"], recorded["amp"], recorded["compile"], recorded["sync_bn"]) == (True, True,
                                                                                                   False, False)
    event_files = lambda: sorted((run / "tensorboard").glob("events.out.tfevents.*"))  # noqa: E731
    assert len(event_files()) == 1
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--stop-after", "1"]) == 0
    assert len(event_files()) == 2  # the resumed invocation logged too
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--stop-after", "1", "--no-tensorboard"]) == 0
    assert len(event_files()) == 2
    # the record follows the latest invocation: a later bare --resume keeps what was changed
    recorded = json.loads((run / "manifest.json").read_text())["train_args"]
    assert (recorded["tensorboard"], recorded["amp"], recorded["batch_size"]) == (False, True, 16)


def test_lr_and_weight_decay_given_on_resume_take_effect_where_the_schedule_stands(tiny, capsys):
    """The checkpoint's optimizer state holds the run's lr and weight decay; given again on --resume
    they replace them from there on (the cosine continues at its position from the new peak)."""
    mod, tmp, ref = tiny
    run = tmp / "retarget"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "1"]) == 0
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--stop-after", "1", "--lr", "0.01",
                     "--weight-decay", "0.3"]) == 0
    assert "peak lr 0.01 (was 0.02), weight decay 0.3 (was 0.01)" in capsys.readouterr().err
    lrs = [r["lr"] for r in read_metrics(run)]
    want = [r["lr"] for r in read_metrics(ref)]  # peak 0.02: 0.015 after epoch 1, 0.005 after epoch 2
    assert lrs[0] == want[0] and lrs[1] == pytest.approx(want[1] / 2)
    groups = checkpoint.load(run / "checkpoint.pt")["optimizer"]["param_groups"]
    assert all(g["weight_decay"] == 0.3 for g in groups)
    assert mod.main(["--out", str(run), "--resume", "--quiet"]) == 0  # a bare resume keeps them
    assert "peak lr" not in capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["train_args"]["lr"] == 0.01


def test_resume_with_another_optimizer_inside_a_stage_is_refused_before_any_write(tiny, capsys):
    mod, tmp, _ = tiny
    run = tmp / "other-optimizer"
    assert mod.main(ARGS + ["--epochs", "3", "--out", str(run), "--stop-after", "1"]) == 0
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert mod.main(["--out", str(run), "--resume", "--quiet", "--optimizer", "sgd"]) == 1
    err = capsys.readouterr().err
    assert "--optimizer sgd" in err and "holds adamw's state" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
