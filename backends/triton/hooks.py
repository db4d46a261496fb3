"""Python hooks the LIF templates call: Triton code for the per-element math and for the MSG mask.

Templates only branch on flags and insert these lines. The per-element math (charge,
fire, reset, surrogates, the reverse step) is written once, target-neutral, in
`snnc.backends.lif_math` (docs/methods.md §1-§3) and rendered to Triton here; the
mask draw (Philox, §3) and the storage casts are Triton's own. The surrogate code
reads z = h - vth and the parameters loaded from the per-layer tensor under
their catalog names, and assigns `sg`.
"""

from __future__ import annotations

from snnc.backends import lif_math
from snnc.catalog import SURROGATE_PARAMS

# The math itself is target-neutral, in snnc.backends.lif_math (shared with the CPU kernel).
SURROGATE_CODE: dict[str, tuple[str, ...]] = {name: lif_math.to_triton(lines)
                                              for name, lines in lif_math.SURROGATES.items()}


# Philox (the generator behind tl.rand) keyed by hash(seed, rank, layer), with the
# counter (element offset, t, iteration, 0): one independent U[0,1) per element,
# step and iteration, and the iteration read from a device tensor (no host sync).
# The draw u is float32 and is compared with mask_p rounded to float32 in every kernel dtype,
# as the PyTorch path compares its float32 draws: a mask depends on its key and p only.
MASK_CODE: tuple[str, ...] = (
    "bits, _, _, _ = tl.philox(mask_key, offs, zero + t, zero + iteration, zero)",
    "keep = tl.uint_to_uniform_float(bits) >= mask_p.to(tl.float32)",
)

# The runtime scalars every kernel loads from one small tensor in its compute dtype (see
# `launch.scalars`), by index. A Python float argument would be typed float32 by Triton on a
# GPU (the interpreter keeps float64), so float64 kernels would run with float32 decay and
# vth there; a constexpr would recompile for every value. Loaded from memory, the values are
# exact in the compute dtype on every target, never recompile, and cost one cached load.
SCALARS: tuple[str, ...] = ("decay", "input_scale", "vth", "mask_p", "keep_scale")


def scalar_loads(kind: str, decay_input: bool, masked: bool, rescale: bool) -> list[tuple[str, int]]:
    """(name, index in the scalars tensor) of the scalars kernel `kind` reads."""
    if kind == "mask":
        names = ["mask_p"]
    else:
        names = ["decay", "vth"] + (["input_scale"] if decay_input else [])
        if kind == "bwd" and masked:
            names += ["mask_p"] + (["keep_scale"] if rescale else [])
    return [(name, SCALARS.index(name)) for name in names]


def storage_cast(expr: str, storage: str, compute: str, spike: bool = False) -> str:
    """Code converting `expr` (a compute-dtype value, or a bool spike) to the storage dtype.

    bfloat16 is rounded to nearest even with integer operations (the rounding torch uses),
    not with `.to(tl.bfloat16)`: Triton's interpreter truncates float32 to bfloat16 (3.9
    rounds half the values of a random sample wrongly), so the kernels would compute one
    thing in tests and another on a GPU. The integer form is the same on both; NaN stays NaN.
    """
    if spike:
        expr = f"{expr}.to({compute})"
    if storage != "tl.bfloat16":
        return f"{expr}.to({storage})" if storage != compute else expr
    bits = f"{expr}.to(tl.uint32, bitcast=True)"
    rounded = f"(({bits} + 0x7FFF + (({bits} >> 16) & 1)) >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)"
    if spike:
        return rounded  # 0 or 1: no NaN
    return f"tl.where({expr} == {expr}, {rounded}, {expr}.to(tl.bfloat16))"


def surrogate_code(name: str) -> tuple[str, ...]:
    return SURROGATE_CODE[name]


def surrogate_param_loads(name: str) -> list[tuple[str, int]]:
    """(parameter name, index in the sg_params tensor), in catalog order."""
    return [(param.name, index) for index, param in enumerate(SURROGATE_PARAMS[name])]


def mask_code() -> tuple[str, ...]:
    return MASK_CODE


def step_code(spec) -> dict[str, tuple[str, ...]]:
    """Triton lines of the per-element steps of `spec` (see lif_math)."""
    return {
        "charge_code": lif_math.to_triton(lif_math.charge(spec.decay_input, spec.fused_bn)),
        "fire_code": lif_math.to_triton(lif_math.FIRE),
        "z_code": lif_math.to_triton(lif_math.SURROGATE_INPUT),
        "reset_code": lif_math.to_triton(lif_math.reset(spec.reset)),
        "mask_apply_code": lif_math.to_triton(lif_math.apply_mask(spec.rescale)),
        "gradient_code": lif_math.to_triton(lif_math.gradient(spec.reset, spec.detach_reset, spec.decay_input)),
    }
