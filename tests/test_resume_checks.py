"""snnc.runtime.resume on its own: the checks a resume runs before writing, and the metrics repair.

The end-to-end behaviour (a SIGTERM'd run resumed bitwise, refusals leaving the folder untouched)
is in tests/test_faults.py and tests/test_training.py.
"""

import json
from pathlib import Path

import pytest
import torch

from snnc.diagnostics import SnncError
from snnc.runtime import resume, setup

NOW = {"processes": 1, "--batch-size": 16, "--seed": 0, "--data": "digits", "training samples": 1347}
PATH = Path("run/checkpoint.pt")


def test_an_epoch_in_progress_needs_its_sample_order_back():
    ck = {"batch": 3, "epoch_order": dict(NOW)}
    resume.check_epoch_in_progress(ck, PATH, dict(NOW), main=True)
    for key, other in [("--seed", 1), ("--batch-size", 8), ("processes", 2), ("training samples", 1000)]:
        with pytest.raises(SnncError) as err:
            resume.check_epoch_in_progress(ck, PATH, {**NOW, key: other}, main=True)
        assert "after batch 3 of an epoch" in str(err.value) and f"{key} {NOW[key]} (now {other})" in str(err.value)


def test_between_epochs_anything_may_change_and_new_data_gets_a_note(capsys):
    ck = {"batch": 0, "epoch_order": dict(NOW)}
    changed = {**NOW, "--seed": 5, "--data": "synthetic:64", "training samples": 64}
    resume.check_epoch_in_progress(ck, PATH, changed, main=True)
    assert "trained on --data digits so far; it continues on synthetic:64" in capsys.readouterr().err
    resume.check_epoch_in_progress(ck, PATH, changed, main=False)  # only rank 0 says it
    assert capsys.readouterr().err == ""


def test_older_checkpoints_are_checked_from_their_own_fields():
    old = {"batch": 2, "world_size": 1, "batch_size": 16, "seed": 0}  # no epoch_order
    resume.check_epoch_in_progress(old, PATH, {**NOW, "--data": "cifar10:/x"}, main=True)  # data unknown: not checked
    with pytest.raises(SnncError, match=r"--seed 0 \(now 9\)"):
        resume.check_epoch_in_progress(old, PATH, {**NOW, "--seed": 9}, main=True)


def _optimizer(kind: str, lr=0.1, wd=0.01):
    params = [torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd) if kind == "adamw" else \
        torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    return opt, setup.make_scheduler(opt, total_steps=10, warmup_steps=0)


def test_the_optimizer_kind_must_match_inside_its_stage():
    opt, sched = _optimizer("sgd")
    ck = {"epoch": 1, "stage": 0, "optimizer": opt.state_dict()}
    stages = [setup.Stage(T=4, epochs=4, lr=0.1, first_epoch=0)]
    resume.check_optimizer(ck, PATH, stages, "sgd")
    with pytest.raises(SnncError, match="holds sgd's state"):
        resume.check_optimizer(ck, PATH, stages, "adamw")
    two = [setup.Stage(T=2, epochs=1, lr=0.1, first_epoch=0), setup.Stage(T=4, epochs=3, lr=0.1, first_epoch=1)]
    resume.check_optimizer(ck, PATH, two, "adamw")  # epoch 1 starts stage 1: a new optimizer


def test_continue_optimizer_keeps_this_invocations_peak_lr_and_decay():
    opt, sched = _optimizer("adamw", lr=0.1, wd=0.01)
    for _ in range(4):
        opt.step()
        sched.step()
    ck = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    same_opt, same_sched = _optimizer("adamw", lr=0.1, wd=0.01)
    assert resume.continue_optimizer(same_opt, same_sched, ck, position=4) == []
    assert same_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]  # bit for bit: the resume is exact
    new_opt, new_sched = _optimizer("adamw", lr=0.05, wd=0.0)
    changed = resume.continue_optimizer(new_opt, new_sched, ck, position=4)
    assert changed == ["peak lr 0.05 (was 0.1)", "weight decay 0 (was 0.01)"]
    assert new_opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"] / 2)  # same cosine position
    assert new_sched.last_epoch == sched.last_epoch and new_opt.param_groups[0]["weight_decay"] == 0.0


def test_continue_optimizer_puts_the_schedule_where_the_epochs_done_are_in_this_runs_steps():
    # 4 of 10 steps done (2 of 5 epochs, 2 steps each); resumed at 1 step per epoch (a doubled batch):
    # step 2 of 5, the same 40% of the cosine, not step 4 of 5.
    opt, sched = _optimizer("adamw")
    for _ in range(4):
        opt.step()
        sched.step()
    ck = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    params = [torch.nn.Parameter(torch.randn(3))]
    new_opt = torch.optim.AdamW(params, lr=0.1, weight_decay=0.01)
    new_sched = setup.make_scheduler(new_opt, total_steps=5, warmup_steps=0)
    changed = resume.continue_optimizer(new_opt, new_sched, ck, position=2)
    assert changed == ["the lr schedule at step 2 (the checkpoint counted 4 steps of another size)"]
    assert new_sched.last_epoch == 2 and new_opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_repair_metrics_keeps_one_line_per_epoch_done(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "test_acc": e / 10}) for e in (1, 2, 3)]
    path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:9] + "\n" + lines[2] + "\n")  # a torn line
    resume.repair_metrics(path, epochs_done=2, last={"epoch": 2, "test_acc": 0.2})
    assert path.read_text().splitlines() == lines[:2]  # epoch 3 is later than the checkpoint: dropped
    path.write_text(lines[0] + "\n")  # killed between the epoch-2 checkpoint and its line
    resume.repair_metrics(path, epochs_done=2, last={"epoch": 2, "test_acc": 0.2})
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1, 2]
    assert not list(tmp_path.glob(".metrics.jsonl.tmp-*"))


def test_recorded_args_of_a_damaged_manifest_are_none(tmp_path):
    assert resume.recorded_args(tmp_path) is None
    (tmp_path / "manifest.json").write_text('{"train_args": {"seed": 3}}')
    assert resume.recorded_args(tmp_path) == {"seed": 3}
    for text in ("{", '{"train_args": [1]}', "[]"):
        (tmp_path / "manifest.json").write_text(text)
        assert resume.recorded_args(tmp_path) is None
