"""fx nodes of a traced ANN -> the ops of the .snn language, with shapes.

Each supported call becomes an `Op` holding the op's complete arguments (as the
IR schema names them), its [T,B,...] shape computed by the IR's own shape
rules (snnc/ir/shapes.py), the module it calls (for weights), the module calls
around it (for stages and blocks) and the user's source line. ReLU-like
activations become the spiking neuron; Identity and Dropout disappear.
Anything else is refused with an error at the user's line.
"""

from __future__ import annotations

import torch.fx as fx

from snnc.diagnostics import SnncError
from snnc.importer.records import INPUT, Mapped, Op, TensorRef
from snnc.importer.rules import Rules
from snnc.importer.trace import Traced, user_loc
from snnc.ir.schema import schema
from snnc.ir.shapes import ShapeError, fmt


class _Mapper(Rules):
    """Walks the fx graph in order, giving each node its value: a TensorRef, a number, or a tuple of sizes."""

    def __init__(self, traced: Traced, dims: tuple[int, ...]):
        self.traced = traced
        self.root = traced.root
        self.dims = tuple(dims)
        self.values: dict[fx.Node, object] = {}
        self.ops: dict[str, Op] = {}
        self.input_notes: list[str] = []
        self.called: set[str] = set()  # modules with weights called so far

    # ------------------------------------------------------------ helpers
    def shape(self, value: TensorRef) -> tuple:
        return (("T", "B") + self.dims) if value.id == INPUT else self.ops[value.id].shape

    def tensor(self, node: fx.Node, value, what: str) -> TensorRef:
        if not isinstance(value, TensorRef):
            raise SnncError(f"{what} expects a tensor here, not {value!r}", user_loc(node))
        return value

    def scope(self, node: fx.Node) -> tuple[tuple[str, str], ...]:
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        if node.op == "call_module" and stack and stack[-1][1][0] == node.target:
            stack = stack[:-1]  # the called leaf module itself
        return tuple((key, entry[0]) for key, entry in stack)

    def add_op(self, node: fx.Node, kind: str, args: dict, inputs: list[TensorRef], module: str | None = None,
               origin: str | None = None, label: str | None = None, suffix: str = "") -> TensorRef:
        shapes = [self.shape(i) for i in inputs]
        sch = schema(kind)
        args = sch.complete(dict(args)) if sch.complete else dict(args)
        try:
            shape = sch.infer(shapes, args)
        except ShapeError as exc:
            raise SnncError(f"{label or kind}: {exc.message}", user_loc(node), exc.hint) from None
        op = Op(node.name + suffix, kind, args, tuple(i.id for i in inputs), shape, module, self.scope(node), origin,
                user_loc(node))
        self.ops[op.id] = op
        return TensorRef(op.id)

    def drop(self, node: fx.Node, value: TensorRef, note: str | None) -> TensorRef:
        if note:
            (self.input_notes if value.id == INPUT else self.ops[value.id].notes).append(note)
        return value

    def features(self, value: TensorRef) -> tuple[int, ...]:
        return tuple(self.shape(value)[2:])

    # ------------------------------------------------------------- driver
    def run(self) -> Mapped:
        output = None
        placeholders = [n for n in self.traced.graph.nodes if n.op == "placeholder"]
        if any(n.users for n in placeholders[1:]):
            raise SnncError(f"{self.traced.name}.forward takes more than one input; snnc networks take one")
        for node in self.traced.graph.nodes:
            if node.op == "placeholder":
                self.values[node] = TensorRef(INPUT)
            elif node.op == "output":
                output = self.output(node)
            else:
                args = fx.node.map_arg(node.args, lambda n: self.values[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: self.values[n])
                handler = {"call_module": self.call_module, "call_function": self.call_function,
                           "call_method": self.call_method, "get_attr": self.get_attr}[node.op]
                self.values[node] = handler(node, args, kwargs)
        return Mapped(self.live_ops(output), ("T", "B") + self.dims, output, self.input_notes)

    def output(self, node: fx.Node) -> str:
        value = fx.node.map_arg(node.args[0], lambda n: self.values[n])
        if not isinstance(value, TensorRef) or value.id == INPUT:
            what = "its input" if isinstance(value, TensorRef) else type(value).__name__
            raise SnncError(f"{self.traced.name}.forward must return one tensor [batch, classes], not {what}",
                            None, "return only the logits; auxiliary outputs are not imported")
        shape = self.shape(value)
        if len(shape) != 3:
            raise SnncError(f"{self.traced.name} returns {fmt(shape[2:])} per sample; snnc networks end in "
                            "[batch, classes]", self.ops[value.id].loc, "end the network with flatten and Linear")
        return value.id

    def live_ops(self, output: str) -> list[Op]:
        live, todo = set(), [output]
        while todo:
            i = todo.pop()
            if i != INPUT and i not in live:
                live.add(i)
                todo.extend(self.ops[i].inputs)
        return [op for op in self.ops.values() if op.id in live]


def map_ops(traced: Traced, dims: tuple[int, ...]) -> Mapped:
    """The ops of a traced network for an input of `dims` per sample ([C, H, W] or [F])."""
    return _Mapper(traced, dims).run()
