"""Validated LIF settings shared by the op, the module and every backend (docs/methods.md §1-§3).

`make_config` turns the keyword arguments of `snnc.ops.lif` into a frozen
`LifConfig`, raising `SnncError` with a message that says what is allowed.
Ranges and the decay/tau rule come from `snnc.catalog`, and the surrogate
spelling is parsed by the same code as .snn files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from snnc.catalog import NEURON_PARAMS, SurrogateSpec, resolve_lif
from snnc.diagnostics import SnncError
from snnc.frontend.spelling import parse_surrogate
from snnc.params import ParamError, bind_args

BACKENDS = ("auto", "triton", "cpu", "torch", "reference")


class _DefaultDecay(float):
    """The default `decay=0.5`, distinguishable from an explicit 0.5 so that `tau=` can replace it."""

    def __repr__(self) -> str:
        return "0.5"


DEFAULT_DECAY = _DefaultDecay(0.5)


@dataclass(frozen=True)
class LifConfig:
    """Everything that defines one LIF layer's math, with `tau` already turned into `decay`.

    `input_scale` is the multiplier of x in the charge: 1, or (1 - decay) when
    `decay_input` is set, computed once here so every backend rounds it alike.
    """

    decay: float
    vth: float
    reset: str
    decay_input: bool
    detach_reset: bool
    surrogate: SurrogateSpec
    mask_p: float
    rescale: bool

    @property
    def input_scale(self) -> float:
        return 1.0 - self.decay if self.decay_input else 1.0

    @property
    def masked(self) -> bool:
        return self.mask_p > 0.0

    @property
    def keep_scale(self) -> float:
        """Factor applied to kept surrogate gradients (docs/methods.md §3: 1, or 1/(1-p) with rescale)."""
        return 1.0 / (1.0 - self.mask_p) if self.rescale else 1.0

    def default_params(self) -> list[float]:
        """The surrogate's parameters from its spelling, in catalog order."""
        return [value for _, value in self.surrogate.params]


@functools.lru_cache(maxsize=256)
def _surrogate(text: str) -> SurrogateSpec:
    # Parsing goes through the .snn grammar; cache it so per-step calls stay cheap.
    return parse_surrogate(text)


def surrogate_spec(surrogate) -> SurrogateSpec:
    """A SurrogateSpec from a DSL spelling such as 'arctan(beta=2)' (or a spec already parsed)."""
    if isinstance(surrogate, SurrogateSpec):
        return surrogate
    if not isinstance(surrogate, str):
        raise SnncError(f"surrogate must be a string such as 'arctan(beta=2)', not {type(surrogate).__name__}")
    return _surrogate(surrogate)


def make_config(*, decay=DEFAULT_DECAY, tau=None, vth=1.0, reset="hard", decay_input=False,
                detach_reset=False, surrogate="triangle(beta=1.0)", mask_p=0.0, rescale=False) -> LifConfig:
    """Validates the LIF keyword arguments; raises SnncError naming the allowed values."""
    values = {"vth": vth, "reset": reset, "decay_input": decay_input, "detach_reset": detach_reset}
    if decay is not DEFAULT_DECAY:
        values["decay"] = decay
    if tau is not None:
        values["tau"] = tau
    try:
        bound = resolve_lif(bind_args(NEURON_PARAMS["lif"], [], values, "lif"))
    except ParamError as exc:
        raise SnncError(exc.message, hint=exc.hint) from None
    if isinstance(mask_p, bool) or not isinstance(mask_p, (int, float)) or not 0.0 <= mask_p < 1.0:
        raise SnncError(f"mask_p must be a number in [0, 1), not {mask_p!r}",
                        hint="mask_p is the probability of dropping a surrogate gradient (docs/methods.md §3)")
    if not isinstance(rescale, bool):
        raise SnncError(f"rescale must be true or false, not {rescale!r}")
    return LifConfig(decay=bound["decay"], vth=bound["vth"], reset=bound["reset"],
                     decay_input=bound["decay_input"], detach_reset=bound["detach_reset"],
                     surrogate=surrogate_spec(surrogate), mask_p=float(mask_p), rescale=rescale)


def check_input(x) -> None:
    """x must be a floating tensor of shape [T, ...] with at least one trailing dimension."""
    if not isinstance(x, torch.Tensor):
        raise SnncError(f"lif expects a torch.Tensor, not {type(x).__name__}")
    if x.dim() < 2:
        raise SnncError(f"lif expects x of shape [T, ...] with rank >= 2, got shape {tuple(x.shape)}",
                        hint="time is dimension 0; add a neuron dimension, e.g. x.unsqueeze(-1)")
    if not x.is_floating_point():
        raise SnncError(f"lif expects a floating-point x, not {x.dtype}")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise SnncError(f"unknown backend {backend!r}", hint="backend must be one of " + ", ".join(BACKENDS))


# Surrogate parameters are kept in float64, exactly as spelled (beta = 0.3 stays 0.3): each
# engine rounds them once to its compute dtype (float32, or float64 for float64 inputs), so
# a float64 layer computes with the spelled values, not with float32 approximations.
PARAM_DTYPE = torch.float64


def surrogate_params(cfg: LifConfig, sg_params, device) -> torch.Tensor:
    """The surrogate parameters as a 1-D tensor on `device` (docs/methods.md §2 catalog order).

    `sg_params` overrides the spelling's values at run time (CPNG changes beta
    through this every epoch without recompiling anything); None keeps them.
    A tensor is used in its own floating dtype (the `LIF` module's buffer is
    float64); anything else becomes float64.
    """
    expected = len(cfg.surrogate.params)
    if sg_params is None:
        return torch.tensor(cfg.default_params(), dtype=PARAM_DTYPE, device=device)
    if not isinstance(sg_params, torch.Tensor):
        sg_params = torch.tensor([float(v) for v in sg_params], dtype=PARAM_DTYPE)
    if sg_params.dim() != 1 or sg_params.numel() != expected:
        names = ", ".join(name for name, _ in cfg.surrogate.params)
        raise SnncError(f"sg_params for {cfg.surrogate.name} must hold {expected} value(s) [{names}], "
                        f"got shape {tuple(sg_params.shape)}")
    if not sg_params.is_floating_point():
        sg_params = sg_params.to(PARAM_DTYPE)
    return sg_params.to(device=device).contiguous()


@dataclass(frozen=True)
class BnAffine:
    """The BatchNorm prologue folded into the LIF kernels: y = x * scale[c] + shift[c] (docs/methods.md §9).

    For x of shape [T, B, C, *spatial] flattened to [T, N], the channel of flat
    element n is (n // inner) % channels, with inner = prod(spatial).
    `scale` and `shift` are [C] tensors in the compute dtype.
    """

    scale: torch.Tensor
    shift: torch.Tensor
    channels: int
    inner: int


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Arithmetic runs in float32 (float64 for float64 inputs); h and spikes are stored in the input dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32
