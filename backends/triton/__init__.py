"""Triton backend: fused LIF forward/backward kernels over all T steps, rendered from Jinja.

- `LifSpec`: what a kernel is specialized for (`LifSpec.from_attrs(...)` from lif attributes).
- `kernel_sources(spec)`: {file name: readable source} of its forward and backward kernels.
- `launch`: the engine `snnc.ops` calls (imports Triton; see that module).
"""

from snnc.backends.triton.codegen import kernel_sources, render
from snnc.backends.triton.spec import LifSpec

__all__ = ["LifSpec", "kernel_sources", "render"]
