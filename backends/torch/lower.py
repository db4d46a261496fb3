"""IR -> the context of model.py.jinja: module declarations and one forward line per node.

Every value written into generated code is an int, a float, a bool, a Python
identifier made by `Namer`, or a string from a fixed catalog (reset modes,
surrogate names), emitted with repr(). Nothing the user typed is pasted in.

Layouts: main activations are merged [T*B, ...]; neurons see [T, B, ...] via
unflatten; `mean_t` yields [B, ...]; the returned output is [T, B, classes].
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

from snnc.backends.torch import lower_ops
from snnc.ir.graph import Graph, Node
from snnc.names import comment_text, python_name

MERGED, SEQ, BATCH = "merged", "seq", "batch"


@lru_cache(maxsize=None)
def _reserved() -> frozenset[str]:
    """Names generated code uses itself, and every nn.Module attribute (torch is imported only on first use)."""
    from torch import nn

    return frozenset({"x", "T", "self", "nn", "F", "L", "torch", "LIF", "aux"} | set(dir(nn.Module)))


class Namer:
    """Hands out unique Python identifiers for IR node names (one naming authority, as in torch.fx)."""

    def __init__(self, reserved=()):
        self.used = set(_reserved()) | set(reserved)
        self.names: dict[str, str] = {}

    def __call__(self, node_name: str) -> str:
        if node_name not in self.names:
            base = python_name(node_name)
            name = base
            while name in self.used or keyword.iskeyword(name):
                name += "_"
            self.used.add(name)
            self.names[node_name] = name
        return self.names[node_name]


@dataclass
class ModuleDecl:
    attr: str
    ctor: str
    node: str


@dataclass
class Line:
    target: str
    expr: str
    node: str
    where: str


@dataclass
class ModelContext:
    modules: list[ModuleDecl] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    output: str = ""
    aux: list[str] = field(default_factory=list)
    node_modules: dict[str, str] = field(default_factory=dict)  # IR node -> module attribute
    lif_layers: list[str] = field(default_factory=list)
    cpng_layers: list[str] = field(default_factory=list)
    decode: str | None = None


def float_literal(value) -> str:
    """The one way a float enters generated code: finite, spelled by repr()."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"refusing to emit the non-finite number {value!r} into generated code")
    return repr(value)


def _r(value) -> str:
    """A literal for a number, bool or catalog string."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return float_literal(value)
    if isinstance(value, str) and value.isidentifier():
        return repr(value)
    raise ValueError(f"refusing to emit {value!r} into generated code")


def _where(node: Node) -> str:
    return comment_text(node.name + (f"  {node.loc}" if node.loc else ""))


def lower_model(graph: Graph, backend: str = "auto", deploy: bool = False) -> ModelContext:
    """Lowers the training graph (LIF from snnc.ops), or with `deploy` an inference graph whose
    neurons are the forward-only `Spiking` modules defined in the deployed model.py itself."""
    ctx = ModelContext()
    name = Namer()
    var: dict[str, str] = {}
    layout: dict[str, str] = {}
    by_name = graph.by_name
    fused_bn = {node.inputs[0] for node in graph.nodes if node.op == "lif" and node.attrs.get("fuse_bn")}

    def module(node: Node, ctor: str) -> str:
        attr = name(node.name)
        ctx.modules.append(ModuleDecl(attr, ctor, node.name))
        ctx.node_modules[node.name] = attr
        return attr

    def emit(node: Node, expr: str, out_layout: str) -> None:
        target = name(node.name)
        ctx.lines.append(Line(target, expr, node.name, _where(node)))
        var[node.name] = target
        layout[node.name] = out_layout

    def as_seq(src: str) -> str:
        return var[src] if layout[src] == SEQ else f"{var[src]}.unflatten(0, (T, -1))"

    lw = SimpleNamespace(module=module, emit=emit, var=var, layout=layout, as_seq=as_seq, by_name=by_name,
                         ctx=ctx, deploy=deploy, prefix="" if deploy else "L.", MERGED=MERGED)
    for node in graph.nodes:
        a = node.attrs
        ins = node.inputs
        in_feat = by_name[ins[0]].features if ins else ()
        src_layout = layout.get(ins[0]) if ins else None
        op = node.op
        if op in ("sdt_loss", "tet_loss", "sml_loss"):
            continue
        if lower_ops.handles(node):  # ops beyond conv nets, PLIF, the Poisson encoder
            if op == "input":
                var[node.name], layout[node.name] = "x", MERGED
            lower_ops.lower_op(lw, node, _r, _surrogate_literal)
        elif op == "input":
            var[node.name], layout[node.name] = "x", MERGED
        elif op == "conv":
            attr = module(node, f"nn.Conv2d({in_feat[0]}, {a['out']}, {a['k']}, stride={a['stride']}, "
                                f"padding={a['pad']}, groups={a['groups']}, bias={_r(a['bias'])})")
            emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "bn":
            scale = a["a"] * a["vth"] if a["mode"] == "tdbn" else 1.0
            attr = module(node, f"L.BatchNorm({in_feat[0]}, eps={_r(a['eps'])}, momentum={_r(a['momentum'])}, "
                                f"scale={_r(scale)})")
            if node.name in fused_bn:
                var[node.name], layout[node.name] = var[ins[0]], src_layout  # runs inside the LIF op
            else:
                emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "lif" and deploy:
            scale = 1.0 - a["decay"] if a["decay_input"] else 1.0
            attr = module(node, f"Spiking(decay={_r(a['decay'])}, vth={_r(a['vth'])}, reset={_r(a['reset'])}, "
                                f"input_scale={_r(scale)})")
            ctx.lif_layers.append(attr)
            emit(node, f"self.{attr}({as_seq(ins[0])}).flatten(0, 1)", MERGED)
        elif op == "affine":
            attr = module(node, f"Affine({in_feat[0]})")
            emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "lif":
            sg = a["surrogate"]
            attr = module(node, (
                f"LIF(decay={_r(a['decay'])}, vth={_r(a['vth'])}, reset={_r(a['reset'])}, "
                f"decay_input={_r(a['decay_input'])}, detach_reset={_r(a['detach_reset'])}, "
                f"surrogate={_surrogate_literal(sg)}, mask_p={_r(a.get('mask_p', 0.0))}, "
                f"rescale={_r(a.get('mask_rescale', False))}, layer={_r(a.get('layer', 0))}, "
                f"backend=BACKEND)"))
            ctx.lif_layers.append(attr)
            if a.get("adaptive_beta"):
                ctx.cpng_layers.append(attr)
            if a.get("fuse_bn"):
                bn = by_name[ins[0]]
                bn_attr = ctx.node_modules[bn.name]
                emit(node, f"self.{attr}.forward_bn({as_seq(bn.inputs[0])}, self.{bn_attr}, "
                           f"scale=self.{bn_attr}.scale).flatten(0, 1)", MERGED)
            else:
                emit(node, f"self.{attr}({as_seq(ins[0])}).flatten(0, 1)", MERGED)
        elif op in ("avgpool", "maxpool"):
            cls = "AvgPool2d" if op == "avgpool" else "MaxPool2d"
            attr = module(node, f"nn.{cls}({a['k']}, stride={a['stride']}, padding={a['pad']})")
            emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "adaptive_avgpool":
            attr = module(node, f"nn.AdaptiveAvgPool2d({a['size']})")
            emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "flatten":
            emit(node, f"{var[ins[0]]}.flatten(1)", src_layout)
        elif op == "fc":
            attr = module(node, f"nn.Linear({in_feat[0]}, {a['out']}, bias={_r(a['bias'])})")
            emit(node, f"self.{attr}({var[ins[0]]})", src_layout)
        elif op == "add":
            emit(node, " + ".join(var[i] for i in ins), src_layout)
        elif op == "identity":
            var[node.name], layout[node.name] = var[ins[0]], src_layout
        elif op == "mean_t":
            emit(node, f"{as_seq(ins[0])}.mean(0)", BATCH)
        elif op == "leaky_relu":
            emit(node, f"F.leaky_relu({var[ins[0]]}, {_r(a['slope'])})", src_layout)
        elif op == "two_decode":
            attr = module(node, "L.TimeWeights(T_DEFAULT)")
            ctx.decode = attr
            emit(node, f"self.{attr}({as_seq(ins[0])})", SEQ)
        elif op == "time_weights":
            weights = ", ".join(_r(w) for w in a["weights"])
            attr = module(node, f"TimeWeights([{weights}])")
            emit(node, f"self.{attr}({as_seq(ins[0])})", SEQ)
        else:
            raise NotImplementedError(f"no PyTorch lowering for op '{op}' (%{node.name})")
    ctx.output = as_seq(graph.output)
    ctx.aux = [var[a] for a in graph.aux_outputs]
    return ctx


_SURROGATE_RE = re.compile(r"[a-z]+\((?:[a-z_]+=[-+0-9.e]+(?:, )?)*\)\Z")


def _surrogate_literal(sg) -> str:
    """`'arctan(beta=2.0)'`: a catalog name and numbers, checked before it is emitted."""
    text = f"{sg.name}(" + ", ".join(f"{k}={float_literal(v)}" for k, v in sg.params) + ")"
    if not _SURROGATE_RE.match(text):
        raise ValueError(f"refusing to emit surrogate {text!r}")
    return repr(text)
