"""Data parallelism through torch.distributed, set up from torchrun's environment.

Without torchrun (no WORLD_SIZE) everything here is a no-op on one process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, NoReturn

import torch
import torch.distributed as tdist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    return World(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def sum_across_ranks(t: torch.Tensor) -> torch.Tensor:
    if not active():
        return t
    device = "cuda" if tdist.get_backend() == "nccl" else "cpu"
    out = t.detach().to(device).clone()
    tdist.all_reduce(out)
    return out.to(t.device)


def mean_across_ranks(t: torch.Tensor) -> torch.Tensor:
    if not active():
        return t
    return sum_across_ranks(t) / tdist.get_world_size()


def pool_moments(count: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                 reduce: Callable[[torch.Tensor], torch.Tensor] = sum_across_ranks) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population variance) of all ranks' elements together, from each rank's element count,
    mean and population variance; float64, exact for any shard sizes.

    The pooled mean weights each rank's mean by its count; the pooled variance adds each rank's
    variance and the spread of its mean about the pooled mean (Chan et al.'s parallel formula),
    which avoids the cancellation of E[h^2] - mu^2. `reduce` sums over ranks; summing stacked
    [ranks, ...] tensors over dim 0 simulates the ranks in one process.
    """
    count, mean, var = (t.double() for t in (count, mean, var))
    n = reduce(count)
    mu = reduce(count * mean) / n
    return mu, reduce(count * (var + (mean - mu) ** 2)) / n


def any_across_ranks(*flags: bool) -> list[bool]:
    """For each flag: whether it is set on any rank (one small all-reduce; no-op on one process)."""
    if not active():
        return [bool(f) for f in flags]
    totals = sum_across_ranks(torch.tensor([float(bool(f)) for f in flags], dtype=torch.float64))
    return [bool(v > 0) for v in totals.tolist()]


def barrier() -> None:
    if active():
        tdist.barrier()


def shutdown() -> bool:
    """Destroy the process group; whether there was one."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
        return True
    return False


def end_process(code: int) -> NoReturn:
    """End a worker of a distributed run now, without interpreter finalization.

    DDP keeps the gloo process group and its worker threads alive past destroy_process_group
    (torch 2.13: constructing DistributedDataParallel is enough). A worker thread that drops its
    reference to a finished collective's tensor after the interpreter has begun finalizing needs
    the GIL, cannot take it, and the process aborts with "terminate called without an active
    exception": torchrun then reports a finished run as failed (2 of 300 runs on a busy 2-core
    machine). Everything a run writes is closed before this point; stdout and stderr are flushed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
