"""Passes register themselves on import; import this package to get them all."""

from snnc.passes import (  # noqa: F401
    annotate_mask,
    annotate_surrogate,
    attach_decoding,
    attach_loss,
    bake_decoding,
    dce,
    expand_blocks,
    fold_bn,
    fuse_lif,
    insert_surrogate_modules,
    plan_memory,
    schedule_time,
    strip_aux,
)
from snnc.passes.registry import PASSES, Pass, Step, register, run_pipeline  # noqa: F401
