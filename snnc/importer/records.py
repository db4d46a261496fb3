"""What the importer makes of a traced network: ops with shapes, and references to the values between them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx as fx

from snnc.diagnostics import Loc, SnncError
from snnc.importer.trace import user_loc

INPUT = "x"
SUPPORTED = ("Conv2d, BatchNorm1d/2d, ReLU/ReLU6/LeakyReLU (they become the neuron), Linear, AvgPool2d, "
             "MaxPool2d, AdaptiveAvgPool2d, Flatten, view/reshape to [batch, features], +, torch.cat on channels, "
             "products of tensors, channel slices, sigmoid, GELU, LayerNorm on vectors, Identity, Dropout; "
             "see docs/import.md")


@dataclass
class Op:
    """One layer of the imported network."""

    id: str                      # unique: the fx node name
    kind: str                    # an IR op: conv bn lif fc avgpool maxpool ... add cat mul sigmoid gelu slice ...
    args: dict                   # the complete IR attributes, e.g. conv: out, k, stride, pad, groups, bias
    inputs: tuple[str, ...]      # op ids, or INPUT
    shape: tuple                 # ("T", "B", *features), as the IR
    module: str | None = None    # the called module's path (`layer1.0.conv1`), for weights
    scope: tuple[tuple[str, str], ...] = ()  # enclosing module calls (call key, module path), outermost first
    origin: str | None = None    # what a neuron replaced, e.g. "ReLU"
    loc: Loc | None = None
    notes: list[str] = field(default_factory=list)  # what was dropped right after this op


@dataclass
class Mapped:
    ops: list[Op]                # in topological order, without dead code
    input_shape: tuple
    output: str
    notes: list[str]             # dropped layers right after the input


class _Batch:
    def __repr__(self) -> str:
        return "batch"


BATCH = _Batch()  # the batch size, symbolic


@dataclass(frozen=True)
class TensorRef:
    """A tensor value during mapping: the op that produces it, or INPUT."""

    id: str


def bind_call(node: fx.Node, args: tuple, kwargs: dict, spec, what: str) -> dict:
    """{name: value} of a call's arguments after the tensor, for `spec` = ((name, default), ...)."""
    names = [n for n, _ in spec]
    if len(args) > len(names) or set(kwargs) - set(names):
        raise SnncError(f"unexpected arguments to {what}", user_loc(node))
    out = dict(spec)
    out.update(zip(names, args))
    out.update(kwargs)
    return out


def square(value, what: str, node: fx.Node, label: str) -> int:
    """An int from an int or a tuple of equal ints; snnc layers are square."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value) \
            and len(set(value)) == 1:
        return value[0]
    raise SnncError(f"{label}: {what}={value!r} is not supported; snnc layers have square windows", user_loc(node),
                    f"use the same {what} in both directions")
