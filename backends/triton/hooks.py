"""Python hooks the LIF templates call: Triton code for each surrogate and for the MSG mask.

Templates only branch on flags and insert these lines; all formulas live here,
written from docs/methods.md §2 (surrogates) and §3 (masks). The surrogate code
reads z = h - vth and the parameters loaded from the per-layer tensor under
their catalog names, and assigns `sg`.
"""

from __future__ import annotations

from snnc.catalog import SURROGATE_PARAMS

SURROGATE_CODE: dict[str, tuple[str, ...]] = {
    "triangle": (
        "sg = beta * tl.maximum(1.0 - beta * tl.abs(z), 0.0)",
    ),
    "rectangle": (
        "sg = tl.where(tl.abs(z) < 0.5 / beta, beta, 0.0)",
    ),
    "arctan": (
        "w = 3.141592653589793 * beta * z",
        "sg = beta / (1.0 + w * w)",
    ),
    "dspike": (
        # 1 - tanh(b z)^2 = 4 e / (1 + e)^2 with e = exp(-2 b |z|), which never overflows
        "e = tl.exp(-2.0 * b * tl.abs(z))",
        "e_region = tl.exp(-2.0 * b * region)",
        "tanh_region = (1.0 - e_region) / (1.0 + e_region)",
        "sg = b * (4.0 * e / ((1.0 + e) * (1.0 + e))) / (2.0 * tanh_region)",
        "sg = tl.where(tl.abs(z) <= region, sg, 0.0)",  # closed support, as the SML code
    ),
    "sigmoid": (
        "sig = 1.0 / (1.0 + tl.exp(-alpha * z))",
        "sg = alpha * sig * (1.0 - sig)",
    ),
}

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
