"""What one generated LIF kernel is specialized for (the `LifSpec`), and its readable name.

Only structure is specialized: the charge form, the reset, detach_reset, the
surrogate's formula, masking, the BN prologue, the dtype and (optionally) T.
decay, vth, the surrogate's parameters, mask_p and the mask key are runtime
arguments, so changing them (CPNG changes beta every epoch) never recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from snnc.diagnostics import SnncError
from snnc.ops.config import DEFAULT_DECAY, LifConfig, make_config

DTYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64"}
KINDS = ("fwd", "bwd", "mask")


@dataclass(frozen=True)
class LifSpec:
    reset: str            # "hard" | "soft"
    decay_input: bool     # h = decay*v + (1-decay)*x instead of decay*v + x
    detach_reset: bool
    surrogate: str        # formula name; its parameters are runtime values
    masked: bool          # MSG masking (mask_p > 0)
    rescale: bool         # kept gradients divided by (1 - mask_p); only when masked
    fused_bn: bool        # BatchNorm affine folded into the prologue
    dtype: str            # storage dtype of x, spikes and h
    T: int | None         # constexpr T (unrolled loop) or None for a runtime T
    learn_decay: bool = False  # PLIF: decay = 1 - k with k = sigmoid(w) per layer or channel, a runtime tensor

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise SnncError(f"unsupported dtype {self.dtype!r}", hint="one of " + ", ".join(DTYPES))
        if self.T is not None and (isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 1):
            raise SnncError(f"T must be a positive integer or None (runtime T), not {self.T!r}")
        if self.learn_decay and self.fused_bn:
            raise SnncError("a learnable decay (PLIF) has no fused-BN kernels", hint="run the BN as its own layer")

    @classmethod
    def from_config(cls, cfg: LifConfig, *, fused_bn: bool = False, dtype: str = "float32",
                    T: int | None = None, learn_decay: bool = False) -> "LifSpec":
        return cls(reset=cfg.reset, decay_input=cfg.decay_input, detach_reset=cfg.detach_reset,
                   surrogate=cfg.surrogate.name, masked=cfg.masked, rescale=cfg.masked and cfg.rescale,
                   fused_bn=fused_bn, dtype=dtype, T=T, learn_decay=learn_decay)

    @classmethod
    def from_attrs(cls, *, decay=DEFAULT_DECAY, tau=None, vth=1.0, reset="hard", decay_input=False,
                   detach_reset=False, surrogate="triangle(beta=1.0)", mask_p=0.0, rescale=False,
                   fused_bn=False, dtype="float32", T=None, learn_decay=False) -> "LifSpec":
        """The spec for IR-style lif attributes (validated as `snnc.ops.lif` validates them)."""
        cfg = make_config(decay=decay, tau=tau, vth=vth, reset=reset, decay_input=decay_input,
                          detach_reset=detach_reset, surrogate=surrogate, mask_p=mask_p, rescale=rescale)
        return cls.from_config(cfg, fused_bn=fused_bn, dtype=dtype, T=T, learn_decay=learn_decay)

    def kernel_name(self, kind: str) -> str:
        """A readable Python identifier naming exactly what `kind` depends on."""
        t = f"T{self.T}" if self.T is not None else "Tvar"
        if kind == "mask":
            return f"lif_mask_{t}"
        op = "plif" if self.learn_decay else "lif"
        parts = [f"{op}_{kind}", self.reset, "decayinput" if self.decay_input else "decay"]
        if self.fused_bn:
            parts.append("bn")
        if kind == "bwd":
            parts.append(self.surrogate)
            if self.detach_reset:
                parts.append("detach")
            if self.masked:
                parts.append("mask_rescale" if self.rescale else "mask")
        parts += [DTYPES[self.dtype], t]
        return "_".join(parts)

    def describe(self, kind: str) -> str:
        """One line naming the specialization, for the generated file's header."""
        charge = "h = decay*v + (1 - decay)*x" if self.decay_input else "h = decay*v + x"
        if self.learn_decay:
            charge = ("h = v + (x - v)*k" if self.decay_input else "h = v - v*k + x") + ", k = sigmoid(w) learned"
        items = [f"reset={self.reset}", f"charge: {charge}"]
        if kind == "bwd":
            items += [f"detach_reset={str(self.detach_reset).lower()}", f"surrogate={self.surrogate}",
                      f"mask={'on' if self.masked else 'off'}", f"rescale={str(self.rescale).lower()}"]
        items += [f"fused_bn={str(self.fused_bn).lower()}", f"dtype={self.dtype}",
                  f"T={self.T} (constexpr)" if self.T is not None else "T=runtime"]
        if kind == "mask":
            items = items[-1:]
        return ", ".join(items)
