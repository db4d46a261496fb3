"""Elements of written chains, and their arguments as .snn text.

An argument is an `Expr`: its text (a number, a block parameter, `4 * c`)
and its value in every instance where it is used, so that an argument whose
value is always the op's default can be left out, as a person would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from snnc.importer.chains import Chain, Unit
from snnc.importer.records import Op
from snnc.ir.schema import schema
from snnc.params import OPTIONAL, REQUIRED, format_value

POSITIONAL = {"conv": 3, "avgpool": 2, "maxpool": 2, "adaptive_avgpool": 1, "fc": 1, "dropout": 1, "slice": 2}
ALWAYS_WRITTEN = {"conv": ("out", "k"), "avgpool": ("k",), "maxpool": ("k",), "fc": ("out",), "dropout": ("p",),
                  "slice": ("start", "stop")}


@dataclass
class Expr:
    text: str
    values: list                 # its value in each instance that uses it
    at: Callable[[int], object] | None = None  # its value in instance i (block parameters and their multiples)


def literal(value) -> Expr:
    return Expr(format_value(value), [value])


@dataclass
class Element:
    word: str                    # an op (the writer spells `lif` as the chosen neuron), or a block name
    args: list[str]              # argument texts, positional ones first
    repeat: int = 1


def arg_texts(kind: str, exprs: dict[str, Expr]) -> list[str]:
    """The arguments to write for an op; those equal to the op's default everywhere are left out."""
    out, positional = [], True
    params = [p for p in schema(kind).attrs if p.name in exprs]
    for i, p in enumerate(params):
        e = exprs[p.name]
        if p.name == "pad":
            defaults = [k // 2 if kind == "conv" else 0 for k in exprs["k"].values]
        elif p.name == "stride" and kind in ("avgpool", "maxpool"):
            defaults = list(exprs["k"].values)
        else:
            defaults = [None if p.default in (REQUIRED, OPTIONAL) else p.default] * len(e.values)
        if p.name not in ALWAYS_WRITTEN.get(kind, ()) and list(e.values) == defaults:
            positional = False
            continue
        positional = positional and i < POSITIONAL.get(kind, 0)
        out.append(e.text if positional else f"{p.name} = {e.text}")
    return out


def call_texts(definition, exprs: dict[str, Expr]) -> list[str]:
    """Required block arguments positionally, others by name where they differ from the default.

    `definition.params` are the block's parameters in order, each with `name` and `default` (None: required).
    """
    out = []
    for p in definition.params:
        e = exprs[p.name]
        if p.default is None:
            out.append(e.text)
        elif any(v != p.default for v in e.values):
            out.append(f"{p.name} = {e.text}")
    return out


def element_units(chain: Chain) -> list[Unit]:
    """The units written after the chain's start (an add chain's first unit is its `add(...)`)."""
    return chain.units[1:] if chain.operands else chain.units


def chain_elements(chain: Chain) -> list[tuple[str, dict]]:
    """(word, argument values) of each element; a chain that only names its input is a lone `identity`."""
    units = element_units(chain)
    if not units and not chain.operands:
        return [("identity", {})]
    return [(u.item.kind, dict(u.item.args)) if isinstance(u.item, Op) else
            (u.item.definition.name, dict(u.item.args)) for u in units]


def compress(elements: list[Element], blocks: set[str]) -> list[Element]:
    """Consecutive equal block calls become one call with `x N`."""
    out: list[Element] = []
    for el in elements:
        if out and el.word in blocks and out[-1].word == el.word and out[-1].args == el.args:
            out[-1].repeat += 1
        else:
            out.append(el)
    return out


def comments(units: list[Unit], neuron: str) -> list[str]:
    """What the layers of a chain replaced or dropped."""
    seen: list[str] = []
    for u in units:
        if isinstance(u.item, Op):
            for text in ([f"{neuron} replaces {u.item.origin}"] if u.item.origin else []) + u.item.notes:
                if text not in seen:
                    seen.append(text)
    return seen
