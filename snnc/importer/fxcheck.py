"""Checks a lowering with torch.fx: the graph a generated model.py computes must be the IR's graph.

The model side comes from tracing `Network.forward` with torch.fx, with
`snnc.ops.LIF`, the runtime layers and torch.nn layers as leaves. A LIF that
runs its BN inside (`forward_bn`) appears as the BN followed by the LIF, as in
the IR; the [T*B] <-> [T, B] reshapes (`to_sequence`, `unflatten(0, (T, -1))`,
`flatten(0, 1)`) are contracted. Roles come from the outputs: what the main
output depends on is main. The labelled graph must be isomorphic to the IR's
(fxgraph.py), and every IR node that owns a module (NODE_MODULES) must call
that module with the same label.
"""

from __future__ import annotations

import operator
import types
from unittest import mock

import networkx as nx
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from snnc.importer.fxgraph import LNode, compare, ir_nodes, ir_view, label, view
from snnc.ir.graph import Graph
from snnc.ops import LIF
from snnc.runtime import layers


def load_generated(text: str, name: str = "snnc_generated_model") -> types.ModuleType:
    """Executes the text of a generated model.py as a fresh module."""
    module = types.ModuleType(name)
    exec(compile(text, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - code snnc itself generated
    return module


def build_on_meta(module: types.ModuleType) -> nn.Module:
    """The generated network with its tensors on the meta device: nothing allocated, nothing run."""
    with torch.device("meta"):
        return module.build_model().eval()


LEAVES = (LIF, layers.BatchNorm, layers.TimeWeights, layers.PLIF, layers.TokenLinear, layers.LayerNorm,
          layers.SpikingSelfAttention, layers.IAnd, layers.Vote, layers.Dropout, layers.PoissonEncoder)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, qualname)


def trace_generated(model: nn.Module) -> fx.Graph:
    tracer = _Tracer()
    real = layers.to_sequence

    def to_sequence(x, T, dims, kind):
        return tracer.create_proxy("call_function", real, (x, T, dims, kind), {})

    def forward_bn(lif, x, bn, scale=1.0):
        return tracer.create_proxy("call_module", tracer.path_of_module(lif), (x,),
                                   {"bn": tracer.path_of_module(bn), "scale": scale})

    with mock.patch.object(layers, "to_sequence", to_sequence), mock.patch.object(LIF, "forward_bn", forward_bn):
        return tracer.trace(model)


def model_view(module: types.ModuleType) -> tuple[nx.DiGraph, list[str], dict[str, LNode]]:
    """(labelled graph of the generated model, problems found while reading it, LNodes by module attribute)."""
    model = build_on_meta(module)
    graph = trace_generated(model)
    reader = _ModelReader(model, set(getattr(module, "CPNG_LAYERS", [])))
    nodes, outputs = reader.read(graph)
    by_module = {n.module: n for n in nodes if n.module}
    problems = list(reader.problems)
    for ir_name, attr in module.NODE_MODULES.items():
        if attr not in reader.modules:
            problems.append(f"NODE_MODULES[{ir_name!r}] = {attr!r} is not a module of the model")
    lif = {n.module for n in nodes if n.label[0] == "lif"}
    if lif != set(module.LIF_LAYERS):
        problems.append(f"LIF_LAYERS {sorted(module.LIF_LAYERS)} but the forward calls {sorted(lif)}")
    return view(nodes, outputs, roles_from_outputs=True), problems, by_module


class _ModelReader:
    """fx nodes of a generated forward -> labelled nodes."""

    def __init__(self, model: nn.Module, cpng: set[str]):
        self.model, self.cpng = model, cpng
        self.modules = dict(model.named_modules())
        self.names = {m: k for k, m in self.modules.items()}
        self.problems: list[str] = []

    def read(self, graph: fx.Graph) -> tuple[list[LNode], list[tuple[str, str]]]:
        nodes: list[LNode] = []
        value: dict[fx.Node, str | None] = {}  # fx node -> the LNode it carries (None: not a tensor)
        outputs: list[tuple[str, str]] = []
        for node in graph.nodes:
            ins = [value.get(a) for a in node.all_input_nodes]
            tensor_ins = tuple(i for i in ins if i is not None)
            if node.op == "placeholder":
                value[node] = None
            elif node.op == "output":
                main, aux = node.args[0]
                outputs = [("main", value[main])] + [(f"aux{i}", value[a]) for i, a in enumerate(aux)]
            elif node.op == "call_function" and node.target is layers.to_sequence:
                _, _, dims, kind = node.args
                nodes.append(LNode(node.name, label("input", dict(kind=kind, dims=dims), None), ()))
                value[node] = node.name
            elif node.op == "call_function" and node.target is operator.getitem \
                    and getattr(node.args[0], "target", None) is layers.to_sequence:
                value[node] = value[node.args[0]] if node.args[1] == 0 else None  # [1] is T, a number
            elif self.plumbing(node):
                value[node] = tensor_ins[0]
            elif node.op == "call_module" and isinstance(self.modules[node.target], layers.PoissonEncoder):
                value[node] = self.encode(nodes, tensor_ins[0], self.modules[node.target], node.target)
            else:
                made = self.layer(node, tensor_ins)
                nodes += made
                value[node] = made[-1].name
        return nodes, outputs

    @staticmethod
    def encode(nodes: list[LNode], source: str, encoder, path: str) -> str:
        """The Poisson encoder belongs to the input node, as in the IR: relabel that node."""
        i = next(i for i, n in enumerate(nodes) if n.name == source)
        _, kind, dims, *_ = nodes[i].label
        nodes[i] = LNode(source, label("input", dict(kind=kind, dims=dims, encoding="poisson", seed=encoder.seed),
                                       None), (), module=path)
        return source

    @staticmethod
    def plumbing(node: fx.Node) -> bool:
        """[T*B] <-> [T, B] reshapes around neurons and time reductions."""
        if node.op != "call_method":
            return False
        if node.target == "unflatten":
            return node.args[1] == 0 and len(node.args[2]) == 2 and node.args[2][1] == -1
        return node.target == "flatten" and tuple(node.args[1:]) == (0, 1)

    def layer(self, node: fx.Node, ins: tuple[str, ...]) -> list[LNode]:
        if node.op == "call_module":
            mod = self.modules[node.target]
            if "bn" in node.kwargs:  # LIF.forward_bn: the BN runs inside the neuron
                bn = self.modules[node.kwargs["bn"]]
                first = LNode(f"{node.name}:bn", self.module_label(bn, node.kwargs["scale"]), ins,
                              module=node.kwargs["bn"])
                return [first, LNode(node.name, self.module_label(mod), (first.name,), module=node.target)]
            return [LNode(node.name, self.module_label(mod), ins, module=node.target)]
        if node.op == "call_method" and node.target == "flatten" and tuple(node.args[1:]) in ((1,), (2,)):
            return [LNode(node.name, ("flatten",) if node.args[1] == 1 else ("tokens",), ins)]
        if node.op == "call_method" and node.target == "mean" and tuple(node.args[1:]) in ((0,), (2,)):
            return [LNode(node.name, ("mean_t",) if node.args[1] == 0 else ("mean_tokens",), ins)]
        if node.op == "call_method" and node.target == "sum" and node.kwargs == {"keepdim": True}:
            return [LNode(node.name, ("sum_tokens",), ins)]
        if node.op == "call_method" and node.target == "unflatten" and node.args[1] == 2:
            return [LNode(node.name, label("token_map", dict(size=node.args[2][0]), None), ins)]
        if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[1], tuple):
            channels = node.args[1][1]
            return [LNode(node.name, label("slice", dict(start=channels.start, stop=channels.stop), None), ins)]
        simple = {operator.add: "add", operator.mul: "mul", torch.cat: "cat", torch.sigmoid: "sigmoid",
                  F.gelu: "gelu"}
        if node.op == "call_function" and node.target in simple:
            return [LNode(node.name, (simple[node.target],), ins)]
        if node.op == "call_function" and node.target is F.leaky_relu:
            slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
            return [LNode(node.name, label("leaky_relu", dict(slope=slope), None), ins)]
        self.problems.append(f"unexpected call in forward: {node.format_node()}")
        return [LNode(node.name, ("unknown", node.op, str(node.target)), ins)]

    def module_label(self, mod: nn.Module, scale: float | None = None) -> tuple:
        if isinstance(mod, (layers.TokenLinear, layers.PLIF)):  # before nn.Linear, which TokenLinear is
            return self.new_module_label(mod)
        if isinstance(mod, nn.Conv2d):
            square = len(set(mod.kernel_size)) == len(set(mod.stride)) == len(set(mod.padding)) == 1
            if not square or mod.dilation != (1, 1):
                return ("conv", "not square", mod.kernel_size, mod.stride, mod.padding, mod.dilation)
            return label("conv", dict(out=mod.out_channels, k=mod.kernel_size[0], stride=mod.stride[0],
                                      pad=mod.padding[0], groups=mod.groups, bias=mod.bias is not None),
                         mod.in_channels)
        if isinstance(mod, layers.BatchNorm):
            return label("bn", dict(eps=mod.eps, momentum=mod.momentum,
                                    scale=mod.scale if scale is None else scale), mod.num_features)
        if isinstance(mod, LIF):
            c = mod.config
            attr = self.names[mod]
            return label("lif", dict(decay=c.decay, vth=c.vth, reset=c.reset, decay_input=c.decay_input,
                                     detach_reset=c.detach_reset, surrogate=c.surrogate, mask_p=c.mask_p,
                                     mask_rescale=c.rescale, layer=mod.layer, adaptive_beta=attr in self.cpng),
                         None)
        if isinstance(mod, (nn.AvgPool2d, nn.MaxPool2d)):
            op = "avgpool" if isinstance(mod, nn.AvgPool2d) else "maxpool"
            return label(op, dict(k=mod.kernel_size, stride=mod.stride, pad=mod.padding), None)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return label("adaptive_avgpool", dict(size=mod.output_size), None)
        if isinstance(mod, nn.Linear):
            return label("fc", dict(out=mod.out_features, bias=mod.bias is not None), mod.in_features)
        if isinstance(mod, layers.TimeWeights):
            return ("two_decode",)
        return self.new_module_label(mod)

    def new_module_label(self, mod: nn.Module) -> tuple:
        """Labels of the layers of the ops beyond conv nets (snnc/runtime/tokens.py, plif.py)."""
        if isinstance(mod, layers.PLIF):
            c = mod.config
            return label("lif", dict(decay=c.decay, vth=c.vth, reset=c.reset, decay_input=c.decay_input,
                                     detach_reset=c.detach_reset, surrogate=c.surrogate, mask_p=c.mask_p,
                                     mask_rescale=c.rescale, layer=mod.layer, adaptive_beta=self.names[mod] in self.cpng,
                                     learn_decay=mod.learn), None)
        if isinstance(mod, layers.TokenLinear):
            return label("linear", dict(out=mod.out_features, bias=mod.bias is not None), mod.in_features)
        if isinstance(mod, layers.LayerNorm):
            return label("layernorm", dict(eps=mod.eps), mod.weight.shape[0])
        if isinstance(mod, layers.SpikingSelfAttention):
            return label("ssa", dict(heads=mod.heads, scale=mod.scale), None)
        if isinstance(mod, layers.IAnd):
            return ("iand",)
        if isinstance(mod, layers.Vote):
            return label("vote", dict(k=mod.k), None)
        if isinstance(mod, layers.Dropout):
            return label("dropout", dict(p=mod.p), None)
        self.problems.append(f"unexpected module {type(mod).__name__}")
        return ("unknown", type(mod).__name__)


def check_generated(graph: Graph, model_text: str) -> list[str]:
    """What differs between an IR graph and the model.py generated from it ([] when they agree)."""
    module = load_generated(model_text)
    actual, problems, by_module = model_view(module)
    expected = ir_view(graph)
    _, differences = compare(expected, actual)
    problems += differences
    labels = {n.name: n.label for n in ir_nodes(graph.nodes)}
    for ir_name, attr in module.NODE_MODULES.items():
        called = by_module.get(attr)
        if called is None:
            problems.append(f"%{ir_name}: module self.{attr} is never called")
        elif called.label != labels[ir_name]:
            problems.append(f"%{ir_name}: self.{attr} is {called.label}, the IR says {labels[ir_name]}")
    return problems
