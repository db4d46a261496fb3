"""Single spellings from the Python API and the CLI, parsed by the .snn grammar:
`arctan(beta=2)`, `lif(tau=2, vth=0.5)`."""

from __future__ import annotations

from snnc.catalog import NEURON_PARAMS, SurrogateSpec, make_surrogate, resolve_lif
from snnc.diagnostics import SOURCES, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.parser import parse_tree
from snnc.frontend.transform import ToAst
from snnc.frontend.values import Env, evaluate
from snnc.params import ParamError, bind_args


def parse_call(text: str, what: str) -> tuple[str, list, dict]:
    """(name, positional values, keyword values) of a spelling like `arctan(beta=2)`."""
    if not isinstance(text, str):
        raise SnncError(f"{what} must be a string such as 'arctan(beta=2)', not {type(text).__name__}")
    file = f"<{what}>"
    SOURCES.add(file, text)
    call: ast.Call = ToAst(file, text).transform(parse_tree(text, file, "call_start"))
    env = Env({})
    pos = [evaluate(a.value, env) for a in call.positional]
    kw = {a.name: evaluate(a.value, env) for a in call.keyword}
    return call.name, pos, kw


def parse_surrogate(text: str | SurrogateSpec) -> SurrogateSpec:
    """`"arctan(beta=2)"` -> SurrogateSpec('arctan', (('beta', 2.0),)); errors say what is allowed."""
    if isinstance(text, SurrogateSpec):
        return text
    name, pos, kw = parse_call(text, "surrogate")
    try:
        return make_surrogate(name, pos, kw)
    except ParamError as exc:
        raise SnncError(exc.message, None, exc.hint) from None


def parse_neuron(text: str) -> tuple[str, dict]:
    """`"lif(tau=2, vth=0.5)"` -> ('lif', canonical lif attributes without the surrogate)."""
    name, pos, kw = parse_call(text, "neuron")
    if name not in NEURON_PARAMS:
        raise SnncError(f"unknown neuron '{name}'", None, did_you_mean(name, NEURON_PARAMS, "neuron"))
    try:
        values = bind_args(NEURON_PARAMS[name], pos, kw, f"neuron '{name}'")
        if name in ("lif", "plif"):
            return name, resolve_lif(values)
    except ParamError as exc:
        raise SnncError(exc.message, None, exc.hint) from None
    return name, {**values, "decay": 1.0, "decay_input": False}
