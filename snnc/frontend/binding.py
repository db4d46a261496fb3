"""Call arguments in .snn sources: evaluation and binding to parameters, with located errors."""

from __future__ import annotations

from snnc.catalog import SURROGATE_PARAMS, SurrogateSpec, make_surrogate
from snnc.diagnostics import Loc, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.values import CallValue, DottedValue, Env, evaluate
from snnc.params import ParamError, Symbol, bind_args, format_value


def evaluate_args(call: ast.Call, env: Env):
    """(positional values, keyword values) of a call; lists and block names are refused here."""
    pos = [evaluate(a.value, env) for a in call.positional]
    kw = {}
    for a in call.keyword:
        if a.name in kw:
            raise SnncError(f"argument '{a.name}' is given twice", a.loc)
        kw[a.name] = evaluate(a.value, env)
    for value, arg in zip(list(pos) + list(kw.values()), call.positional + call.keyword):
        if isinstance(value, (DottedValue, list, tuple)):
            raise SnncError(f"{call.name} takes numbers, true/false or names here, not {format_value(value)}",
                            arg.value.loc)
        if isinstance(value, CallValue) and call.name not in ("surrogate",):
            pass  # only surrogates take call values; Param.coerce reports the rest
    return pos, kw

def bind(params, pos, kw, call: ast.Call, what: str, defaults: bool = True, env: Env | None = None) -> dict:
    """bind_args with errors located at the offending argument; an unknown bare name gets a hint."""
    try:
        return bind_args(params, pos, kw, what, fill_defaults=defaults)
    except ParamError as exc:
        value = kw.get(exc.arg) if isinstance(exc.arg, str) else (
            pos[exc.arg] if isinstance(exc.arg, int) and exc.arg < len(pos) else None)
        if isinstance(value, Symbol) and env is not None and "must be a number" in exc.message:
            raise SnncError(f"unknown name '{value.name}'", arg_loc(call, exc.arg),
                            did_you_mean(value.name, env.values, "parameter")) from None
        raise SnncError(exc.message, arg_loc(call, exc.arg), exc.hint) from None

def located(fn, call: ast.Call):
    """fn(), with a ParamError located at the argument it names."""
    try:
        return fn()
    except ParamError as exc:
        raise SnncError(exc.message, arg_loc(call, exc.arg), exc.hint) from None

def arg_loc(call: ast.Call, which) -> Loc:
    """The location of argument `which` (a keyword name or a positional index), else the call's."""
    if isinstance(which, str):
        for a in call.keyword:
            if a.name == which:
                return a.loc
    elif isinstance(which, int):
        pos = call.positional
        if which < len(pos):
            return pos[which].loc
    return call.loc


def surrogate(call: ast.Call, pos, kw) -> SurrogateSpec:
    """The surrogate a call such as `arctan(beta = 2)` spells."""
    if call.name not in SURROGATE_PARAMS:
        raise SnncError(f"unknown surrogate '{call.name}'", call.name_loc,
                        did_you_mean(call.name, SURROGATE_PARAMS, "surrogate"))
    try:
        return make_surrogate(call.name, pos, kw)
    except ParamError as exc:
        raise SnncError(exc.message, arg_loc(call, exc.arg), exc.hint) from None
