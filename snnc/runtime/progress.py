"""A tqdm progress bar showing loss, accuracy and throughput."""

from __future__ import annotations

import sys
import time
from collections import deque

from tqdm import tqdm

WINDOW = 20  # batches the throughput is averaged over


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool = True, start: int = 0):
        self.bar = tqdm(total=total, initial=start, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5,
                        disable=not enabled, file=sys.stderr, unit="batch")
        self._samples = 0
        # (time, samples so far) at the last WINDOW batch ends, starting from the bar's creation
        self._marks: deque[tuple[float, int]] = deque([(time.perf_counter(), 0)], maxlen=WINDOW + 1)

    def rate(self) -> float:
        """Samples per second over the last WINDOW batches (0 before the first)."""
        (t0, n0), (t1, n1) = self._marks[0], self._marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def update(self, loss: float, acc: float, samples: int) -> None:
        """One batch of `samples` samples (all processes together) is done."""
        self._samples += samples
        self._marks.append((time.perf_counter(), self._samples))
        self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * acc:.1f}%", samples_s=f"{self.rate():.0f}",
                             refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
