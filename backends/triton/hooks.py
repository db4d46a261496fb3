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
MASK_CODE: tuple[str, ...] = (
    "bits, _, _, _ = tl.philox(mask_key, offs, zero + t, zero + iteration, zero)",
    "keep = tl.uint_to_uniform_float(bits) >= mask_p",
)


def surrogate_code(name: str) -> tuple[str, ...]:
    return SURROGATE_CODE[name]


def surrogate_param_loads(name: str) -> list[tuple[str, int]]:
    """(parameter name, index in the sg_params tensor), in catalog order."""
    return [(param.name, index) for index, param in enumerate(SURROGATE_PARAMS[name])]


def mask_code() -> tuple[str, ...]:
    return MASK_CODE
