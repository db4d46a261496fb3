"""Setting up a training run: device, data, initial weights, TIT stages, optimizer and schedule."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from snnc.diagnostics import SnncError
from snnc.runtime import data as datasets
from snnc.runtime.options import DEFAULTS, TrainSpec, available_cpus


@dataclass
class Stage:
    T: int
    epochs: int
    lr: float
    first_epoch: int


def stages_of(spec: TrainSpec, args) -> list[Stage]:
    """TIT's stages, or one stage of the run's T and epochs."""
    raw = spec.stages or [(spec.T, args.epochs or spec.defaults.get("epochs", DEFAULTS["epochs"]))]
    return _stages(raw, args.lr)


def recorded_stages(schedule: list[dict], spec: TrainSpec, lr: float) -> list[Stage]:
    """The stages a run recorded in its checkpoint (`resume` continues them unless --epochs is given),
    each at the peak `lr` (this invocation's --lr) unless the recipe's tit stage sets its own."""
    own = [len(stage) > 2 for stage in spec.stages] if spec.stages else []
    return _stages([(s["T"], s["epochs"], s["lr"] if i < len(own) and own[i] else lr)
                    for i, s in enumerate(schedule)], None)


def _stages(raw, lr_default) -> list[Stage]:
    out, first = [], 0
    for item in raw:
        T, epochs = int(item[0]), int(item[1])
        lr = float(item[2]) if len(item) > 2 else lr_default
        out.append(Stage(T, epochs, lr, first))
        first += epochs
    return out


def set_time_steps(model, T: int) -> None:
    """Runs `model` at T steps: its T, and per-step state such as TWO's weights (uniform again at a new T)."""
    model.T = T
    for module in model.modules():
        if hasattr(module, "set_time_steps"):
            module.set_time_steps(T)


def stage_at(stages: list[Stage], epoch: int) -> int:
    for i, s in enumerate(stages):
        if epoch < s.first_epoch + s.epochs:
            return i
    return len(stages) - 1


def set_threads(args) -> int:
    """Sets and returns torch's intra-op threads for this process: --threads, or the CPUs it may run
    on shared among this machine's processes (torchrun's LOCAL_WORLD_SIZE), at most torch's default.

    Inheriting torch's default (all physical cores) oversubscribes a container limited to fewer, or
    several torchrun processes on one machine; every parallel op then waits for a descheduled thread."""
    if args.threads is None:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        args.threads = max(1, min(torch.get_num_threads(), available_cpus() // local))
    torch.set_num_threads(args.threads)
    return args.threads


def device_for(args) -> torch.device:
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SnncError(f"--device {name}: CUDA is not available here", hint="use --device cpu")
    if name.startswith("cuda") and "LOCAL_RANK" in os.environ and name == "cuda":
        name = f"cuda:{os.environ['LOCAL_RANK']}"
    try:
        return torch.device(name)
    except RuntimeError:
        raise SnncError(f"--device {name}: not a device", hint="cpu, cuda or cuda:N") from None


def load_data(spec: TrainSpec, args) -> datasets.Data:
    target = datasets.Target(spec.input_kind, tuple(spec.input_dims), spec.T, spec.classes)
    data = datasets.load(args.data, target)
    data = datasets.reshape_synthetic(data, spec.input_dims, spec.classes)
    shape = data.sample_shape
    want = tuple(spec.input_dims)
    ok = shape == want if spec.input_kind == "image" else shape[1:] == want
    if not ok:
        raise SnncError(f"--data {args.data} gives samples of shape {list(shape)}, but network "
                        f"{spec.network} expects {spec.input_kind} {list(want)}",
                        hint="compile a network for this data (e.g. models/digits.snn for digits)")
    if spec.input_kind != "image" and shape[0] != spec.T:
        raise SnncError(f"--data {args.data} gives {shape[0]} time steps per sample, but network {spec.network} "
                        f"runs T={spec.T}", hint=f"frame the events into {spec.T} bins, or compile with --set T="
                                                 f"{shape[0]}")
    if data.classes != spec.classes:
        raise SnncError(f"--data {args.data} has {data.classes} classes, the network {spec.classes}",
                        hint=f"compile with --set classes={data.classes}")
    return data


def make_optimizer(model, args, lr: float):
    """AdamW (weight decay 0.01 by default) or SGD with momentum 0.9 (5e-4)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        wd = 5e-4 if args.weight_decay is None else args.weight_decay
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    wd = 0.01 if args.weight_decay is None else args.weight_decay
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def make_scheduler(opt, total_steps: int, warmup_steps: int):
    """Linear warm-up over `warmup_steps`, then a cosine decay to 0 at `total_steps` (per optimizer step)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def init_weights(model, path: str) -> None:
    """Loads the tensors of `path` whose names and shapes match (`--init`), and says what did not."""
    from snnc.runtime.weights import load_state_dict

    state = load_state_dict(path)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    missing = sorted(set(own) - set(matched))
    unused = sorted(set(state) - set(matched))
    print(f"--init {path}: loaded {len(matched)} tensors; {len(missing)} left at their initial values"
          + (f"; {len(unused)} unused: {', '.join(unused[:8])}{' ...' if len(unused) > 8 else ''}" if unused else ""))
