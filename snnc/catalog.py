"""Neurons, surrogate gradients and norms: spellings, parameters and defaults (docs/methods.md §1, §2, §9)."""

from __future__ import annotations

from dataclasses import dataclass

from snnc.params import OPTIONAL, Param, ParamError, Symbol, bind_args, format_value

POSITIVE = dict(lo=0.0, lo_open=True)

NEURON_PARAMS: dict[str, tuple[Param, ...]] = {
    "lif": (
        Param("decay", "float", OPTIONAL, lo=0.0, lo_open=True, hi=1.0,
              doc="membrane multiplier per step; default 0.5 unless tau is given"),
        Param("tau", "float", OPTIONAL, lo=1.0, lo_open=True,
              doc="time constant; decay = 1 - 1/tau (mutually exclusive with decay)"),
        Param("vth", "float", 1.0, **POSITIVE, doc="firing threshold; fires when h >= vth"),
        Param("reset", "enum", "hard", choices=("hard", "soft"), doc="hard: v = h(1-s); soft: v = h - vth*s"),
        Param("decay_input", "bool", False, doc="charge as h = v + (x - v)/tau"),
        Param("detach_reset", "bool", False, doc="stop the gradient through the reset term"),
    ),
    "if": (
        Param("vth", "float", 1.0, **POSITIVE, doc="firing threshold"),
        Param("reset", "enum", "hard", choices=("hard", "soft")),
        Param("detach_reset", "bool", False),
    ),
    # PLIF (Fang et al., ICCV 2021): a LIF whose decay is learned, through k = sigmoid(w) with
    # decay = 1 - k; the charge defaults to the paper's h = v + (x - v) / tau.
    "plif": (
        Param("decay", "float", OPTIONAL, lo=0.0, lo_open=True, hi=1.0, hi_open=True,
              doc="initial decay; default 0.5 unless tau is given"),
        Param("tau", "float", OPTIONAL, lo=1.0, lo_open=True, doc="initial time constant; decay = 1 - 1/tau"),
        Param("vth", "float", 1.0, **POSITIVE, doc="firing threshold"),
        Param("reset", "enum", "hard", choices=("hard", "soft")),
        Param("decay_input", "bool", True, doc="charge as h = v + (x - v) k (the paper's); false: h = (1 - k) v + x"),
        Param("detach_reset", "bool", False),
        Param("per_channel", "bool", False, doc="one learnable decay per channel instead of one per layer"),
    ),
}
DEFAULT_DECAY = 0.5
LEARNABLE_NEURONS = ("plif",)  # neurons whose decay is a trained parameter (IR: lif with learn_decay)

# Input encoders (`input image[...] @encode(poisson(seed = 0))`); `direct` is the default.
ENCODER_PARAMS: dict[str, tuple[Param, ...]] = {
    "direct": (),
    "poisson": (Param("seed", "int", 0, lo=0, hi=2**62, doc="seed of the spike draws"),),
}

SURROGATE_PARAMS: dict[str, tuple[Param, ...]] = {
    "triangle": (Param("beta", "float", 1.0, **POSITIVE, doc="peak height; support |x| < 1/beta"),),
    "rectangle": (Param("beta", "float", 1.0, **POSITIVE, doc="height; support |x| < 1/(2 beta)"),),
    "arctan": (Param("beta", "float", 1.0, **POSITIVE, doc="peak height"),),
    "dspike": (
        Param("b", "float", 2.5, **POSITIVE, doc="temperature"),
        Param("region", "float", 1.0, **POSITIVE, doc="support |x| <= region"),
    ),
    "sigmoid": (Param("alpha", "float", 4.0, **POSITIVE, doc="slope; peak alpha/4"),),
}

NORM_PARAMS: dict[str, tuple[Param, ...]] = {
    "bn": (
        Param("eps", "float", 1e-5, **POSITIVE),
        Param("momentum", "float", 0.1, lo=0.0, hi=1.0),
    ),
    "tdbn": (
        Param("eps", "float", 1e-5, **POSITIVE),
        Param("momentum", "float", 0.1, lo=0.0, hi=1.0),
    ),
}


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate gradient with all of its parameters resolved, e.g. dspike(b=2.5, region=1.0)."""

    name: str
    params: tuple[tuple[str, float], ...]

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={format_value(v)}" for k, v in self.params)
        return f"{self.name}({inner})"

    def __getitem__(self, key: str) -> float:
        return dict(self.params)[key]

    def replace(self, **changes) -> "SurrogateSpec":
        merged = dict(self.params)
        merged.update(changes)
        return make_surrogate(self.name, [], merged)


def make_surrogate(name: str, positional: list, keyword: dict) -> SurrogateSpec:
    if name not in SURROGATE_PARAMS:
        from snnc.diagnostics import did_you_mean

        raise ParamError(f"unknown surrogate '{name}'", did_you_mean(name, SURROGATE_PARAMS, "surrogate"))
    params = SURROGATE_PARAMS[name]
    values = bind_args(params, positional, keyword, f"surrogate '{name}'")
    return SurrogateSpec(name, tuple((p.name, values[p.name]) for p in params))


def surrogate_from_value(value) -> SurrogateSpec:
    """Accepts a bare name (`arctan`) or a call value from the expression evaluator."""
    from snnc.frontend.values import CallValue

    if isinstance(value, Symbol):
        return make_surrogate(value.name, [], {})
    if isinstance(value, CallValue):
        return make_surrogate(value.name, list(value.positional), dict(value.keyword))
    raise ParamError(f"a surrogate must be written like arctan(beta=2), not {format_value(value)}")


def resolve_lif(values: dict) -> dict:
    """Canonical lif attributes from bound lif or plif arguments: `tau` becomes `decay`, plif's
    `per_channel` becomes `learn_decay` (layer or channel)."""
    if "decay" in values and "tau" in values:
        raise ParamError("give either 'decay' or 'tau', not both", "decay = 1 - 1/tau", arg="tau")
    out = dict(values)
    if "per_channel" in out:  # plif: the IR's lif with a learnable decay
        out["learn_decay"] = "channel" if out.pop("per_channel") else "layer"
    if "tau" in out:
        out["decay"] = 1.0 - 1.0 / out.pop("tau")
    out.setdefault("decay", DEFAULT_DECAY)
    if out.get("decay_input") and out["decay"] >= 1.0:
        raise ParamError("decay_input = true needs decay < 1 (tau > 1): the input would be scaled by 0",
                         arg="decay_input")
    return out
