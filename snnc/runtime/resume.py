"""What `--resume` checks and restores besides the weights: the options a run recorded, whether a
mid-epoch checkpoint can continue its epoch, the optimizer it continues, and the metrics file.

Each function reads what it is given (a checkpoint dict, a path, this invocation's values) and
raises SnncError before the trainer writes anything; the trainer (snnc/runtime/trainer.py) calls them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from snnc.diagnostics import SnncError
from snnc.runfolder import DAMAGED
from snnc.runtime import setup


def recorded_args(run_dir: Path) -> dict | None:
    """The options the run in `run_dir` last ran with (None if unreadable: the resume checks report it)."""
    try:
        recorded = json.loads((run_dir / "manifest.json").read_text()).get("train_args")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def check_position(ck: dict, path: Path, total_epochs: int, steps_per_epoch: int, epochs_given: bool) -> None:
    """Where the checkpoint stands must lie inside this run: its batch inside an epoch, its epoch (and
    batch) inside the schedule. Past it, a damaged checkpoint (a schedule of its own) or an --epochs
    that ends before the run's own progress."""
    done, batch = ck.get("epoch"), ck.get("batch") or 0
    if not isinstance(done, int) or not isinstance(batch, int):
        return  # of the wrong type: the checkpoint's own checks report it
    if batch >= steps_per_epoch:
        raise SnncError(f"{path}: field 'batch' is {batch}, but an epoch of this run has {steps_per_epoch} batches",
                        hint=DAMAGED)
    if total_epochs >= done + (batch > 0):
        return
    if not epochs_given:
        raise SnncError(f"{path}: field 'epoch' is {done}, past the run's schedule of {total_epochs} epochs",
                        hint=DAMAGED)
    raise SnncError(f"--epochs {total_epochs}: the run in {path.parent} has done {done} epochs"
                    + (f" and {batch} batches of the next" if batch else "") + " already",
                    hint="give more epochs than that, or leave --epochs out to finish the recorded schedule; "
                         "`snnc export` takes the weights as they are")


def check_epoch_in_progress(ck: dict, path: Path, now: dict, main: bool) -> None:
    """A checkpoint from the middle of an epoch resumes at the next batch of that epoch's sample
    order, so what the order depends on (`now`: the trainer's `epoch_order`) must be as it was;
    any of it may change between epochs (another --data gets a note)."""
    batch, was = int(ck.get("batch") or 0), dict(ck.get("epoch_order") or {})
    was.setdefault("processes", ck.get("world_size"))  # checkpoints before epoch_order was recorded
    was.setdefault("--batch-size", ck.get("batch_size"))
    was.setdefault("--seed", ck.get("seed"))
    diffs = [f"{key} {was[key]} (now {now[key]})" for key in now
             if batch and was.get(key) is not None and was[key] != now[key]]
    if diffs:
        raise SnncError(f"{path} was saved after batch {batch} of an epoch, which would continue in another "
                        f"sample order, skipping or repeating samples: it ran with " + ", ".join(diffs),
                        hint="resume with the run's own values (options left out are the recorded ones) and "
                             "the same number of processes; they can change once this epoch is done")
    old_data = was.get("--data")
    if old_data is not None and old_data != now["--data"] and main:
        print(f"note: the run trained on --data {old_data} so far; it continues on {now['--data']}",
              file=sys.stderr)


def check_optimizer(ck: dict, path: Path, stages, optimizer: str) -> None:
    """A resume inside the checkpoint's stage continues its optimizer state: only the same kind can."""
    try:
        if setup.stage_at(stages, int(ck["epoch"])) != int(ck["stage"]):
            return  # a new stage starts a new optimizer
        kind = "adamw" if "betas" in ck["optimizer"]["param_groups"][0] else "sgd"
    except (KeyError, IndexError, TypeError, ValueError):
        return  # a damaged checkpoint: the restore reports it
    if kind != optimizer:
        raise SnncError(f"--optimizer {optimizer}: {path} holds {kind}'s state, which this stage of "
                        f"the run continues", hint=f"resume with --optimizer {kind} (or without --optimizer)")


def continue_optimizer(opt, sched, ck: dict, position: int, path: Path = Path("checkpoint.pt")) -> list[str]:
    """Load the checkpoint's optimizer and schedule state into `opt` and `sched`, keeping the
    peak lr and weight decay they were made with (this invocation's: the state would bring back
    the run's), and put the schedule at step `position` of the stage: the epochs and batches the
    checkpoint holds, in this invocation's steps per epoch. The saved step count is in the steps
    of the run's batch size and training set, which may have changed between epochs (another
    --batch-size, --data or process count). Returns what changed, in words."""
    lrs, decays = list(sched.base_lrs), [g["weight_decay"] for g in opt.param_groups]
    try:
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        _check_moments(opt)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise SnncError(f"{path}: its optimizer or lr-schedule state does not fit this run "
                        f"({exc.__class__.__name__}: {str(exc)[:120]})",
                        hint="it was damaged or not written by this version of snnc; start over with --force, or "
                             "export the weights it holds") from None
    changed = []
    if sched.last_epoch != position:
        changed.append(f"the lr schedule at step {position} (the checkpoint counted {sched.last_epoch} steps "
                       f"of another size)")
        sched.last_epoch = position
    for i, (group, lr, decay) in enumerate(zip(opt.param_groups, lrs, decays)):
        if sched.base_lrs[i] != lr:
            changed.append(f"peak lr {lr:g} (was {sched.base_lrs[i]:g})")
            sched.base_lrs[i] = group["initial_lr"] = lr
        group["lr"] = lr * sched.lr_lambdas[i](sched.last_epoch)
        if group["weight_decay"] != decay:
            changed.append(f"weight decay {decay:g} (was {group['weight_decay']:g})")
            group["weight_decay"] = decay
    return list(dict.fromkeys(changed))


def _check_moments(opt) -> None:
    """Every per-parameter state tensor (AdamW's moments, SGD's momentum) has its parameter's shape:
    load_state_dict does not check, and a mismatch would fail inside the first step."""
    for group in opt.param_groups:
        for param in group["params"]:
            for name, value in opt.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise ValueError(f"{name} has shape {list(value.shape)}, its parameter {list(param.shape)}")


def repair_metrics(path: Path, epochs_done: int, last: dict) -> None:
    """Rewrite metrics.jsonl (`path`) with one line per completed epoch: later and torn lines
    dropped, the last epoch's line restored from the checkpoint's record `last` if missing."""
    keep = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
            epoch = int(record["epoch"])
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a kill mid-write
        if 1 <= epoch <= epochs_done:
            keep[epoch] = line
    if last.get("epoch") == epochs_done and epochs_done not in keep:
        keep[epochs_done] = json.dumps(last)  # killed between the checkpoint and its metrics line
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(keep[e] + "\n" for e in sorted(keep)))
    os.replace(tmp, path)
