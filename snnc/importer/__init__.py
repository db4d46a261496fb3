"""`snnc import`: existing PyTorch networks -> .snn files, through torch.fx.

    traced = trace(module)                   # torch.fx, with user stack traces
    mapped = map_ops(traced, dims)           # supported calls -> ops with shapes
    blocks, stages = layout(mapped, module, word)  # repeated submodules -> blocks, children -> stages
    text = render(document)                  # the .snn file

The text is then compiled, and the IR must be isomorphic to the traced ANN
(same layers, same wiring; fxcheck.compare). That check also pairs every IR
node with the module it came from, which is how weights are carried over.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from snnc.catalog import NEURON_PARAMS
from snnc.diagnostics import SnncError
from snnc.frontend.spelling import parse_call, parse_neuron, parse_surrogate
from snnc.importer.fxcheck import compare, ir_nodes, ir_view, view
from snnc.importer.layout import Document, layout
from snnc.importer.mapping import INPUT, Mapped, map_ops
from snnc.importer.naming import Names, snake_case
from snnc.importer.trace import trace
from snnc.importer.writer import render
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.names import identifier_problem
from snnc.params import bind_args, format_value

DEFAULT_NEURON = "lif(decay=0.5, vth=1.0, reset=hard)"
DEFAULT_SURROGATE = "triangle(beta=1.0)"


@dataclass
class Imported:
    text: str                    # the .snn source
    graph: Graph                 # its IR after expand-blocks
    root: nn.Module
    mapped: Mapped
    origin: dict[str, str]       # IR node -> the module path it came from (layers with a module only)
    document: Document


def neuron_statement(text: str) -> tuple[str, str]:
    """(`lif(decay = 0.5, vth = 1.0)`, `lif`) from a neuron spelling; errors name what is allowed."""
    parse_neuron(text)
    name, pos, kw = parse_call(text, "neuron")
    params = NEURON_PARAMS[name]
    given = {**dict(zip((p.name for p in params), pos)), **kw}
    values = bind_args(params, [], given, f"neuron '{name}'")
    args = ", ".join(f"{p.name} = {format_value(values[p.name])}" for p in params if p.name in given)
    return (f"{name}({args})" if args else name), name


def surrogate_statement(text: str) -> str:
    spec = parse_surrogate(text)
    return f"{spec.name}(" + ", ".join(f"{k} = {format_value(v)}" for k, v in spec.params) + ")"


def import_network(module: nn.Module, dims: tuple[int, ...], *, name: str | None = None,
                   neuron: str = DEFAULT_NEURON, surrogate: str = DEFAULT_SURROGATE, T: int = 4,
                   source: str = "<module>", label: str | None = None, out_file: str = "imported.snn") -> Imported:
    """The .snn text and IR of `module` for inputs of `dims` per sample ([C, H, W] or [F])."""
    from snnc.pipeline import compile_source

    cls = type(module).__name__
    traced = trace(module, source, label or cls)
    mapped = map_ops(traced, tuple(dims))
    neuron_text, word = neuron_statement(neuron)
    blocks, stages = layout(mapped, module, word)
    replaced = sorted({op.origin for op in mapped.ops if op.origin})
    header = [f"{label or cls} from {source}, imported with torch.fx by `snnc import`."]
    if replaced:
        header.append(f"Each activation ({', '.join(replaced)}) became the spiking neuron ({word}).")
    header += [f"Note: {note} after the input." for note in mapped.notes]
    if name is not None and identifier_problem(name):
        raise SnncError(f"--name: {identifier_problem(name)}")
    network = Names()(name or snake_case(label or cls), "net")
    doc = Document(network, T, mapped.ops[-1].shape[-1], tuple(dims), neuron_text, word,
                   surrogate_statement(surrogate), blocks, stages, header)
    text = render(doc)
    graph = compile_source(text, file=out_file).graph
    origin = _pair(mapped, graph, tuple(dims))
    return Imported(text, graph, module, mapped, origin, doc)


def _pair(mapped: Mapped, graph: Graph, dims: tuple[int, ...]) -> dict[str, str]:
    """IR node -> module path, from the isomorphism between the traced ANN and the IR of the written text."""
    nodes = [Node(INPUT, "input", (), Attrs(kind="image", dims=dims), mapped.input_shape)]
    for op in mapped.ops:
        attrs = {**op.args, "mode": "bn"} if op.kind == "bn" else op.args
        nodes.append(Node(op.id, op.kind, op.inputs, Attrs(attrs), op.shape))
    ann = view(ir_nodes(nodes, detail=False), [("main", mapped.output)])
    mapping, problems = compare(ann, ir_view(graph, detail=False), names=("the traced module", "the .snn file"))
    if mapping is None:
        raise AssertionError("the written .snn file does not match the traced module:\n  " + "\n  ".join(problems))
    modules = {op.id: op.module for op in mapped.ops if op.module}
    return {ir: modules[ann_id] for ann_id, ir in mapping.items() if ann_id in modules}
