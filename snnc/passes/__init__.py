"""Passes register themselves on import; import this package to get them all."""

from snnc.passes import expand_blocks  # noqa: F401
from snnc.passes.registry import PASSES, Pass, Step, register, run_pipeline  # noqa: F401
