"""`snnc import`: existing PyTorch networks -> .snn files, through torch.fx.

    traced = trace(module)                         # torch.fx, each call with the user's line
    mapped = map_ops(traced, dims)                 # supported calls -> ops with shapes
    blocks, stages = layout(mapped, module, word)  # repeated submodules -> blocks, children -> stages
    text = render(document)                        # the .snn file

The text is then compiled, and the IR must be isomorphic to the traced ANN
(same layers, same wiring; fxgraph.compare). That check also pairs every IR
node with the module it came from, which is how weights are carried over.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from snnc.catalog import NEURON_PARAMS
from snnc.diagnostics import SnncError
from snnc.frontend.spelling import parse_call, parse_neuron, parse_surrogate
from snnc.importer.fxgraph import compare, ir_nodes, ir_view, view
from snnc.importer.layout import Document, layout
from snnc.importer.mapping import map_ops
from snnc.importer.naming import Names, snake_case
from snnc.importer.records import INPUT, Mapped
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
                   source_file: str = "<module>", source_name: str | None = None,
                   out_file: str = "imported.snn") -> Imported:
    """The .snn text and IR of `module` for inputs of `dims` per sample ([C, H, W] or [F]).

    `source_name` is the class or function that built the module (default: its class), `name` the network's
    name (default: `source_name` in snake case), `out_file` the file name that diagnostics will show.
    """
    from snnc.pipeline import compile_source

    if name is not None and identifier_problem(name):
        raise SnncError(f"--name: {identifier_problem(name)}")
    neuron_text, word = neuron_statement(neuron)
    surrogate_text = surrogate_statement(surrogate)
    source_name = source_name or type(module).__name__
    mapped = map_ops(trace(module, source_file, source_name), tuple(dims))
    blocks, stages = layout(mapped, module, word)
    header = [f"{source_name} from {source_file}, imported with torch.fx by `snnc import`."]
    replaced = sorted({op.origin for op in mapped.ops if op.origin})
    if replaced:
        header.append(f"Each activation ({', '.join(replaced)}) became the spiking neuron ({word}).")
    header += [f"Note: {note} after the input." for note in mapped.notes]
    network = name or Names()(snake_case(source_name), "net")
    classes = next(op for op in mapped.ops if op.id == mapped.output).shape[-1]
    doc = Document(network, T, classes, tuple(dims), neuron_text, word, surrogate_text, blocks, stages, header)
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
