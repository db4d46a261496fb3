"""The generated CPU LIF kernel: C rendered from the same per-element math as the Triton kernels.

- `codegen.render(spec)`: the C source of one specialization (a `LifSpec`, float32 or float64).
- `build.load(spec)`: compiled on first use by the system C compiler and cached on disk.
- `launch`: the engine `snnc.ops` calls on the CPU (backend "cpu", and "auto" on the CPU).
"""
