"""Ops that read named values instead of the previous element: add, cat, mul, iand, ssa.

`add(main, skip)`, `cat(new, old)`, `mul(x, gate)`, `iand(main, skip)` and
`ssa(q, k, v, heads = 8)` start a chain; their positional arguments name values
assigned earlier, their keyword arguments are the op's attributes.
"""

from __future__ import annotations

from snnc.diagnostics import Note, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.binding import bind, evaluate_args
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Node
from snnc.ir.schema import schema
from snnc.ir.schema_ops import JOIN_OPS
from snnc.ir.shapes import ShapeError, fmt

USAGE = {"add": "add(main, skip)", "cat": "cat(new, old)", "mul": "mul(x, gate)", "iand": "iand(main, skip)",
         "ssa": "ssa(q, k, v, heads = 8)"}
CHAIN_EXAMPLE = {"add": "out = add(main, skip) -> lif", "cat": "out = cat(new, old)", "mul": "out = mul(x, gate)",
                 "iand": "out = iand(main, skip)", "ssa": "attn = ssa(q, k, v, heads = 8) -> lif(vth = 0.5)"}


def is_join(name: str) -> bool:
    return name in JOIN_OPS


def count_text(sch) -> str:
    if sch.max_inputs is None:
        return "two or more values" if sch.min_inputs == 2 else f"{sch.min_inputs} or more values"
    return {2: "two values", 3: "three values"}.get(sch.max_inputs, f"{sch.max_inputs} values")


def join_node(call: ast.Call, values: dict, env, shape_of) -> Node:
    """The node of a join call (named `""`), its inputs resolved through `values` (name -> (node, loc))."""
    name = call.name
    sch = schema(name)
    positional = call.positional
    if len(positional) < sch.min_inputs or (sch.max_inputs is not None and len(positional) > sch.max_inputs) or (
            call.keyword and not sch.attrs):
        raise SnncError(f"{name} needs {count_text(sch)}, e.g. {USAGE[name]}", call.loc,
                        f"{name} names values assigned above it" + (" and takes keyword attributes" if sch.attrs else ""))
    inputs, sides = [], []
    for arg in positional:
        expr = arg.value
        if not isinstance(expr, ast.NameRef):
            raise SnncError(f"{name} takes names of values assigned earlier", expr.loc)
        if expr.name not in values:
            raise SnncError(f"unknown value '{expr.name}'", expr.loc,
                            did_you_mean(expr.name, values, "value") or f"{name} reads values assigned above it")
        inputs.append(values[expr.name][0])
        sides.append(expr)
    keywords = ast.Call(call.name, tuple(call.keyword), call.loc, call.name_loc, True)
    _, kw = evaluate_args(keywords, env)
    attrs = bind(sch.attrs, [], kw, keywords, name, env=env)
    shapes = [shape_of(i) for i in inputs]
    notes = [Note(f"'{s.name}' assigned here", values[s.name][1]) for s in sides]
    if name == "add":
        _check_add(call, sides, shapes, notes)
    try:
        shape = sch.infer(shapes, Attrs(attrs))
    except ShapeError as exc:
        raise SnncError(exc.message, call.loc, exc.hint, notes=notes) from None
    return Node("", name, tuple(inputs), Attrs(attrs), shape, "main", call.loc)


def _check_add(call, sides, shapes, notes) -> None:
    for i, (side, shape) in enumerate(zip(sides[1:], shapes[1:]), start=1):
        if shape != shapes[0]:
            first = sides[0]
            hint = None
            if shape[-3:-2] != shapes[0][-3:-2] or shape[-2:] != shapes[0][-2:]:
                hint = "make both paths end at the same channels and size, e.g. a 1x1 conv with the block's stride"
            raise SnncError(f"add: '{first.name}' is {fmt(shapes[0])} but '{side.name}' is {fmt(shape)}", call.loc,
                            hint, notes=[notes[0], notes[i]])
