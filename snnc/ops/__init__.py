"""The LIF neuron op used by generated code and by users directly (docs/methods.md §1-§3, §9).

- `lif(x, ...)`: spikes of a LIF layer over all T steps, fused (Triton on
  CUDA, an in-place PyTorch loop on the CPU) or the eager reference.
- `bn_lif(x, weight, bias, running_mean, running_var, ...)`: BatchNorm over
  the merged T*B batch folded into the same loops.
- `LIF`: the nn.Module wrapper with the `sg_params` and `iteration` buffers.
"""

from snnc.ops.lif import bn_lif, lif
from snnc.ops.module import LIF

__all__ = ["LIF", "bn_lif", "lif"]
