"""Which submodule calls become block instances, and the units of each scope.

A block instance is one call of a module whose class is the user's own (not
torch.nn) and has two or more instances, provided every call of that class
reads one value and yields one. Single-use modules and torch.nn containers
are transparent: their layers belong to the scope around them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from torch import nn

from snnc.importer.chains import Chain, Unit
from snnc.importer.records import INPUT, Mapped, Op
from snnc.ir.schema_ops import JOIN_OPS


@dataclass
class Instance:
    key: str                     # the module call (fx's nn_module_stack key)
    path: str                    # the module's path, e.g. layer1.0
    cls: type
    outer: tuple[str, ...]       # module paths of the calls around it, outermost first
    ops: list[Op] = field(default_factory=list)
    parent: "Instance | None" = None
    input: str = ""              # the value it reads
    output: str = ""             # the value it yields
    input_shape: tuple = ()
    chains: list[Chain] = field(default_factory=list)
    definition: object = None    # its importer.unify.BlockDef
    args: dict = field(default_factory=dict)  # the block arguments of this call

    @property
    def in_channels(self) -> int:
        return self.input_shape[2]


def _is_user_class(cls: type) -> bool:
    return not cls.__module__.startswith("torch.")


def find_instances(mapped: Mapped, root: nn.Module) -> dict[str, Instance]:
    """Block instances by call key, with parents, inputs and outputs set."""
    readers: dict[str, set[str]] = {}
    for op in mapped.ops:
        for v in op.inputs:
            readers.setdefault(v, set()).add(op.id)
    calls: dict[str, Instance] = {}
    for op in mapped.ops:
        for depth, (key, path) in enumerate(op.scope):
            cls = type(root.get_submodule(path))
            if _is_user_class(cls):
                inst = calls.setdefault(key, Instance(key, path, cls, tuple(p for _, p in op.scope[:depth])))
                inst.ops.append(op)
    blocks = {cls for cls, n in Counter(inst.cls for inst in calls.values()).items() if n >= 2}
    while True:
        bad = {i.cls for i in calls.values() if i.cls in blocks and not _single_in_out(i, readers, mapped.output)}
        if not bad:
            break
        blocks -= bad
    chosen = {k: inst for k, inst in calls.items() if inst.cls in blocks}
    for op in mapped.ops:
        parent = None
        for key, _ in op.scope:
            if key in chosen:
                chosen[key].parent = chosen[key].parent or parent
                parent = chosen[key]
    shapes = {op.id: op.shape for op in mapped.ops} | {INPUT: mapped.input_shape}
    for inst in chosen.values():
        inst.input_shape = shapes[inst.input]
    return chosen


def _single_in_out(inst: Instance, readers, output: str) -> bool:
    inside = {op.id for op in inst.ops}
    inputs = {v for op in inst.ops for v in op.inputs if v not in inside}
    outputs = {op.id for op in inst.ops if (readers.get(op.id, set()) - inside) or op.id == output}
    if len(inputs) != 1 or len(outputs) != 1:
        return False
    inst.input, inst.output = inputs.pop(), outputs.pop()
    return True


def _innermost(op: Op, instances: dict[str, Instance]) -> Instance | None:
    found = None
    for key, _ in op.scope:
        found = instances.get(key, found)
    return found


def scope_units(ops: list[Op], instances: dict[str, Instance], scope: Instance | None) -> list[Unit]:
    """The units directly in `scope` (None: the network) in topological order: ops, and calls of instances."""
    units: list[Unit] = []
    seen: set[str] = set()
    for op in ops:
        inst = _innermost(op, instances)
        if inst is scope:
            units.append(Unit(op.id, op.inputs, op.id, op, is_add=op.kind in JOIN_OPS))
            continue
        while inst is not None and inst.parent is not scope:
            inst = inst.parent
        if inst is not None and inst.key not in seen:  # placed at its first op: its input is ready there
            seen.add(inst.key)
            units.append(Unit(inst.key, (inst.input,), inst.output, inst))
    return units
