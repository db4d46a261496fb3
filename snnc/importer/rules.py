"""What each supported call becomes: torch.nn modules, functions and tensor methods.

`Rules` is mixed into the mapper (mapping.py), whose `add_op`, `shape`,
`features`, `tensor` and `drop` it uses. Every refusal names the call and
the user's line.
"""

from __future__ import annotations

import operator
from math import prod

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from snnc.diagnostics import SnncError
from snnc.importer.records import BATCH, SUPPORTED, TensorRef, bind_call, square
from snnc.importer.rules_ops import OpRules
from snnc.importer.trace import user_loc
from snnc.ir.shapes import fmt

_RELU_FUNCTIONS = {F.relu: "F.relu", torch.relu: "torch.relu", torch.relu_: "torch.relu_", F.relu_: "F.relu_",
                   F.relu6: "F.relu6", F.leaky_relu: "F.leaky_relu", F.leaky_relu_: "F.leaky_relu_"}
_DROPOUT_FUNCTIONS = {F.dropout: "F.dropout", F.dropout2d: "F.dropout2d", F.alpha_dropout: "F.alpha_dropout",
                      F.feature_alpha_dropout: "F.feature_alpha_dropout"}
_ADD = {operator.add, operator.iadd, torch.add}
# positional names and defaults of the functional pooling forms
_POOL_ARGS = {
    F.avg_pool2d: ("F.avg_pool2d", "avgpool", (("kernel_size", None), ("stride", None), ("padding", 0),
                                              ("ceil_mode", False), ("count_include_pad", True),
                                              ("divisor_override", None))),
    F.max_pool2d: ("F.max_pool2d", "maxpool", (("kernel_size", None), ("stride", None), ("padding", 0),
                                              ("dilation", 1), ("ceil_mode", False), ("return_indices", False))),
    F.adaptive_avg_pool2d: ("F.adaptive_avg_pool2d", "adaptive_avgpool", (("output_size", None),)),
}
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _function_name(target) -> str:
    """`torch.sigmoid`, `F.gelu`, `operator.mul`: how the user wrote the call, near enough."""
    for prefix, namespace in (("torch.", torch), ("F.", F), ("operator.", operator)):
        name = getattr(target, "__name__", None)
        if name and getattr(namespace, name, None) is target:
            return prefix + name
    return getattr(target, "__qualname__", None) or repr(target)


class Rules(OpRules):
    """One method per kind of call; each returns the value the call yields (a TensorRef, or a number)."""

    # ------------------------------------------------------------ modules
    def call_module(self, node: fx.Node, args, kwargs):
        mod = self.root.get_submodule(node.target)
        label = f"{type(mod).__name__} (self.{node.target})"
        if kwargs or len(args) != 1:
            raise SnncError(f"{label} is called with {len(args) + len(kwargs)} arguments; snnc layers take one",
                            user_loc(node))
        x = self.tensor(node, args[0], label)
        if list(mod.parameters(recurse=False)) or list(mod.buffers(recurse=False)):
            if node.target in self.called:
                raise SnncError(f"{label} is called twice: snnc layers do not share weights", user_loc(node),
                                "create one module per use")
            self.called.add(node.target)
        made = self.module_op(node, mod, x, label)
        if made is not None:
            return made
        for cls, method in _MODULES:
            if isinstance(mod, cls):
                return method(self, node, mod, x, label)
        cls = type(mod)
        shown = f"nn.{cls.__name__}" if getattr(nn, cls.__name__, None) is cls else f"{cls.__module__}.{cls.__name__}"
        raise SnncError(f"unsupported module {shown} (self.{node.target})",
                        user_loc(node), "supported: " + SUPPORTED)

    def conv(self, node, mod: nn.Conv2d, x, label):
        if mod.dilation != (1, 1):
            raise SnncError(f"{label}: dilation={mod.dilation} is not supported", user_loc(node))
        if mod.padding_mode != "zeros":
            raise SnncError(f"{label}: padding_mode='{mod.padding_mode}' is not supported; snnc pads with zeros",
                            user_loc(node))
        k = square(mod.kernel_size, "kernel_size", node, label)
        stride = square(mod.stride, "stride", node, label)
        pad = mod.padding
        if pad == "valid":
            pad = 0
        elif pad == "same":
            if stride != 1 or k % 2 == 0:
                raise SnncError(f"{label}: padding='same' needs stride 1 and an odd kernel here", user_loc(node))
            pad = k // 2
        pad = square(pad, "padding", node, label)
        self.check_channels(node, x, mod.in_channels, label)
        return self.add_op(node, "conv", dict(out=mod.out_channels, k=k, stride=stride, pad=pad, groups=mod.groups,
                                              bias=mod.bias is not None), [x], node.target, label=label)

    def check_channels(self, node, x, expected: int, label: str, flat: bool = False) -> None:
        feat = self.features(x)
        if flat and len(feat) != 1:
            raise SnncError(f"{label} receives a {fmt(feat)} tensor per sample; snnc's fc needs [features]",
                            user_loc(node), "flatten before the Linear layer")
        if feat and feat[0] != expected:
            raise SnncError(f"{label} expects {expected} input channels but receives {feat[0]} here "
                            f"(shape {fmt(feat)})", user_loc(node), "check --input C,H,W")

    def batchnorm(self, node, mod, x, label):
        if not mod.affine or not mod.track_running_stats:
            raise SnncError(f"{label}: affine=False or track_running_stats=False is not supported", user_loc(node),
                            "snnc's bn has a weight, a bias and running statistics")
        if mod.momentum is None:
            raise SnncError(f"{label}: momentum=None (a cumulative average) is not supported", user_loc(node))
        want = 3 if isinstance(mod, nn.BatchNorm2d) else 1
        if len(self.features(x)) != want:
            raise SnncError(f"{label} receives a {fmt(self.features(x))} tensor per sample", user_loc(node))
        self.check_channels(node, x, mod.num_features, label)
        return self.add_op(node, "bn", dict(eps=float(mod.eps), momentum=float(mod.momentum)), [x], node.target,
                           label=label)

    def activation(self, node, mod, x, label):
        return self.add_op(node, "lif", {}, [x], origin=type(mod).__name__)

    def linear(self, node, mod: nn.Linear, x, label):
        self.check_channels(node, x, mod.in_features, label, flat=True)
        return self.add_op(node, "fc", dict(out=mod.out_features, bias=mod.bias is not None), [x], node.target,
                           label=label)

    def pool_module(self, node, mod, x, label):
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return self.pool(node, "adaptive_avgpool", dict(output_size=mod.output_size), x, label)
        kind = "avgpool" if isinstance(mod, nn.AvgPool2d) else "maxpool"
        names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
                 "dilation", "return_indices")
        return self.pool(node, kind, {n: getattr(mod, n) for n in names if hasattr(mod, n)}, x, label)

    def pool(self, node, kind: str, a: dict, x: TensorRef, label: str) -> TensorRef:
        if kind == "adaptive_avgpool":
            return self.add_op(node, kind, dict(size=square(a["output_size"], "output_size", node, label)), [x],
                               label=label)
        if a.get("ceil_mode") or a.get("return_indices") or a.get("divisor_override") is not None:
            raise SnncError(f"{label}: ceil_mode, return_indices and divisor_override are not supported",
                            user_loc(node))
        if square(a.get("dilation", 1), "dilation", node, label) != 1:
            raise SnncError(f"{label}: dilation is not supported", user_loc(node))
        k = square(a["kernel_size"], "kernel_size", node, label)
        stride = k if a.get("stride") in (None, (), []) else square(a["stride"], "stride", node, label)
        pad = square(a.get("padding", 0), "padding", node, label)
        if kind == "avgpool" and pad and not a.get("count_include_pad", True):
            raise SnncError(f"{label}: count_include_pad=False with padding is not supported", user_loc(node))
        return self.add_op(node, kind, dict(k=k, stride=stride, pad=pad), [x], label=label)

    def flatten_module(self, node, mod: nn.Flatten, x, label):
        return self.flatten(node, x, mod.start_dim, mod.end_dim, label)

    def flatten(self, node, x: TensorRef, start, end, label) -> TensorRef:
        if start != 1 or end not in (-1, len(self.shape(x)) - 2):
            raise SnncError(f"{label}: only flattening from dim 1 to the end is supported (got start_dim={start}, "
                            f"end_dim={end})", user_loc(node))
        if len(self.features(x)) == 1:
            return x
        return self.add_op(node, "flatten", {}, [x], label=label)

    def identity(self, node, mod, x, label):
        return x

    def dropout(self, node, mod, x, label):
        return self.drop(node, x, f"dropped {type(mod).__name__}(p={mod.p})")

    # ---------------------------------------------------------- functions
    def call_function(self, node: fx.Node, args, kwargs):
        target = node.target
        name = _function_name(target)
        if target in _RELU_FUNCTIONS:
            return self.add_op(node, "lif", {}, [self.tensor(node, args[0], name)], origin=_RELU_FUNCTIONS[target])
        made = self.function_op(node, target, args, kwargs, name)
        if made is not None:
            return made
        if target in _ADD:
            return self.add(node, args, kwargs, name)
        if target in _DROPOUT_FUNCTIONS:
            return self.drop(node, self.tensor(node, args[0], name), f"dropped {_DROPOUT_FUNCTIONS[target]}")
        if target is torch.flatten:
            a = bind_call(node, args[1:], kwargs, (("start_dim", 0), ("end_dim", -1)), name)
            return self.flatten(node, self.tensor(node, args[0], name), a["start_dim"], a["end_dim"], name)
        if target in _POOL_ARGS:
            label, kind, spec = _POOL_ARGS[target]
            return self.pool(node, kind, bind_call(node, args[1:], kwargs, spec, label), self.tensor(node, args[0], label),
                             label)
        if target is torch.mean:
            return self.mean(node, args, kwargs, "torch.mean")
        if target is operator.getitem and not isinstance(args[0], TensorRef):
            return args[0][args[1]]
        if target is getattr and isinstance(args[0], TensorRef) and args[1] == "shape":
            return self.size(args[0])
        if target in (operator.mul, operator.floordiv) and all(type(a) is int for a in args):
            return target(*args)
        raise SnncError(f"unsupported call {name}", user_loc(node), "supported: " + SUPPORTED)

    def add(self, node, args, kwargs, name):
        if set(kwargs) - {"alpha"} or kwargs.get("alpha", 1) != 1 or len(args) != 2:
            raise SnncError(f"{name} with these arguments is not supported; only a + b", user_loc(node))
        if not all(isinstance(a, TensorRef) for a in args):
            raise SnncError("adding a constant to a tensor is not supported; only residual sums of two tensors",
                            user_loc(node))
        a, b = args
        if self.shape(a) != self.shape(b):
            raise SnncError(f"add: {fmt(self.shape(a)[2:])} + {fmt(self.shape(b)[2:])} needs broadcasting, which snnc "
                            "does not do", user_loc(node))
        return self.add_op(node, "add", {}, [a, b])

    def size(self, x: TensorRef, dim=None):
        full = (BATCH,) + self.features(x)
        return full if dim is None else full[dim]

    def mean(self, node, args, kwargs, name):
        """x.mean((2, 3)) and relatives: global average pooling."""
        x = self.tensor(node, args[0], name)
        a = bind_call(node, args[1:], kwargs, (("dim", None), ("keepdim", False), ("dtype", None)), name)
        dims = a["dim"] if isinstance(a["dim"], (tuple, list)) else (a["dim"],)
        rank = len(self.shape(x)) - 1
        if len(self.features(x)) != 3 or sorted(d % rank for d in dims if isinstance(d, int)) != [2, 3]:
            raise SnncError(f"{name} over dims {a['dim']!r} is not supported; only the spatial mean over (2, 3)",
                            user_loc(node))
        pooled = self.add_op(node, "adaptive_avgpool", dict(size=1), [x], label=name, suffix=":pool")
        return pooled if a["keepdim"] else self.add_op(node, "flatten", {}, [pooled], label=name)

    # ------------------------------------------------------------ methods
    def call_method(self, node: fx.Node, args, kwargs):
        method = node.target
        label = f"Tensor.{method}()"
        if method == "size":
            x = self.tensor(node, args[0], label)
            return self.size(x, args[1] if len(args) > 1 else kwargs.get("dim"))
        if method == "dim":
            return len(self.shape(self.tensor(node, args[0], label))) - 1
        x = self.tensor(node, args[0], label)
        if method in ("relu", "relu_"):
            return self.add_op(node, "lif", {}, [x], origin=f".{method}()")
        if method in ("add", "add_"):
            return self.add(node, args, kwargs, label)
        if method in ("contiguous",):
            return x
        if method == "flatten":
            a = bind_call(node, args[1:], kwargs, (("start_dim", 0), ("end_dim", -1)), label)
            return self.flatten(node, x, a["start_dim"], a["end_dim"], label)
        if method in ("view", "reshape"):
            return self.reshape(node, x, args[1:], label)
        if method == "mean":
            return self.mean(node, args, kwargs, label)
        made = self.method_op(node, method, x, args, kwargs, label)
        if made is not None:
            return made
        raise SnncError(f"unsupported tensor method .{method}()", user_loc(node), "supported: " + SUPPORTED)

    def reshape(self, node, x: TensorRef, sizes, label) -> TensorRef:
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        feat = self.features(x)
        total = prod(feat)
        if len(sizes) == 2 and (sizes[0] is BATCH or sizes[0] == -1) and sizes[1] in (-1, total) \
                and not (sizes[0] == -1 and sizes[1] == -1):
            return x if len(feat) == 1 else self.add_op(node, "flatten", {}, [x], label=label)
        if tuple(sizes) == (BATCH,) + feat:
            return x
        shown = ", ".join("batch" if s is BATCH else str(s) for s in sizes)
        raise SnncError(f"{label} to ({shown}) is not supported; only flattening to [batch, features]",
                        user_loc(node), "write x.flatten(1) or x.view(x.size(0), -1)")

    def get_attr(self, node, args, kwargs):
        raise SnncError(f"the network reads self.{node.target} directly; only calls of supported layers are imported",
                        user_loc(node), "wrap the computation in a supported module")


_MODULES = (
    (nn.Conv2d, Rules.conv), ((nn.BatchNorm1d, nn.BatchNorm2d), Rules.batchnorm),
    ((nn.ReLU, nn.ReLU6, nn.LeakyReLU), Rules.activation), (nn.Linear, Rules.linear),
    ((nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d), Rules.pool_module), (nn.Flatten, Rules.flatten_module),
    (nn.Identity, Rules.identity), (_DROPOUT_MODULES, Rules.dropout),
)
