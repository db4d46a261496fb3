"""The training loop behind every generated train.py.

Deterministic by construction: the batch order of epoch e comes from a
sampler seeded with (seed, e), augmentation from a generator seeded with
(seed, e, rank, batch), MSG masks from each layer's iteration counter. So
`--resume` from an epoch checkpoint reproduces the uninterrupted run.

Faults: the checkpoint of an epoch is written (atomically) before its
metrics line, so a process killed at any instant loses at most the epoch in
progress; `--resume` drops torn or later metrics lines and restores the last
one from the checkpoint. SIGTERM and Ctrl-C stop between batches with a
mid-epoch checkpoint (exit 143, 130; a second Ctrl-C stops at once). Under
torchrun every rank agrees on stopping and on a non-finite loss before the
backward pass, so no rank waits in a collective.

Environment: SNNC_DUMP_RANK_STATE=DIR makes every rank write DIR/rank-N.pt
at the end of a run (its model state and its own last-batch h statistics),
so tests and users can check that ranks agree.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from snnc.diagnostics import SnncError, render
from snnc.losses import predict
from snnc import outputs, runfolder
from snnc.runtime import checkpoint, distributed as dist, resume, setup, tblog
from snnc.runtime.data import absolute_spec
from snnc.runtime.hooks import CPNGHook, TWOHook
from snnc.runtime.options import RECORDED, TrainSpec, fill_defaults, make_parser, validate
from snnc.runtime.progress import Progress

EXIT_TERMINATED, EXIT_INTERRUPTED = 143, 130  # 128 + SIGTERM, 128 + SIGINT, as shells report them
STOP_GRACE = 8.0  # seconds from SIGTERM to exit when no batch boundary comes (a run ends within 10 s)
# Test hooks, off unless set: SNNC_TEST_SLOW_BATCH=SECONDS sleeps inside the first batch of a run (a batch
# too long to wait for); SNNC_TEST_STOP_GRACE=SECONDS replaces STOP_GRACE.
SLOW_BATCH_ENV, STOP_GRACE_ENV = "SNNC_TEST_SLOW_BATCH", "SNNC_TEST_STOP_GRACE"
DUMP_ENV = "SNNC_DUMP_RANK_STATE"


@dataclass
class EpochSums:
    """Running sums of one epoch; kept in mid-epoch checkpoints."""

    loss: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    batches: int = 0
    seconds: float = 0.0

    @staticmethod
    def from_list(v) -> "EpochSums":
        return EpochSums(float(v[0]), float(v[1]), float(v[2]), int(v[3]), float(v[4]))


@dataclass
class RunState:
    epoch: int = 0            # epochs completed
    batch: int = 0            # batches completed in the current epoch (mid-epoch checkpoints)
    sums: EpochSums = field(default_factory=EpochSums)
    best_acc: float = 0.0
    last: dict = field(default_factory=dict)


class Stop(Exception):
    """Raised between batches after SIGTERM/SIGINT once the checkpoint is written."""


# ----------------------------------------------------------------- epochs
class Trainer:
    def __init__(self, spec: TrainSpec, build_model, compute_loss, args):
        self.spec, self.args, self.compute_loss = spec, args, compute_loss
        self.build_dir = _build_dir(build_model)
        manifest = self._build_file("manifest.json")
        self.build_params = runfolder.read_manifest(manifest).get("params") if manifest else None
        self.device = setup.device_for(args)
        self.world = dist.init(str(self.device))
        setup.set_threads(args)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.out = run_folder(args, spec)
        args.data = absolute_spec(args.data)  # recorded so: a resume from another folder reads the same files
        self.data = setup.load_data(spec, args)
        torch.manual_seed(args.seed)
        self.model = build_model().to(self.device)
        for layer in spec.lif_layers:
            lif = self.model.get_submodule(layer)
            lif.seed, lif.rank = args.seed, self.world.rank
        if args.init:
            setup.init_weights(self.model, args.init)
        if args.sync_bn:
            if self.device.type != "cuda":
                raise SnncError("--sync-bn needs CUDA (SyncBatchNorm runs on CUDA only)")
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = self.model
        if self.world.size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if getattr(args, "compile", False):  # train.py --compile: the LIF layers are custom ops (snnc.ops.library)
            self.net = torch.compile(self.net)
        self.cpng = CPNGHook(self.model, spec.cpng["layers"], spec.cpng["chi_limit"], spec.cpng["per_batch"]) \
            if spec.cpng else None
        self.two = TWOHook(self.model, spec.two["module"], spec.two["m"], spec.two["warmup"]) if spec.two else None
        self.stages = setup.stages_of(spec, args)
        self.total_epochs = sum(s.epochs for s in self.stages)
        self.amp = bool(args.amp and self.device.type == "cuda")
        if args.amp and not self.amp and self.world.main:
            print("note: --amp needs CUDA; training in float32", file=sys.stderr)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.state = RunState()
        self.stop_signal: int | None = None
        self.stop_timer: threading.Timer | None = None  # started by SIGTERM; cancelled once the run has stopped
        self.train_set = TensorDataset(self.data.train_x, self.data.train_y)
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.world.size, rank=self.world.rank,
                                          shuffle=True, seed=args.seed)
        self.loader = DataLoader(self.train_set, batch_size=args.batch_size, sampler=self.sampler,
                                 num_workers=args.workers, drop_last=False)

    # -- checkpoints
    def _check_run_dir(self) -> dict | None:
        """Everything about RUN_DIR that could refuse this run, checked before anything is written.

        Returns the checkpoint to resume from (None for a new run)."""
        outputs.check_run_folder(self.out)
        ckpt = self.out / "checkpoint.pt"
        if self.args.resume and not ckpt.exists():
            raise SnncError(f"--resume: {self.out} has no checkpoint.pt", hint="drop --resume to start a new run")
        if not self.args.resume and ckpt.exists() and not self.args.force:
            raise SnncError(f"{self.out} already holds a run", hint="--resume continues it, --force starts over, "
                                                                     "--out picks another folder")
        if not self.args.resume:
            return None
        ck = checkpoint.load(ckpt)
        self._check_compatible(ck, ckpt)
        if self.args.epochs is None and ck.get("schedule"):  # continue the schedule the run started with
            self.stages = setup.recorded_stages(ck["schedule"], self.spec, self.args.lr)
            self.total_epochs = sum(s.epochs for s in self.stages)
        resume.check_position(ck, ckpt, self.total_epochs, len(self.loader), self.args.epochs is not None)
        resume.check_optimizer(ck, ckpt, self.stages, self.args.optimizer)
        return ck

    def _build_file(self, name: str) -> Path | None:
        path = self.build_dir / name if self.build_dir is not None else None
        return path if path is not None and path.is_file() else None

    def _check_compatible(self, ck: dict, path: Path) -> None:
        """Refuses a checkpoint that another network, recipe or parameter set wrote, naming what differs."""
        def read(folder_file, reader):
            return reader(folder_file) if folder_file is not None and folder_file.is_file() else None

        build_ir = read(self._build_file("model.ir"), runfolder.read_ir)
        runfolder.check_checkpoint(ck, path, build_ir)
        diffs = runfolder.compatibility(
            read(self.out / "manifest.json", runfolder.read_manifest), ck,
            read(self._build_file("manifest.json"), runfolder.read_manifest), self.spec.network, self.spec.recipe,
            read(self.out / "model.ir", runfolder.read_ir), build_ir)
        if diffs:
            raise SnncError(f"{self.out} was trained by another build and cannot be resumed with this one: "
                            + "; ".join(diffs),
                            hint="resume with the build that started the run, use --out for a new run, "
                                 "or --force to start this one over")
        resume.check_epoch_in_progress(ck, path, self._epoch_order(), self.world.main)
        setup.set_time_steps(self.model, int(ck.get("T", self.spec.T)))  # TIT: the stage the run stopped in
        mismatch = runfolder.shape_difference(ck["model"], self.model.state_dict())
        if mismatch:
            raise SnncError(f"{path} does not fit this network: {mismatch}",
                            hint="resume with the build that started the run, or use --out for a new run")

    def _epoch_order(self) -> dict:
        """What the sample order of an epoch depends on, as the checkpoint records it."""
        return {"processes": self.world.size, "--batch-size": self.args.batch_size, "--seed": self.args.seed,
                "--data": self.args.data, "training samples": len(self.train_set)}

    def _prepare_run_dir(self) -> None:
        dist.barrier()  # every rank has checked before rank 0 changes anything
        if self.world.main:
            self.out.mkdir(parents=True, exist_ok=True)
            checkpoint.clean_stale_temporaries(self.out)
            if not self.args.resume:
                self._clear_previous_run()
            self._write_run_files()
        dist.barrier()

    def _clear_previous_run(self) -> None:
        """A new run in a run folder (--force) starts over: the old run's checkpoint, metrics and
        TensorBoard events go, and the deploy and report folders snnc wrote from it; anything else
        in the folder stays."""
        for name in ("checkpoint.pt", "metrics.jsonl"):
            if (self.out / name).exists():
                (self.out / name).unlink()
        for events in (self.out / "tensorboard").glob("events.out.tfevents.*"):
            events.unlink()
        for name in ("deploy", "report"):
            folder = self.out / name
            if folder.is_dir() and not folder.is_symlink() and outputs.folder_kind(folder) == name:
                shutil.rmtree(folder)

    def schedule(self) -> list[dict]:
        return [{"T": s.T, "epochs": s.epochs, "lr": s.lr} for s in self.stages]

    def _write_run_files(self) -> None:
        """RUN_DIR/model.ir and a run manifest (the build's, plus the schedule this run trains).

        A resumed run keeps its own files (they were checked against this build above), with the
        options and data of this invocation recorded: the next bare --resume continues with those."""
        run_manifest = self.out / "manifest.json"
        if self.args.resume and (self.out / "model.ir").is_file() and run_manifest.is_file():
            run = runfolder.read_manifest(run_manifest)
            latest = {**run, **self._recorded()}
            if latest != run:
                runfolder.write_json_atomic(run_manifest, latest)
            return
        ir, manifest = self._build_file("model.ir"), self._build_file("manifest.json")
        if ir is None or manifest is None:
            return
        tmp = self.out / f".model.ir.tmp-{os.getpid()}"
        tmp.write_bytes(ir.read_bytes())
        os.replace(tmp, self.out / "model.ir")
        run = {**runfolder.read_manifest(manifest), "kind": "run", "build_dir": str(self.build_dir),
               **self._recorded()}
        runfolder.write_json_atomic(run_manifest, run)

    def _recorded(self) -> dict:
        """What a run manifest records of this invocation: its schedule, data and options (RECORDED)."""
        return {"schedule": self.schedule(), "data": {"spec": self.args.data, "preprocess": self.data.preprocess},
                "train_args": {name: getattr(self.args, name) for name in RECORDED}}

    def _partial_totals(self) -> tuple[list[float], list[float]]:
        """This epoch's running sums and TWO counts so far, summed over ranks (for a checkpoint)."""
        s = self.state.sums
        totals = dist.sum_across_ranks(torch.tensor([s.loss, s.correct, s.count], dtype=torch.float64)).tolist()
        two = []
        if self.two and self.two.correct is not None:
            two = dist.sum_across_ranks(torch.cat([self.two.correct.double().cpu(), torch.tensor(
                [float(self.two.count)], dtype=torch.float64)])).tolist()
        return totals + [float(s.batches), s.seconds], two

    def _checkpoint_state(self, opt, sched, stage: int, sums: list[float], two_partial: list[float]) -> dict:
        return {
            "network": self.spec.network, "recipe": self.spec.recipe,
            "model": self.model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": self.state.epoch, "batch": self.state.batch, "sums": sums,
            "stage": stage, "T": self.stages[stage].T, "best_acc": self.state.best_acc,
            "hooks": {"cpng": self.cpng.state_dict() if self.cpng else {},
                      "two": self.two.state_dict() if self.two else {},
                      "two_partial": two_partial},
            "rng": torch.get_rng_state(), "metrics": self.state.last,
            "world_size": self.world.size, "seed": self.args.seed, "batch_size": self.args.batch_size,
            "epoch_order": self._epoch_order(),
            "params": self.build_params, "schedule": self.schedule(),
            "grad_scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def _save(self, opt, sched, stage: int) -> None:
        sums, two_partial = self._partial_totals()  # a collective: every rank takes part
        if self.world.main:
            checkpoint.save_atomic(self._checkpoint_state(opt, sched, stage, sums, two_partial),
                                   self.out / "checkpoint.pt")
        dist.barrier()

    def _restore(self, ck: dict) -> None:
        path = self.out / "checkpoint.pt"
        try:
            self.model.load_state_dict(ck["model"])
        except RuntimeError as exc:
            raise SnncError(f"{path} does not fit this network: {str(exc)[:300]}") from None
        try:
            self._restore_state(ck)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise SnncError(f"{path} is incomplete ({exc.__class__.__name__}: {str(exc)[:100]})",
                            hint="it was not written by this version of snnc; start over with --force") from None
        if self.world.main:
            resume.repair_metrics(self.out / "metrics.jsonl", self.state.epoch, self.state.last)

    def _restore_state(self, ck: dict) -> None:
        # Checkpoints hold the running sums of all ranks together: rank 0 continues from them, the others from 0.
        sums = EpochSums.from_list(ck["sums"])
        if not self.world.main:
            sums = EpochSums(batches=sums.batches, seconds=sums.seconds)
        self.state = RunState(int(ck["epoch"]), int(ck["batch"]), sums, float(ck["best_acc"]),
                              dict(ck.get("metrics") or {}))
        if self.cpng:
            self.cpng.load_state_dict(ck["hooks"]["cpng"])
        partial = ck["hooks"].get("two_partial") or []
        if self.two and partial:
            correct = torch.tensor(partial[:-1], dtype=torch.float64)
            self.two.correct = correct if self.world.main else torch.zeros_like(correct)
            self.two.count = int(partial[-1]) if self.world.main else 0
        torch.set_rng_state(ck["rng"])
        if self.scaler and ck.get("grad_scaler"):  # --amp: the loss scale it had reached, not a fresh one
            self.scaler.load_state_dict(ck["grad_scaler"])

    # -- signals
    def _on_signal(self, signum, frame) -> None:
        """SIGTERM or Ctrl-C: stop at the next batch boundary with a checkpoint; if a batch keeps the
        process busy longer than STOP_GRACE seconds, exit anyway (the last checkpoint on disk is
        complete). A second Ctrl-C stops at once."""
        if signum == signal.SIGINT and self.stop_signal == signal.SIGINT:
            raise KeyboardInterrupt
        if self.stop_signal is None:
            self.stop_timer = threading.Timer(_stop_grace(), _exit_stopped, args=(signum,))
            self.stop_timer.daemon = True
            self.stop_timer.start()
            if signum == signal.SIGINT and self.world.main:
                print("\nCtrl-C: stopping after this batch with a checkpoint (Ctrl-C again stops at once)",
                      file=sys.stderr, flush=True)
        self.stop_signal = signum

    # -- loops
    def _batch_input(self, x: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        if self.data.augment is not None:
            g = torch.Generator().manual_seed(_mix(self.args.seed, epoch, self.world.rank, index))
            x = self.data.augment(x, g)
        x = x.to(self.device, non_blocking=True)
        if self.spec.input_kind == "events":
            x = x.transpose(0, 1)  # [B, T, ...] frames -> [T, B, ...]
        return x

    def train_epoch(self, epoch: int, opt, sched, stage: int) -> EpochSums:
        self.net.train()
        self.sampler.set_epoch(epoch)
        n = len(self.loader)
        sums = self.state.sums if self.state.batch else EpochSums()
        skip = self.state.batch
        progress = Progress(n, f"epoch {epoch + 1}/{self.total_epochs}", enabled=self.world.main and not self.args.quiet,
                            start=skip)
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.loader):
            if i < skip:
                continue
            x, y = self._batch_input(x, epoch, i), y.to(self.device, non_blocking=True)
            if i == skip and os.environ.get(SLOW_BATCH_ENV):
                time.sleep(float(os.environ[SLOW_BATCH_ENV]))
            last = i == n - 1
            for layer in self.spec.lif_layers:  # firing rates (and CPNG's h statistics) from the last batch
                self.model.get_submodule(layer).record_stats = last or bool(self.cpng and self.cpng.per_batch)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs, aux = self.net(x)
                loss = self.compute_loss(outputs.float(), [a.float() for a in aux], y)
            # One agreement per step, before DDP's gradient all-reduce: a rank that stopped alone
            # would leave the others waiting in a collective.
            bad, stop = dist.any_across_ranks(not torch.isfinite(loss), self.stop_signal is not None)
            if bad:
                value = loss.item() if not torch.isfinite(loss) else "non-finite on another process"
                raise SnncError(f"the loss became {value} at epoch {epoch + 1}, step {i + 1}; training stopped",
                                hint=f"the last good checkpoint is kept in {self.out}; try a lower --lr")
            opt.zero_grad(set_to_none=True)
            if self.scaler:
                self.scaler.scale(loss).backward()
                self.scaler.step(opt)
                self.scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            if self.cpng and self.cpng.per_batch:
                self.cpng.update()
            if self.two:
                self.two.observe(outputs, y)
            b = y.numel()
            sums.loss += float(loss.detach()) * b
            sums.correct += float((predict(outputs.detach()) == y).sum())
            sums.count += b
            sums.batches = i + 1
            progress.update(loss=sums.loss / sums.count, acc=sums.correct / sums.count, samples=b * self.world.size)
            if stop and not last:
                sums.seconds += time.perf_counter() - start
                self.state.batch, self.state.sums = i + 1, sums
                progress.close()
                self._save(opt, sched, stage)
                raise Stop()
        progress.close()
        sums.seconds += time.perf_counter() - start
        return sums

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        self.model.eval()
        x_all, y_all = self.data.test_x, self.data.test_y
        idx = torch.arange(self.world.rank, len(y_all), self.world.size)
        loss = correct = 0.0
        for chunk in idx.split(self.args.eval_batch_size):
            x = x_all[chunk].to(self.device)
            if self.spec.input_kind == "events":
                x = x.transpose(0, 1)
            y = y_all[chunk].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs, _ = self.model(x)
            outputs = outputs.float()
            loss += float(F.cross_entropy(outputs.mean(0), y, reduction="sum"))
            correct += float((predict(outputs) == y).sum())
        totals = dist.sum_across_ranks(torch.tensor([loss, correct, float(len(idx))], dtype=torch.float64))
        return float(totals[0] / totals[2]), float(totals[1] / totals[2])

    def _epoch_record(self, epoch: int, stage: int, sums: EpochSums, lr: float) -> dict:
        totals = dist.sum_across_ranks(torch.tensor([sums.loss, sums.correct, sums.count], dtype=torch.float64))
        # "epoch" counts completed epochs (1-based), as the checkpoint's "epoch" and the progress output do
        record = {"epoch": epoch + 1, "stage": stage, "T": self.stages[stage].T, "lr": lr,
                  "train_loss": float(totals[0] / totals[2]), "train_acc": float(totals[1] / totals[2]),
                  "samples_per_s": float(totals[2]) / max(sums.seconds, 1e-9), "seconds": sums.seconds}
        rates = {}
        for layer in self.spec.lif_layers:
            m = self.model.get_submodule(layer)
            if m.spike_rate is not None:
                rates[layer] = float(dist.mean_across_ranks(m.spike_rate.detach().double().cpu()))
        record["firing_rates"] = rates
        if self.cpng and not self.cpng.per_batch:
            record["cpng"] = self.cpng.update()
        elif self.cpng:
            record["cpng"] = self.cpng.last
        if self.two:
            record["two_weights"] = self.two.end_epoch(epoch)
            record["two_step_acc"] = getattr(self.two, "last_acc", None)
        for layer in self.spec.lif_layers:
            self.model.get_submodule(layer).record_stats = False
        return record

    def run(self) -> int:
        ck = self._check_run_dir()
        lock = self._lock_run_dir()
        try:
            return self._run(ck)
        finally:
            if lock is not None:
                os.close(lock)

    def _lock_run_dir(self) -> int | None:
        """Rank 0 locks RUN_DIR for the whole run: a second training into it (a requeued job started
        while the first still runs, --force or --resume from another shell) is refused, not mixed in."""
        lock = outputs.lock_folder(self.out) if self.world.main else None
        if dist.any_across_ranks(self.world.main and lock is None)[0]:
            raise SnncError(f"another process is training in {self.out} (it holds the folder's lock)",
                            hint="wait for it to finish or stop it (a SIGTERM checkpoints it), then --resume; "
                                 "or choose another --out")
        return lock

    def _run(self, ck: dict | None) -> int:
        self._prepare_run_dir()
        if ck is not None:
            self._restore(ck)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)} \
            if threading_main() else {}
        opt = sched = None
        stage_idx = -1
        epochs_this_run = 0
        writer = tblog.open_writer(self.out, getattr(self.args, "tensorboard", False) and self.world.main)
        try:
            while self.state.epoch < self.total_epochs:
                epoch = self.state.epoch
                idx = setup.stage_at(self.stages, epoch)
                if idx != stage_idx:
                    stage_idx = idx
                    stage = self.stages[idx]
                    setup.set_time_steps(self.model, stage.T)
                    steps = stage.epochs * len(self.loader)
                    warm = self.args.warmup_epochs * len(self.loader) if idx == 0 else 0
                    opt = setup.make_optimizer(self.model, self.args, stage.lr)
                    sched = setup.make_scheduler(opt, steps, min(warm, steps))
                    if ck is not None and int(ck["stage"]) == idx:  # resuming inside this stage
                        position = (int(ck["epoch"]) - stage.first_epoch) * len(self.loader) + int(ck["batch"])
                        changed = resume.continue_optimizer(opt, sched, ck, position, self.out / "checkpoint.pt")
                        if changed and self.world.main:
                            print(f"note: resuming with {', '.join(changed)}", file=sys.stderr)
                    ck = None
                    if self.world.main and len(self.stages) > 1:
                        print(f"stage {idx + 1}/{len(self.stages)}: T={stage.T}, {stage.epochs} epochs, "
                              f"lr {stage.lr:g}")
                sums = self.train_epoch(epoch, opt, sched, stage_idx)
                record = self._epoch_record(epoch, stage_idx, sums, opt.param_groups[0]["lr"])
                record["test_loss"], record["test_acc"] = self.evaluate()
                self.state.best_acc = max(self.state.best_acc, record["test_acc"])
                self.state.epoch, self.state.batch, self.state.sums, self.state.last = epoch + 1, 0, EpochSums(), record
                self._save(opt, sched, stage_idx)  # the checkpoint, then its metrics line (resume.repair_metrics)
                if self.world.main:
                    with open(self.out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                    tblog.log_epoch(writer, record)
                    print(_summary(record, self.total_epochs))
                epochs_this_run += 1
                stop = dist.any_across_ranks(self.stop_signal is not None)[0]
                if stop and self.state.epoch < self.total_epochs:
                    raise Stop()
                if self.args.stop_after is not None and epochs_this_run >= self.args.stop_after \
                        and self.state.epoch < self.total_epochs:
                    if self.world.main:
                        print(f"stopped after {epochs_this_run} epoch(s) as asked; continue with --resume")
                    return 0
        except Stop:  # the signal may have reached another rank only: that was SIGTERM (Ctrl-C reaches all)
            if self.world.main:
                print(f"stopped by {_stop_name(self.stop_signal)} after {self.state.epoch} epoch(s) and "
                      f"{self.state.batch} batch(es); the checkpoint in {self.out} is current (resume with "
                      f"--resume)", file=sys.stderr)
            return _stop_code(self.stop_signal)
        finally:
            tblog.close(writer)
            for s, h in handlers.items():
                signal.signal(s, h)
            if self.stop_timer is not None:
                self.stop_timer.cancel()
                self.stop_timer.join()
        self._dump_rank_state()
        if self.world.main:
            last = self.state.last
            print(f"done: test accuracy {100 * last.get('test_acc', 0):.2f}% after {self.total_epochs} epochs "
                  f"(best {100 * self.state.best_acc:.2f}%); run folder {self.out}")
        return 0

    def _dump_rank_state(self) -> None:
        folder = os.environ.get(DUMP_ENV)
        if not folder:
            return
        local_h = {}
        for layer in self.spec.lif_layers:
            m = self.model.get_submodule(layer)
            if m.h_mean is not None:
                local_h[layer] = [float(m.h_mean), float(m.h_std)]
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save({"rank": self.world.rank, "world_size": self.world.size, "epoch": self.state.epoch,
                    "model": self.model.state_dict(), "local_h": local_h},
                   Path(folder) / f"rank-{self.world.rank}.pt")


def run_folder(args, spec: TrainSpec) -> Path:
    return Path(args.out or f"runs/{spec.network}-{spec.slug}")


def _build_dir(build_model) -> Path | None:
    """The folder of the generated model.py that defines `build_model` (None for other callables)."""
    try:
        return Path(inspect.getfile(build_model)).resolve().parent
    except (TypeError, OSError):
        return None


def _mix(*values: int) -> int:
    """A fixed 63-bit mix of small integers (a seed per epoch, rank and batch)."""
    h = 1469598103934665603
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _stop_grace() -> float:
    return float(os.environ.get(STOP_GRACE_ENV) or STOP_GRACE)


def _stop_name(signum: int | None) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"


def _stop_code(signum: int | None) -> int:
    return EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED


def _exit_stopped(signum: int) -> None:
    print(f"{_stop_name(signum)}: no batch boundary within {_stop_grace():g} s; exiting without a new checkpoint "
          f"(the last one on disk is complete)", file=sys.stderr, flush=True)
    os._exit(_stop_code(signum))


def _summary(r: dict, total: int) -> str:
    text = (f"epoch {r['epoch']}/{total}  T={r['T']}  loss {r['train_loss']:.4f}  "
            f"train {100 * r['train_acc']:.2f}%  test {100 * r['test_acc']:.2f}%  "
            f"{r['samples_per_s']:.0f} samples/s")
    if "cpng" in r:
        text += "  beta " + " ".join(f"{v['beta']:.2f}" for v in r["cpng"].values())
    if "two_weights" in r:
        text += "  f " + " ".join(f"{w:.2f}" for w in r["two_weights"])
    return text


def main(spec: TrainSpec, build_model, compute_loss, argv=None) -> int:
    """Train as the command line asks; the exit code. A worker of a distributed run (torchrun,
    more than one process) does not return: it ends its process with that code (see
    distributed.end_process)."""
    try:
        code = _main(spec, build_model, compute_loss, argv)
    finally:
        distributed = dist.shutdown()
    if distributed:
        dist.end_process(code)
    return code


def _main(spec: TrainSpec, build_model, compute_loss, argv) -> int:
    parser = make_parser(spec)
    args = parser.parse_args(argv)
    recorded = resume.recorded_args(run_folder(args, spec)) if args.resume else None
    if args.data is None and str((recorded or {}).get("data", "")).startswith("py:"):
        # A run folder may come from anyone; it names code, which runs only if named again here.
        parser.error(f"--resume: the run trained on --data {recorded['data']!s:.200}, which runs Python code; "
                     f"give that --data again to run it")
    fill_defaults(args, spec, recorded)
    problems = validate(args, spec)
    if problems:
        parser.error("; ".join(problems))
    try:
        # Until the training loop takes SIGTERM over (a checkpoint at the next batch), it ends set-up at once.
        with outputs.terminate_as_interrupt():
            return Trainer(spec, build_model, compute_loss, args).run()
    except SnncError as err:
        if args.debug:
            raise
        print(render(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, outputs.Terminated)
        kept = run_folder(args, spec) / "checkpoint.pt"
        print(f"{'terminated before training started' if terminated else 'interrupted'}; "
              + (f"the last checkpoint ({kept}) is kept" if kept.is_file() else "no checkpoint was written"),
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
