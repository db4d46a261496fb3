"""A scope's dataflow graph (the network, or one block instance) -> the chains of .snn assignments.

A chain is a run of single-input layers in which every value but the last has
exactly one reader. A residual `add` starts a new chain; a value read twice
ends one. Chains that feed an add are named `main` (the longest) and `skip`,
the chain a block returns is `out`, others `part`. A block chain reads the
block's input unless it starts with an earlier name; a network chain reads the
previous stage. An add operand that is the scope input itself gets a chain of
one `identity`, since `add` only takes names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLE_ORDER = {"part": 0, "main": 1, "skip": 2, "out": 3}


@dataclass
class Unit:
    """One element of a scope: an op, or a call of a block instance."""

    id: str
    inputs: tuple[str, ...]
    output: str
    item: object                 # importer.records.Op, or importer.blocks.Instance
    is_add: bool = False         # a join (add, cat, mul): it starts a chain from the values it names
    group: str | None = None     # at the top level: the stage it belongs to


@dataclass
class Chain:
    source: str | None                  # the value the first element reads; None for an add chain
    operands: tuple[str, ...] = ()      # an add chain's operands
    units: list[Unit] = field(default_factory=list)  # empty: a lone `identity`
    end: str = ""                       # the value the chain produces
    group: str | None = None
    role: str = "part"
    name: str = ""
    start: str | None = None            # the name the written chain starts from (None: the default input)

    @property
    def join(self) -> str | None:
        """The op that starts a chain reading named values (add, cat, mul), or None."""
        return self.units[0].item.kind if self.operands and self.units else None


def decompose(units: list[Unit], source: str, result: str, top: bool) -> list[Chain]:
    """The chains of a scope whose units read `source` and produce `result`, in a valid order, with roles."""
    readers: dict[str, int] = {}
    for u in units:
        for v in u.inputs:
            readers[v] = readers.get(v, 0) + 1
    chains: list[Chain] = []
    open_ends: dict[str, Chain] = {}
    for u in units:
        chain = None if u.is_add else open_ends.get(u.inputs[0])
        if chain is None or readers[u.inputs[0]] != 1 or chain.group != u.group:
            chain = Chain(None, u.inputs, group=u.group) if u.is_add else Chain(u.inputs[0], group=u.group)
            chains.append(chain)
        open_ends.pop(chain.end, None)
        chain.units.append(u)
        chain.end = u.output
        open_ends[chain.end] = chain
    chains = _identity_chains(chains, source, top)
    _assign_roles(chains, result)
    return chains if top else _canonical_order(chains)


def _identity_chains(chains: list[Chain], source: str, top: bool) -> list[Chain]:
    """Name the scope input where it must be named: add operands (blocks), any read but the first (network)."""
    out: list[Chain] = []
    if top:
        if any(c.source == source for c in chains[1:]) or any(source in c.operands for c in chains):
            alias = Chain(source, end=f"{source}#input", group=chains[0].group)
            for c in chains:
                c.source = alias.end if c.source == source else c.source
                c.operands = tuple(alias.end if v == source else v for v in c.operands)
            return [alias] + chains
        return chains
    for c in chains:
        if source in c.operands:
            ops = list(c.operands)
            for i, v in enumerate(ops):
                if v == source:
                    alias = Chain(source, end=f"{source}#{len(out)}")
                    out.append(alias)
                    ops[i] = alias.end
            c.operands = tuple(ops)
        out.append(c)
    return out


def _assign_roles(chains: list[Chain], result: str) -> None:
    by_end = {c.end: c for c in chains}
    for c in chains:
        if c.end == result:
            c.role = "out"
    for c in chains:
        feeding = sorted(((by_end[v], i) for i, v in enumerate(c.operands)),
                         key=lambda item: (-len(item[0].units), item[1]))
        for rank, (operand, _) in enumerate(feeding):
            if operand.role == "part":
                operand.role = "main" if rank == 0 else "skip"


def _canonical_order(chains: list[Chain]) -> list[Chain]:
    """Dependencies first; otherwise part, main, skip, out: instances that compute paths in another order agree."""
    producer = {c.end: c for c in chains}
    done: set[int] = set()
    order: list[Chain] = []
    index = {id(c): i for i, c in enumerate(chains)}
    while len(order) < len(chains):
        ready = [c for c in chains if id(c) not in done and all(
            id(producer[v]) in done for v in (c.operands or (c.source,)) if v in producer)]
        pick = min(ready, key=lambda c: (ROLE_ORDER[c.role], index[id(c)]))
        done.add(id(pick))
        order.append(pick)
    return order


def link(chains: list[Chain], source: str, top: bool) -> None:
    """Set each chain's `start`: the name it must begin with, or None where the default input is right."""
    names = {c.end: c.name for c in chains}
    previous = source
    for c in chains:
        default = previous if top else source
        if c.source is not None and c.source != default:
            c.start = names[c.source]
        previous = c.end
