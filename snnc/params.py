"""Typed parameter specifications shared by ops, neurons, surrogates, norms and recipes.

A `Param` knows its type, default, range and allowed choices, and turns a value
written by the user into the canonical Python value, or raises `ParamError`
with a message that says what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REQUIRED = object()   # no default: the user must give it
OPTIONAL = object()   # no default and may stay absent


class ParamError(ValueError):
    def __init__(self, message: str, hint: str | None = None, arg: str | int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.arg = arg  # the offending argument (keyword name or positional index), if known


@dataclass(frozen=True)
class Symbol:
    """A bare name used as a value (`reset = hard`), kept until a Param decides its meaning."""

    name: str


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int | float | bool | enum | name | surrogate | ints | any
    default: object = REQUIRED
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def optional(self) -> bool:
        return self.default is OPTIONAL

    def range_text(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{left}{lo}, {hi}{right}"

    def describe(self) -> str:
        """One line for `snnc recipes`, help texts and docs."""
        parts = [f"{self.name}: {self.kind}"]
        if self.choices:
            parts.append("one of " + "|".join(self.choices))
        if self.range_text():
            parts.append("in " + self.range_text())
        if self.default is REQUIRED:
            parts.append("required")
        elif self.default is not OPTIONAL:
            parts.append(f"default {format_value(self.default)}")
        return ", ".join(parts)

    def coerce(self, value):
        """The canonical value for `value`, or ParamError."""
        kind = self.kind
        if kind == "any":
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ParamError(f"'{self.name}' must be true or false, not {format_value(value)}")
        if kind in ("int", "float"):
            if isinstance(value, Symbol):
                raise ParamError(f"'{self.name}' must be a number, not the name '{value.name}'")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"'{self.name}' must be a number, not {format_value(value)}")
            if kind == "int":
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ParamError(f"'{self.name}' must be an integer, not {format_value(value)}")
                    value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ParamError(f"'{self.name}' must be finite")
            self._check_range(value)
            return value
        if kind == "enum":
            name = value.name if isinstance(value, Symbol) else value
            if isinstance(name, str) and name in self.choices:
                return name
            raise ParamError(
                f"'{self.name}' must be one of {', '.join(self.choices)}, not {format_value(value)}"
            )
        if kind == "name":
            if isinstance(value, Symbol):
                return value.name
            if isinstance(value, str):
                return value
            raise ParamError(f"'{self.name}' must be a name, not {format_value(value)}")
        if kind == "floats":
            items = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(i, bool) or not isinstance(i, (int, float)) for i in items):
                raise ParamError(f"'{self.name}' must be a list of numbers, not {format_value(value)}")
            return tuple(float(i) for i in items)
        if kind == "ints":
            items = value if isinstance(value, (list, tuple)) else (value,)
            out = []
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int):
                    raise ParamError(f"'{self.name}' must be a list of integers, not {format_value(value)}")
                self._check_range(item)
                out.append(item)
            return tuple(out)
        if kind == "surrogate":
            from snnc.catalog import SurrogateSpec, make_surrogate, surrogate_from_value

            if isinstance(value, SurrogateSpec):  # e.g. read back from IR text: bind its name and values again
                return make_surrogate(value.name, [], dict(value.params))
            return surrogate_from_value(value)
        raise AssertionError(f"unknown param kind {kind}")

    def _check_range(self, value) -> None:
        ok = True
        if self.lo is not None:
            ok &= value > self.lo if self.lo_open else value >= self.lo
        if self.hi is not None:
            ok &= value < self.hi if self.hi_open else value <= self.hi
        if not ok:
            raise ParamError(f"'{self.name}' = {format_value(value)} is out of range; it must be in {self.range_text()}")


def _num(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x)) if not isinstance(x, bool) else str(x)
    return repr(x)


def format_value(value) -> str:
    """The language spelling of a value (also used by the IR printer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def bind_args(params: tuple[Param, ...], positional: list, keyword: dict, what: str, fill_defaults: bool = True):
    """Binds call arguments to `params`; returns {name: canonical value}.

    Raises ParamError for unknown names, duplicates, missing values and bad values;
    the caller attaches the location. `keyword` maps name -> value. Without
    `fill_defaults` only the given arguments come back (nothing is required).
    """
    by_name = {p.name: p for p in params}
    if len(positional) > len(params):
        raise ParamError(
            f"{what} takes at most {len(params)} positional argument(s), got {len(positional)}",
            "parameters in order: " + ", ".join(p.name for p in params) if params else None,
            arg=len(params),
        )
    values = {}
    for param, value in zip(params, positional):
        values[param.name] = value
    for name, value in keyword.items():
        if name not in by_name:
            from snnc.diagnostics import did_you_mean

            raise ParamError(f"{what} has no parameter '{name}'", did_you_mean(name, by_name, "parameter"), arg=name)
        if name in values:
            raise ParamError(f"{what}: parameter '{name}' is given twice", arg=name)
        values[name] = value
    out = {}
    for param in params:
        if param.name in values:
            try:
                out[param.name] = param.coerce(values[param.name])
            except ParamError as exc:
                where = param.name if param.name in keyword else params.index(param)
                raise ParamError(f"{what}: {exc.message}", exc.hint, arg=where) from None
        elif not fill_defaults:
            continue
        elif param.required:
            raise ParamError(f"{what} needs a value for '{param.name}'", param.describe())
        elif not param.optional:
            out[param.name] = param.default
    return out
