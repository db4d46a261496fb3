"""Kill a training run at random instants, resume it each time, and compare with an uninterrupted run.

    python tests/soak/kill_resume.py                     # the soak: 60 kills (a few minutes)
    python tests/soak/kill_resume.py --kills 10 --json   # what tests/test_faults.py runs

The network is models/digits.snn made tiny (--set width=4 T=2) with a recipe
that carries state across epochs (MSG's mask counters, TWO's weights, CPNG's
record, SML's auxiliary branches). The uninterrupted reference run trains in
this process, which warms it up; each life is then a fork of it, so a life
costs training time only, not Python start-up. A life ends by

- "write": SIGKILL as soon as a checkpoint temporary appears; checkpoint
  writes are slowed by SNNC_TEST_SLOW_CHECKPOINT_WRITE, so the kill lands
  between the two halves of the file (a half-written temporary is left);
- "random": SIGKILL after a random delay;
- "term": SIGTERM after a random delay (a clean mid-epoch stop, exit 143);

and the next life runs with --resume (or starts over if no checkpoint was
written yet). After every kill the checkpoint must load, must not be older
than the epochs already logged, and a half-written temporary must not load.
The last life runs to the end; its weights must equal the uninterrupted run's
bit for bit and its metrics must match (all but wall-clock fields).

Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch: no thread pool in the parent, so forking is safe

import torch  # noqa: E402
import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from snnc.diagnostics import SnncError  # noqa: E402
from snnc.runtime import checkpoint  # noqa: E402
from trainkit import build, read_metrics, stable  # noqa: E402

RECIPE = "sml(n=1)+msg+two(warmup=0)+cpng+tet"
MODES = ("write", "random", "random", "term")


def _life(mod, argv: list[str], log: Path) -> int:
    """Forks a child that trains with `argv`; returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 98
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = mod.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 97
    except BaseException:  # noqa: BLE001 - reported through the exit status
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _exited(pid: int) -> bool:
    """Whether the child has exited (without reaping it)."""
    return bool(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT))


def _logged_epochs(run: Path) -> int:
    """Complete, parsable metrics lines (what the run has reported as done)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    n = 0
    for line in path.read_text().splitlines():
        try:
            json.loads(line)
            n += 1
        except ValueError:
            pass
    return n


def _temporaries(run: Path) -> list[Path]:
    """Checkpoint temporaries (the ones save_atomic writes next to checkpoint.pt)."""
    return sorted(run.glob(".checkpoint.pt.tmp-*")) if run.exists() else []


def soak(kills: int, epochs: int, seed: int, work: Path, slow_write: float = 0.05) -> dict:
    os.environ[checkpoint.SLOW_WRITE_ENV] = str(slow_write)
    torch.set_num_threads(1)
    tqdm.tqdm.monitor_interval = 0  # no tqdm monitor thread: this process stays single-threaded for fork()
    _, mod = build(work, "digits", RECIPE, {"width": "4", "T": "2"})
    args = ["--data", "synthetic:64", "--batch-size", "16", "--epochs", str(epochs), "--lr", "0.02",
            "--seed", str(seed), "--quiet"]
    ref, run, log = work / "reference", work / "run", work / "lives.log"

    with open(log, "a") as quiet, contextlib.redirect_stdout(quiet):
        assert mod.main(args + ["--out", str(ref)]) == 0
    assert threading.active_count() == 1
    start = time.perf_counter()
    assert _wait(_life(mod, args + ["--out", str(work / "timing")], log)) == 0, log.read_text()
    full = time.perf_counter() - start  # one uninterrupted life, for the kill delays
    rng = random.Random(seed)
    tally = {"kills": 0, "sigkill": 0, "sigterm": 0, "mid_write": 0, "torn_temporaries_rejected": 0,
             "before_first_checkpoint": 0,
             "resumes": 0, "restarts": 0, "clean_stops": 0, "epochs_lost_max": 0, "lives": 0, "problems": []}
    while True:
        resume = (run / "checkpoint.pt").exists()
        argv = args + ["--out", str(run)] + (["--resume"] if resume else ["--force"])
        tally["resumes"] += resume
        tally["lives"] += 1
        earlier = set(_temporaries(run))  # left by a life killed mid-write; the next set-up removes them
        pid = _life(mod, argv, log)
        if tally["kills"] >= kills:
            code = _wait(pid)
            if code != 0:
                tally["problems"].append(f"the last life exited with {code}")
            break
        mode = MODES[tally["kills"] % len(MODES)]
        sig = signal.SIGTERM if mode == "term" else signal.SIGKILL
        if mode == "write":
            deadline = time.perf_counter() + 3 * full
            while not _temporaries(run) and time.perf_counter() < deadline and not _exited(pid):
                time.sleep(0.002)
        else:
            time.sleep(rng.uniform(0.0, 1.5 * full / epochs))
        logged = _logged_epochs(run)
        os.kill(pid, sig)  # a zombie if it has exited already: the signal is a no-op
        code = _wait(pid)
        if code == 0:  # the run finished before the kill: start it over to collect more kills
            shutil.rmtree(run)
            tally["restarts"] += 1
            continue
        if code not in (-signal.SIGKILL, -signal.SIGTERM, 143):
            tally["problems"].append(f"a life exited with {code} (see {log})")
            break
        tally["kills"] += 1
        tally["sigterm" if sig == signal.SIGTERM else "sigkill"] += 1
        tally["clean_stops"] += code == 143
        temps = _temporaries(run)
        if sig == signal.SIGKILL and temps:
            tally["mid_write"] += 1
            for tmp in temps:  # a torn temporary must not pass for a checkpoint (a complete one may)
                try:
                    checkpoint.load(tmp)
                except SnncError:
                    tally["torn_temporaries_rejected"] += 1
        if code == 143 and set(temps) - earlier:
            tally["problems"].append("a clean stop left a temporary behind")
        if not (run / "checkpoint.pt").exists():
            tally["before_first_checkpoint"] += 1
            if logged:
                tally["problems"].append("metrics were logged but no checkpoint exists")
            continue
        try:
            ck = checkpoint.load(run / "checkpoint.pt")
        except SnncError as err:
            tally["problems"].append(f"unloadable checkpoint after a kill: {err}")
            break
        # Epochs logged as done at the kill must all be in the checkpoint: only the current one is lost.
        lost = logged - int(ck["epoch"])
        tally["epochs_lost_max"] = max(tally["epochs_lost_max"], lost)
        if lost > 0:
            tally["problems"].append(f"the checkpoint holds {ck['epoch']} epochs but {logged} were logged")

    a = checkpoint.load(ref / "checkpoint.pt")["model"]
    b = checkpoint.load(run / "checkpoint.pt")["model"] if (run / "checkpoint.pt").exists() else {}
    tally["bitwise_equal"] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tally["metrics_equal"] = stable(read_metrics(ref)) == stable(read_metrics(run)) if b else False
    tally["epochs"] = epochs
    tally["seconds"] = round(time.perf_counter() - start, 1)
    return tally


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the tally as one JSON line")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snnc-kill-") as work:
        tally = soak(args.kills, args.epochs, args.seed, Path(work))
    if args.json:
        print(json.dumps(tally))
    else:
        for k, v in tally.items():
            print(f"{k:>24}: {v}")
    ok = not tally["problems"] and tally["bitwise_equal"] and tally["metrics_equal"] and tally["kills"] >= args.kills
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
