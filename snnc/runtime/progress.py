"""A tqdm progress bar showing loss, accuracy and throughput."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool = True, start: int = 0):
        self.bar = tqdm(total=total, initial=start, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5,
                        disable=not enabled, file=sys.stderr, unit="batch")
        self._last = time.perf_counter()
        self._dt = 0.0

    def step_time(self) -> float:
        return self._dt

    def update(self, loss: float, acc: float, rate: float) -> None:
        now = time.perf_counter()
        self._dt, self._last = now - self._last, now
        self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * acc:.1f}%", samples_s=f"{rate:.0f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
