"""The whole .snn document of an imported network: blocks, then stages.

Stages follow the module's top-level children: a child that holds layers
(an nn.Sequential such as `layer1`, or a module of the user's own used once)
becomes the stage of that name; layers called directly by the top-level
forward form `stem` (before the first such child) and `head` (after the
last); loose functional calls in between join the next stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from snnc.importer.blocks import Instance, find_instances, scope_units
from snnc.importer.chains import Unit, decompose, link
from snnc.importer.elements import Element, Expr, arg_texts, call_texts, comments, compress, element_units, literal
from snnc.importer.records import INPUT, Mapped, Op
from snnc.importer.naming import Names
from snnc.importer.unify import BlockDef, define_blocks


@dataclass
class Stage:
    name: str
    start: str | None
    operands: tuple[str, ...]
    elements: list[Element]
    comment: list[str] = field(default_factory=list)
    join: str | None = None      # add, cat or mul for a chain that starts from named values


@dataclass
class Document:
    network: str
    T: int
    classes: int
    input_dims: tuple[int, ...]
    neuron: str                  # the `neuron` statement's spelling, e.g. lif(decay = 0.5)
    neuron_word: str             # lif or if
    surrogate: str
    blocks: list[BlockDef]
    stages: list[Stage]
    header: list[str]


def _group_key(unit: Unit) -> tuple:
    scope = list(unit.item.outer) if isinstance(unit.item, Instance) else [p for _, p in unit.item.scope]
    if scope:
        return ("module", scope[0].split(".")[0])
    return ("blocks",) if isinstance(unit.item, Instance) else ("loose",)


def _runs(units: list[Unit]) -> list[tuple[tuple, list[Unit]]]:
    """Consecutive units of one top-level child; loose calls between children join the next run."""
    runs: list[tuple[tuple, list[Unit]]] = []
    for u in units:
        key = _group_key(u)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(u)
        else:
            runs.append((key, [u]))
    merged: list[tuple[tuple, list[Unit]]] = []
    carry: list[Unit] = []
    for i, (key, members) in enumerate(runs):
        if key == ("loose",) and 0 < i < len(runs) - 1:
            carry += members
            continue
        merged.append((key, carry + members))
        carry = []
    if len(merged) == 1 and merged[0][0] == ("loose",):  # a flat network: features, then the classifier
        members = merged[0][1]
        cut = next((i for i, u in enumerate(members) if isinstance(u.item, Op) and u.item.kind == "flatten"), 0)
        if cut > 0:
            return [(("features",), members[:cut]), (("head",), members[cut:])]
        return [(("layers",), members)]
    return merged


def _run_name(key: tuple, members: list[Unit], index: int, names: Names) -> str:
    if key[0] == "module":
        return names(key[1], "stage")
    if key[0] == "blocks":
        first = next(u.item for u in members if isinstance(u.item, Instance))  # loose calls may come first
        path = first.path.split(".")[-1]
        return names("blocks" if path.isdigit() else path, "stage")
    if key[0] == "loose":
        return names("stem" if index == 0 else "head")
    return names(key[0])


def stages(mapped: Mapped, instances: dict[str, Instance], taken: set[str], neuron: str) -> list[Stage]:
    """The network's assignments: one per chain, named after its stage; `taken` holds the block names."""
    units = scope_units(mapped.ops, instances, None)
    runs = _runs(units)
    names = Names(taken)
    run_names = [_run_name(key, members, i, names) for i, (key, members) in enumerate(runs)]
    for i, (_, members) in enumerate(runs):
        for u in members:
            u.group = run_names[i]
    chains = decompose(units, INPUT, mapped.output, top=True)
    last = {members[-1].output: run_names[i] for i, (_, members) in enumerate(runs)}
    for c in chains:
        if c.end in last:
            c.name = last[c.end]
    for c in chains:
        if not c.name:
            c.name = names("inputs") if not c.units else names(f"{c.group}_{c.role}")
    link(chains, INPUT, top=True)
    ends = {c.end: c.name for c in chains}
    blocks = {inst.definition.name for inst in instances.values()}
    out = []
    for c in chains:
        elements = [_element(u, mapped.output) for u in element_units(c)]
        elements = compress(elements or ([] if c.operands else [Element("identity", [])]), blocks)
        out.append(Stage(c.name, c.start, tuple(ends[v] for v in c.operands), elements, comments(c.units, neuron),
                         c.join))
    return out


def _element(unit: Unit, output: str) -> Element:
    if isinstance(unit.item, Instance):
        d = unit.item.definition
        return Element(d.name, call_texts(d, {k: literal(v) for k, v in unit.item.args.items()}))
    op: Op = unit.item
    exprs = {k: literal(v) for k, v in op.args.items()}
    if op.id == output and op.kind == "fc":
        exprs["out"] = Expr("classes", [op.args["out"]])
    return Element(op.kind, arg_texts(op.kind, exprs))


def layout(mapped: Mapped, root: nn.Module, neuron: str) -> tuple[list[BlockDef], list[Stage]]:
    """Block definitions (inner blocks first) and the network's stages; `neuron` is the neuron's word."""
    instances = find_instances(mapped, root)
    blocks = define_blocks(mapped, instances, neuron)
    return blocks, stages(mapped, instances, {b.name for b in blocks}, neuron)

