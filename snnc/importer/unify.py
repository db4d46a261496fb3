"""The instances of one module class -> parameterized `block` definitions.

Instances whose chains have the same names and wiring share a definition.
An argument that differs between them becomes a block parameter (`c` for conv
channels, `stride`, ...; an exact multiple of the channels is written `4 * c`).
A chain whose layers differ (a ResNet shortcut with or without its 1x1 conv)
becomes `A if COND else B`, COND being the first of a fixed list of simple
conditions on the parameters and `in` that holds for exactly the instances
taking A (`stride != 1 or in != c`, `in != c`, `stride != 1`, `p == v`).
When none does, or a chain has more than two forms, the class splits into
several definitions (`basic`, `basic_2`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from snnc.importer.blocks import Instance, scope_units
from snnc.importer.chains import Chain, decompose, link
from snnc.importer.elements import Element, Expr, arg_texts, call_texts, chain_elements, comments, element_units
from snnc.importer.records import Mapped, Op
from snnc.importer.naming import Names, block_base
from snnc.ir.schema import SCHEMAS, schema
from snnc.params import OPTIONAL, REQUIRED, format_value

PARAM_NAMES = {("conv", "out"): "c", ("fc", "out"): "n"}  # otherwise the argument's own name
CHANNELS = ("conv", "out")
OPS = tuple(SCHEMAS)  # words that are ops; any other element word is a block


@dataclass
class Param:
    name: str
    key: tuple[str, str]         # (op or block, argument) it stands for
    values: list                 # its value in every instance
    default: object = None       # None: required


@dataclass
class DefChain:
    name: str
    start: str | None
    operands: tuple[str, ...]
    variants: list[list[Element]]   # one; or two, `cond` choosing the first
    cond: str | None = None
    comment: list[str] = field(default_factory=list)
    join: str | None = None         # the op of a chain that starts from named values: add, cat, mul


@dataclass
class BlockDef:
    name: str
    cls_name: str
    params: list[Param]
    chains: list[DefChain]


class _Split(Exception):
    """The instances cannot share one definition."""


def define_blocks(mapped: Mapped, instances: dict[str, Instance], neuron: str) -> list[BlockDef]:
    """Definitions for every instance, inner blocks first; sets each instance's definition and args."""
    names = Names()
    by_class: dict[tuple[type, int], list[Instance]] = {}  # (class, height): a class nested in itself splits
    heights = _heights(instances)
    for inst in instances.values():
        by_class.setdefault((inst.cls, heights[inst.key]), []).append(inst)
    order = sorted(by_class, key=lambda key: (-max(_depth(i) for i in by_class[key]), key[1]))
    base: dict[type, str] = {}
    for cls, _ in order:
        base.setdefault(cls, names(block_base(cls.__name__), "block"))
    count: dict[type, int] = {}
    definitions: list[BlockDef] = []
    for key in order:
        cls, group = key[0], by_class[key]
        for inst in group:
            _chains(inst, mapped.ops, instances, names.taken)
        defs = []
        for members in _groups(group, _skeleton):
            try:
                defs.append(_unify(members, neuron))
            except _Split:
                defs += [_unify(sub, neuron) for sub in _groups(members, _signature)]
        for d in defs:
            count[cls] = count.get(cls, 0) + 1
            d.name = base[cls] if count[cls] == 1 else names(f"{base[cls]}_{count[cls]}")
        definitions += defs
    return definitions


def _depth(inst: Instance) -> int:
    return 0 if inst.parent is None else 1 + _depth(inst.parent)


def _heights(instances: dict[str, Instance]) -> dict[str, int]:
    """How deep instances of its own class nest inside each instance (DLA's Tree holds Trees): 0 for none."""
    height = {key: 0 for key in instances}
    for inst in sorted(instances.values(), key=_depth, reverse=True):
        outer = inst.parent
        while outer is not None:
            if outer.cls is inst.cls:
                height[outer.key] = max(height[outer.key], height[inst.key] + 1)
                break
            outer = outer.parent
    return height


def _chains(inst: Instance, ops: list[Op], instances: dict[str, Instance], taken: set[str]) -> None:
    inst.chains = decompose(scope_units(ops, instances, inst), inst.input, inst.output, top=False)
    names = Names(taken)
    for c in inst.chains:
        c.name = names(c.role)
    link(inst.chains, inst.input, top=False)


def _skeleton(inst: Instance) -> tuple:
    ends = {c.end: c.name for c in inst.chains}
    return tuple((c.name, c.start, tuple(ends[v] for v in c.operands), c.join) for c in inst.chains)


def _kinds(chain: Chain) -> tuple[str, ...]:
    return tuple(word for word, _ in chain_elements(chain))


def _signature(inst: Instance) -> tuple:
    return _skeleton(inst), tuple(_kinds(c) for c in inst.chains)


def _groups(items: list, key) -> list[list]:
    out: dict = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return list(out.values())


@dataclass
class _Slot:
    """One argument of one element of one form of a chain, across the instances that have it."""

    chain: int
    variant: int
    element: int
    arg: str
    key: tuple[str, str]
    members: list[int]
    values: list
    full: bool                   # every instance has it (the chain has one form)
    own_default: object          # the op's or inner block's default for it: REQUIRED, a value, or None (none)


def _unify(instances: list[Instance], neuron: str) -> BlockDef:
    first = instances[0]
    forms: list[list[tuple[tuple[str, ...], list[int]]]] = []
    for j in range(len(first.chains)):
        kinds: dict[tuple, list[int]] = {}
        for i, inst in enumerate(instances):
            kinds.setdefault(_kinds(inst.chains[j]), []).append(i)
        if len(kinds) > 2:
            raise _Split
        # the form with layers first: a shortcut conv rather than `identity`
        forms.append(sorted(kinds.items(), key=lambda kv: (kv[0] == ("identity",), -len(kv[0]))))
    slots = []
    for j, chain_forms in enumerate(forms):
        for v, (kinds, members) in enumerate(chain_forms):
            for e, word in enumerate(kinds):
                args = [chain_elements(instances[i].chains[j])[e][1] for i in members]
                defaults = _own_defaults(word, element_units(instances[members[0]].chains[j]), e)
                key = word if word in OPS else f"block {word}"
                slots += [_Slot(j, v, e, a, (key, a), members, [x[a] for x in args], len(chain_forms) == 1,
                                defaults.get(a)) for a in args[0]]
    params: list[Param] = []
    exprs: dict[tuple, Expr] = {}
    taken = {c.name for c in first.chains}
    for slot in sorted(slots, key=lambda s: not s.full):
        exprs[(slot.chain, slot.variant, slot.element, slot.arg)] = _resolve(slot, params, len(instances), taken)
    ordered = [p for p in params if p.default is None] + [p for p in params if p.default is not None]
    definition = BlockDef("", first.cls.__name__, ordered, [])
    ends = {c.end: c.name for c in first.chains}
    for j, chain_forms in enumerate(forms):
        rows = []
        for v, (kinds, members) in enumerate(chain_forms):
            sample = element_units(instances[members[0]].chains[j])
            row = []
            for e, word in enumerate(kinds):
                ex = {a: x for (cj, cv, ce, a), x in exprs.items() if (cj, cv, ce) == (j, v, e)}
                args = arg_texts(word, ex) if word in OPS else call_texts(sample[e].item.definition, ex)
                row.append(Element(word, args))
            rows.append(row)
        cond = None
        if len(chain_forms) == 2:
            # channel expressions of this chain first (a shortcut's `4 * c`), then of the whole block
            outs = [(cj, x) for (cj, _, _, a), x in exprs.items() if a == "out" and x.at]
            channel_exprs = [x for cj, x in outs if cj == j] + [x for cj, x in outs if cj != j]
            cond = _condition(set(chain_forms[0][1]), params, channel_exprs, instances)
        chain = first.chains[j]
        units = [u for inst in instances for u in inst.chains[j].units]
        definition.chains.append(DefChain(chain.name, chain.start, tuple(ends[v] for v in chain.operands), rows,
                                          cond, comments(units, neuron), chain.join))
    for i, inst in enumerate(instances):
        inst.definition = definition
        inst.args = {p.name: p.values[i] for p in ordered}
    return definition


def _resolve(slot: _Slot, params: list[Param], count: int, taken: set[str]) -> Expr:
    """The expression for one argument: an existing parameter, a constant, a multiple of the channels, or a new
    parameter."""
    vals = slot.values

    def restricted(p: Param) -> list:
        return [p.values[i] for i in slot.members]

    match = next((p for p in params if p.key == slot.key and restricted(p) == vals), None)
    constant = len({repr(v) for v in vals}) == 1
    if match is not None and (not constant or not slot.full):
        return Expr(match.name, vals, lambda i, p=match: p.values[i])
    if constant:
        return Expr(format_value(vals[0]), vals)
    if slot.key == CHANNELS:
        for p in params:
            base = restricted(p)
            if p.key == CHANNELS and base[0] and vals[0] % base[0] == 0:
                m = vals[0] // base[0]
                if m >= 2 and all(v == m * b for v, b in zip(vals, base)):
                    return Expr(f"{m} * {p.name}", vals, lambda i, p=p, m=m: m * p.values[i])
    fill = _most_common(vals)  # instances without this element: any value will do; the default is simplest
    full = [fill] * count
    for i, v in zip(slot.members, vals):
        full[i] = v
    name = Names(taken | {p.name for p in params})(PARAM_NAMES.get(slot.key, slot.arg), "p")
    param = Param(name, slot.key, full, _default(slot, full))
    params.append(param)
    return Expr(name, vals, lambda i, p=param: p.values[i])


def _own_defaults(word: str, units, index: int) -> dict:
    """{argument: its default in the op or the called block}: REQUIRED where it has none."""
    if word in OPS:
        return {p.name: None if p.default is OPTIONAL else p.default for p in schema(word).attrs}
    return {p.name: REQUIRED if p.default is None else p.default for p in units[index].item.definition.params}


def _default(slot: _Slot, values: list):
    """None (required) for channels and other required arguments; else the op's own default where some
    instance uses it (stride 1), else the most common value."""
    if slot.own_default is REQUIRED:
        return None
    if slot.own_default is not None and slot.own_default in values:
        return slot.own_default
    return _most_common(values)


def _most_common(values: list):
    counts = Counter(repr(v) for v in values)
    best = max(counts.values())
    return next(v for v in values if counts[repr(v)] == best)


def _condition(then: set[int], params: list[Param], channels: list[Expr], instances: list[Instance]) -> str:
    """A condition true for exactly the instances in `then`."""
    ins = [inst.in_channels for inst in instances]
    unique: dict[str, Expr] = {}
    for c in channels:
        unique.setdefault(c.text, c)
    channels = list(unique.values())
    defaulted = [p for p in params if p.default is not None and not isinstance(p.default, bool)]
    candidates = []
    for p in defaulted:
        for c in channels:
            candidates.append((f"{p.name} != {format_value(p.default)} or in != {c.text}",
                               lambda i, p=p, c=c: p.values[i] != p.default or ins[i] != c.at(i)))
    for c in channels:
        candidates.append((f"in != {c.text}", lambda i, c=c: ins[i] != c.at(i)))
    for p in defaulted:
        candidates.append((f"{p.name} != {format_value(p.default)}", lambda i, p=p: p.values[i] != p.default))
    for p in params:
        if len({repr(p.values[i]) for i in then}) == 1:
            value = p.values[min(then)]
            candidates.append((f"{p.name} == {format_value(value)}", lambda i, p=p, v=value: p.values[i] == v))
    for text, test in candidates:
        if all(test(i) == (i in then) for i in range(len(instances))):
            return text
    raise _Split
