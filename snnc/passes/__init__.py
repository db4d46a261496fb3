"""Passes register themselves on import; import this package to get them all."""

from snnc.passes import (  # noqa: F401
    annotate_mask,
    annotate_surrogate,
    attach_decoding,
    attach_loss,
    expand_blocks,
    fuse_lif,
    insert_surrogate_modules,
    schedule_time,
)
from snnc.passes.registry import PASSES, Pass, Step, register, run_pipeline  # noqa: F401
