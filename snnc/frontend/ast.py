"""Syntax tree of a .snn file; every node keeps the Loc of its source span."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from snnc.diagnostics import Loc


# ---- expressions
@dataclass(frozen=True)
class Lit:
    value: object  # int | float | bool
    loc: Loc


@dataclass(frozen=True)
class NameRef:
    name: str
    loc: Loc


@dataclass(frozen=True)
class InChannels:
    loc: Loc


@dataclass(frozen=True)
class Dotted:
    parts: tuple[str, ...]
    loc: Loc


@dataclass(frozen=True)
class ListLit:
    items: tuple["Expr", ...]
    loc: Loc
    is_tuple: bool = False


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / // % == != < <= > >= and or
    left: "Expr"
    right: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Arg:
    name: str | None  # None for positional
    value: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Call:
    """`name(args)`, also a bare `name`; `has_parens` tells which was written."""

    name: str
    args: tuple[Arg, ...]
    loc: Loc
    name_loc: Loc
    has_parens: bool = False

    @property
    def positional(self) -> list[Arg]:
        return [a for a in self.args if a.name is None]

    @property
    def keyword(self) -> list[Arg]:
        return [a for a in self.args if a.name is not None]


Expr = Union[Lit, NameRef, InChannels, Dotted, ListLit, Unary, Binary, Call]


# ---- chains
@dataclass(frozen=True)
class Annotation:
    name: str
    args: tuple[Arg, ...]
    loc: Loc
    name_loc: Loc


@dataclass(frozen=True)
class Group:
    chain: "Chain"
    loc: Loc


@dataclass(frozen=True)
class Element:
    unit: Union[Call, Group]
    repeat: Expr | None
    annotations: tuple[Annotation, ...]
    loc: Loc


@dataclass(frozen=True)
class Chain:
    elements: tuple[Element, ...]
    loc: Loc


@dataclass(frozen=True)
class CondChain:
    then: Chain
    cond: Expr
    otherwise: Union[Chain, "CondChain"]
    loc: Loc


Rhs = Union[Chain, CondChain]


# ---- statements
@dataclass(frozen=True)
class Assign:
    name: str
    name_loc: Loc
    rhs: Rhs
    loc: Loc


@dataclass(frozen=True)
class ParamDecl:
    name: str
    default: Expr | None
    loc: Loc


@dataclass(frozen=True)
class InputDecl:
    kind: str
    kind_loc: Loc
    dims: tuple[Expr, ...]
    loc: Loc
    annotations: tuple["Annotation", ...] = ()  # `@encode(poisson(seed = 0))`


@dataclass(frozen=True)
class DefaultDecl:
    """`neuron lif(...)`, `surrogate dspike(...)` or `norm bn`."""

    what: str  # neuron | surrogate | norm
    call: Call
    loc: Loc


@dataclass(frozen=True)
class BlockDef:
    name: str
    name_loc: Loc
    params: tuple[ParamDecl, ...]
    body: tuple[Assign, ...]
    loc: Loc


@dataclass(frozen=True)
class RecipeDef:
    name: str
    name_loc: Loc
    calls: tuple[Call, ...]
    loc: Loc


@dataclass(frozen=True)
class Network:
    name: str
    name_loc: Loc
    params: tuple[ParamDecl, ...]
    inputs: tuple[InputDecl, ...]
    defaults: tuple[DefaultDecl, ...]
    blocks: tuple[BlockDef, ...]
    recipes: tuple[RecipeDef, ...]
    stages: tuple[Assign, ...]
    loc: Loc
    source: str = ""  # the whole text, kept for hashing and manifests
