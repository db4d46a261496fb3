"""Evaluation of .snn expressions to Python values, with located errors."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from snnc.diagnostics import SnncError, did_you_mean
from snnc.frontend import ast
from snnc.params import Symbol, format_value


@dataclass(frozen=True)
class CallValue:
    """A call written as a value, e.g. the `arctan(beta=2)` in `@surrogate(arctan(beta=2))`."""

    name: str
    positional: tuple
    keyword: tuple  # ((name, value), ...)

    def __str__(self):
        parts = [format_value(v) for v in self.positional] + [f"{k}={format_value(v)}" for k, v in self.keyword]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class DottedValue:
    """`layer2.1`: a reference to a block instance, resolved by whoever asked for it."""

    parts: tuple[str, ...]

    def __str__(self):
        return ".".join(self.parts)


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
MAX_MAGNITUDE = 1e300


class Env:
    """Names visible to an expression: parameters, plus `in` inside a block."""

    def __init__(self, values: dict, in_channels: int | None = None, symbols_ok: bool = True):
        self.values = values
        self.in_channels = in_channels
        self.symbols_ok = symbols_ok  # bare unknown names become Symbols (e.g. `reset = hard`)

    def child(self, values: dict, in_channels: int | None = None) -> "Env":
        merged = dict(self.values)
        merged.update(values)
        return Env(merged, in_channels, self.symbols_ok)


def _number(value, expr, what: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Symbol):
            raise SnncError(f"unknown name '{value.name}' in {what}", expr.loc)
        raise SnncError(f"{what} needs numbers, not {format_value(value)}", expr.loc)
    return value


def evaluate(expr, env: Env):
    if isinstance(expr, ast.Lit):
        value = expr.value
        if isinstance(value, float) and not math.isfinite(value) or (
                not isinstance(value, bool) and abs(value) > (2**62 if isinstance(value, int) else MAX_MAGNITUDE)):
            raise SnncError("number too large", expr.loc)
        return value
    if isinstance(expr, ast.NameRef):
        if expr.name in env.values:
            return env.values[expr.name]
        if env.symbols_ok:
            return Symbol(expr.name)
        raise SnncError(f"unknown name '{expr.name}'", expr.loc, did_you_mean(expr.name, env.values))
    if isinstance(expr, ast.InChannels):
        if env.in_channels is None:
            raise SnncError("'in' (the block's input channels) is only defined inside a block", expr.loc)
        return env.in_channels
    if isinstance(expr, ast.Dotted):
        return DottedValue(expr.parts)
    if isinstance(expr, ast.ListLit):
        items = [evaluate(item, env) for item in expr.items]
        return tuple(items) if expr.is_tuple else list(items)
    if isinstance(expr, ast.Call):
        pos = tuple(evaluate(a.value, env) for a in expr.positional)
        kw = tuple((a.name, evaluate(a.value, env)) for a in expr.keyword)
        return CallValue(expr.name, pos, kw)
    if isinstance(expr, ast.Unary):
        value = evaluate(expr.operand, env)
        if expr.op == "not":
            return not _truth(value, expr)
        value = _number(value, expr.operand, f"unary '{expr.op}'")
        return -value if expr.op == "-" else value
    if isinstance(expr, ast.Binary):
        return _binary(expr, env)
    raise AssertionError(f"unknown expression {expr!r}")


def _truth(value, expr) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    raise SnncError(f"a condition must be true/false or a number, not {format_value(value)}", expr.loc)


def _binary(expr: ast.Binary, env: Env):
    if expr.op in ("and", "or"):
        left = _truth(evaluate(expr.left, env), expr.left)
        if expr.op == "and" and not left:
            return False
        if expr.op == "or" and left:
            return True
        return _truth(evaluate(expr.right, env), expr.right)
    left = evaluate(expr.left, env)
    right = evaluate(expr.right, env)
    if expr.op in _COMPARE:
        if isinstance(left, Symbol) and isinstance(right, Symbol) and expr.op in ("==", "!="):
            return _COMPARE[expr.op](left, right)
        _number(left, expr.left, f"'{expr.op}'")
        _number(right, expr.right, f"'{expr.op}'")
        return _COMPARE[expr.op](left, right)
    _number(left, expr.left, f"'{expr.op}'")
    _number(right, expr.right, f"'{expr.op}'")
    if expr.op in ("/", "//", "%") and right == 0:
        raise SnncError("division by zero", expr.loc)
    try:
        result = _ARITH[expr.op](left, right)
    except OverflowError:
        raise SnncError("number too large", expr.loc) from None
    if isinstance(result, float) and (not math.isfinite(result) or abs(result) > MAX_MAGNITUDE):
        raise SnncError("number too large", expr.loc)
    if isinstance(result, int) and abs(result) > 2**62:
        raise SnncError("number too large", expr.loc)
    return result
