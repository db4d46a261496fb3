"""insert-surrogate-modules (SML): ANN exits on the spike rates of chosen residual blocks (docs/methods.md §6).

A transformer block's output is a token map [D,N]; its module reads the time mean as the
[D,sqrt(N),sqrt(N)] map the tokens were flattened from (snnc's reading: the paper has no
transformer, and this keeps the module of the authors' code unchanged).

Architecture (authors' `models/surrogate_block.py`): rate = mean_t(s); if C > k a
1x1 conv C->k + BN + LeakyReLU; then conv7x7 s2, conv5x5 s2, conv3x3 s1 to k
channels, each + BN + LeakyReLU(0.01); AdaptiveAvgPool2d(2), flatten,
Linear(4k, 512), BatchNorm1d, LeakyReLU, Linear(512, classes).
The backbone gradient is not detached at the module ("Local = 0").
"""

from __future__ import annotations

import math

from snnc.diagnostics import Loc, SnncError, did_you_mean
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.ir.schema import schema
from snnc.passes.expand_blocks import block_instances
from snnc.passes.registry import register
from snnc.passes.util import fresh_prefix

HIDDEN = 512
SLOPE = 0.01


def auto_positions(n: int, blocks: int) -> list[int]:
    """1-based block indices ceil(i*B/(n+1)), i = 1..n (docs/methods.md §6)."""
    return [math.ceil(i * blocks / (n + 1)) for i in range(1, n + 1)]


def choose_blocks(graph: Graph, n: int = 2, at=None, loc: Loc | None = None) -> list[Node]:
    blocks = block_instances(graph)
    names = [b.name for b in blocks]
    if not blocks:
        raise SnncError(f"sml needs residual blocks, and network '{graph.network}' has none", loc,
                        "define the network with `block` definitions, as in models/resnet18.snn")
    if at is None:
        if n > len(blocks):
            raise SnncError(f"sml(n={n}) asks for more modules than the network has blocks ({len(blocks)})", loc,
                            f"use n <= {len(blocks)}")
        picks = auto_positions(n, len(blocks))
    else:
        picks = []
        for item in at:
            if isinstance(item, int):
                if item > len(blocks):
                    raise SnncError(f"sml: at={item} is not a block; the network has {len(blocks)} blocks", loc,
                                    "indices count blocks from 1 over all stages: " +
                                    ", ".join(f"{i + 1}={b}" for i, b in enumerate(names)))
                picks.append(item)
            else:
                if item not in names:
                    raise SnncError(f"sml: '{item}' is not a block", loc,
                                    did_you_mean(item, names, "block") or "blocks: " + ", ".join(names))
                picks.append(names.index(item) + 1)
    if len(set(picks)) != len(picks):
        raise SnncError(f"sml: a block is chosen twice ({', '.join(names[i - 1] for i in picks)})", loc)
    chosen = [blocks[i - 1] for i in sorted(picks)]
    for block in chosen:
        if len(block.features) == 2 and math.isqrt(block.features[1]) ** 2 != block.features[1]:
            raise SnncError(f"sml: block {block.name} gives {block.features[1]} tokens, which are not a square map; "
                            f"a surrogate module convolves the [D,N] tokens as a [D,sqrt(N),sqrt(N)] map",
                            block.loc or loc, "place the modules after blocks whose tokens come from a square image")
        if len(block.features) not in (2, 3):
            raise SnncError(f"sml: block {block.name} gives a flat [{block.features[0]}] output, but a surrogate "
                            f"module convolves a [C,H,W] spike-rate map", block.loc or loc,
                            "place the modules after convolutional blocks with at=[...]")
    return chosen


def _module(prefix: str, src: Node, k: int, classes: int) -> list[Node]:
    nodes: list[Node] = []

    def add(local: str, op: str, attrs: dict, inputs=None) -> Node:
        inputs = inputs if inputs is not None else (nodes[-1].name,)
        shapes = [next(n for n in nodes + [src] if n.name == i).shape for i in inputs]
        node = Node(f"{prefix}.{local}", op, tuple(inputs), Attrs(attrs), (), "aux", src.loc)
        node = node.replace(shape=schema(op).infer(shapes, node.attrs))
        nodes.append(node)
        return node

    def conv_bn_act(tag: str, kernel: int, stride: int):
        add(f"conv{tag}", "conv", dict(out=k, k=kernel, stride=stride, pad=kernel // 2, groups=1, bias=False))
        add(f"bn{tag}", "bn", dict(mode="bn", eps=1e-5, momentum=0.1))
        add(f"act{tag}", "leaky_relu", dict(slope=SLOPE))

    add("rate", "mean_t", {}, (src.name,))
    if len(src.features) == 2:  # a transformer block's tokens [D,N]: read as the square map they came from
        add("map", "token_map", dict(size=math.isqrt(src.features[1])))
    if src.shape[2] > k:
        conv_bn_act("1", 1, 1)
    conv_bn_act("7", 7, 2)
    conv_bn_act("5", 5, 2)
    conv_bn_act("3", 3, 1)
    add("pool", "adaptive_avgpool", dict(size=2))
    add("flatten", "flatten", {})
    add("fc1", "fc", dict(out=HIDDEN, bias=True))
    add("bn_fc", "bn", dict(mode="bn", eps=1e-5, momentum=0.1))
    add("act_fc", "leaky_relu", dict(slope=SLOPE))
    add("fc2", "fc", dict(out=classes, bias=True))
    return nodes


@register("insert-surrogate-modules", requires=("expanded",))
def insert_surrogate_modules(graph: Graph, n: int = 2, at=None, k: int = 256, loc: Loc | None = None, **_) -> Graph:
    """Add one surrogate module per chosen block; their logits become the graph's aux outputs."""
    chosen = choose_blocks(graph, n, at, loc)
    classes = graph.node(graph.output).shape[-1]
    nodes = list(graph.nodes)
    aux = list(graph.aux_outputs)
    for i, block in enumerate(chosen, start=1):
        module = _module(fresh_prefix(graph, f"sm{i}"), block, k, classes)
        nodes += module
        aux.append(module[-1].name)
    return graph.replace(nodes=nodes, aux_outputs=tuple(aux),
                         attrs=graph.attrs.set(sml_blocks=tuple(b.name for b in chosen)))
