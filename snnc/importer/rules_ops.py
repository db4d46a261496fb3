"""Import rules for the ops beyond conv nets: cat, products, sigmoid, GELU, LayerNorm, dropout, channel slices.

Mixed into `Rules` (rules.py). Each returns the value the call yields, or None when the call is not
one of these (the caller then refuses it with its own message). Only what the language expresses
is mapped: a concatenation along channels, a product of two tensors that broadcasts as `mul` does,
a LayerNorm over the features of a flat [F] vector, a slice of channels with step 1.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from snnc.diagnostics import SnncError
from snnc.importer.records import TensorRef, bind_call
from snnc.importer.trace import user_loc
from snnc.ir.shapes import ShapeError, broadcast, fmt

CAT = {torch.cat: "torch.cat", torch.concat: "torch.concat"}
MUL = {operator.mul: "*", operator.imul: "*=", torch.mul: "torch.mul"}
SIGMOID = {torch.sigmoid: "torch.sigmoid", F.sigmoid: "F.sigmoid"}


class OpRules:
    def function_op(self, node: fx.Node, target, args, kwargs, name: str):
        if target in CAT:
            a = bind_call(node, args[1:], kwargs, (("dim", 0),), name)
            return self.cat(node, args[0], a["dim"], CAT[target])
        if target in MUL and all(isinstance(x, TensorRef) for x in args) and len(args) == 2:
            return self.mul(node, args[0], args[1], MUL[target])
        if target in MUL and any(isinstance(x, TensorRef) for x in args):
            raise SnncError(f"{MUL[target]}: multiplying a tensor by a constant is not supported; only products "
                            "of two tensors (gates)", user_loc(node), "fold the constant into the layer before it")
        if target in SIGMOID:
            return self.add_op(node, "sigmoid", {}, [self.tensor(node, args[0], name)], label=name)
        if target is F.gelu:
            a = bind_call(node, args[1:], kwargs, (("approximate", "none"),), name)
            return self.gelu(node, self.tensor(node, args[0], name), a["approximate"], name)
        if target is F.dropout:
            a = bind_call(node, args[1:], kwargs, (("p", 0.5), ("training", True), ("inplace", False)), name)
            return self.add_op(node, "dropout", dict(p=float(a["p"])), [self.tensor(node, args[0], name)], label=name)
        if target is operator.getitem and isinstance(args[0], TensorRef):
            return self.channel_slice(node, args[0], args[1])
        return None

    def method_op(self, node: fx.Node, method: str, x: TensorRef, args, kwargs, label: str):
        if method in ("mul", "mul_") and len(args) == 2 and isinstance(args[1], TensorRef):
            return self.mul(node, x, args[1], label)
        if method in ("sigmoid", "sigmoid_"):
            return self.add_op(node, "sigmoid", {}, [x], label=label)
        return None

    def module_op(self, node: fx.Node, mod: nn.Module, x: TensorRef, label: str):
        if isinstance(mod, nn.Sigmoid):
            return self.add_op(node, "sigmoid", {}, [x], label=label)
        if isinstance(mod, nn.GELU):
            return self.gelu(node, x, mod.approximate, label)
        if type(mod) is nn.Dropout:
            return self.add_op(node, "dropout", dict(p=float(mod.p)), [x], label=label)
        if isinstance(mod, nn.LayerNorm):
            return self.layernorm(node, mod, x, label)
        return None

    # ------------------------------------------------------------------ ops
    def cat(self, node, values, dim, name):
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, TensorRef) for v in values):
            raise SnncError(f"{name} takes a list of tensors here", user_loc(node))
        if len(values) == 1:
            return values[0]
        rank = len(self.features(values[0]))
        if not isinstance(dim, int) or dim % (rank + 1) != 1:
            raise SnncError(f"{name} along dim {dim} is not supported; snnc concatenates channels (dim 1)",
                            user_loc(node))
        return self.add_op(node, "cat", {}, list(values), label=name)

    def mul(self, node, a: TensorRef, b: TensorRef, name):
        try:
            broadcast([self.shape(a), self.shape(b)], {})
        except ShapeError as exc:
            raise SnncError(f"{name}: {exc.message}", user_loc(node), exc.hint) from None
        return self.add_op(node, "mul", {}, [a, b], label=name)

    def gelu(self, node, x, approximate: str, label):
        if approximate != "none":
            raise SnncError(f"{label}: approximate='{approximate}' is not supported; snnc's gelu is the exact one",
                            user_loc(node))
        return self.add_op(node, "gelu", {}, [x], label=label)

    def layernorm(self, node, mod: nn.LayerNorm, x, label):
        feat = self.features(x)
        if len(feat) != 1 or tuple(mod.normalized_shape) != feat:
            raise SnncError(f"{label} normalises {list(mod.normalized_shape)} of a {fmt(feat)} tensor; snnc's "
                            "layernorm normalises the features of a flat [F] vector (or the channels of each token)",
                            user_loc(node))
        if not mod.elementwise_affine or mod.bias is None:
            raise SnncError(f"{label}: a LayerNorm without weight and bias is not supported", user_loc(node))
        return self.add_op(node, "layernorm", dict(eps=float(mod.eps)), [x], node.target, label=label)

    def channel_slice(self, node, x: TensorRef, index):
        """x[:, a:b] (and x[:, a:b, :, :]): channels a..b-1."""
        feat = self.features(x)
        full = slice(None, None, None)
        if not isinstance(index, tuple) or len(index) < 2 or index[0] != full or not isinstance(index[1], slice) \
                or any(i != full for i in index[2:]) or index[1].step not in (None, 1):
            raise SnncError(f"indexing a tensor with {index!r} is not supported; only channel slices x[:, a:b]",
                            user_loc(node))
        start, stop, _ = index[1].indices(feat[0])
        if start == 0 and stop == feat[0]:
            return x
        if stop <= start:
            raise SnncError(f"the channel slice {start}:{stop} is empty", user_loc(node))
        return self.add_op(node, "slice", dict(start=start, stop=stop), [x], label="a channel slice")
