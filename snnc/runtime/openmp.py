"""OpenMP settings for training processes, applied before torch is imported (the generated train.py
imports this module first).

GNU OpenMP (torch's on Linux) lets a thread that waits at a barrier spin for 300,000 iterations
before it sleeps. On a machine shared with other jobs the spinning threads take the CPU from the
thread they wait for: one busy process beside a 2-thread ResNet-18 step made it 1.50x slower than
1 thread; with 10,000 iterations 1.29x, with no measurable cost on an idle machine (docs/training.md,
"Threads"). A value the user set is kept.
"""

import os

SPIN_COUNT = "10000"

os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
