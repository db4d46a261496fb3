"""The canonical text form of the IR. Deterministic: nodes in graph (topological)
order, attributes sorted, one line per node. `snnc.ir.textparse.parse` reads it back."""

from __future__ import annotations

from snnc.ir.graph import Block, Graph, Node
from snnc.params import format_value

VERSION = "snnc-ir v1"


def format_attrs(attrs, role: str = "main") -> str:
    items = [f"{k}={format_value(v)}" for k, v in attrs.items()]
    if role != "main":
        items.append(f"role={role}")
        items.sort()
    return "{" + ", ".join(items) + "}" if items else ""


def format_shape(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def format_node(node: Node) -> str:
    args = ", ".join(f"%{i}" for i in node.inputs)
    attrs = format_attrs(node.attrs, node.role)
    text = f"%{node.name} = {node.op}({args})"
    if attrs:
        text += f" {attrs}"
    text += f" : {format_shape(node.shape)}"
    if node.loc is not None:
        text += f"  # {node.loc.span_text()}"
    return text


def _block_lines(block: Block) -> list[str]:
    params = ", ".join(f"{k}={format_value(v)}" for k, v in block.params.items())
    lines = [f"block {block.name}({params}) {{"]
    lines += ["  " + format_node(n) for n in block.nodes]
    lines.append(f"  return %{block.result}")
    lines.append("}")
    return lines


def print_graph(graph: Graph, after: str | None = None) -> str:
    params = ", ".join(f"{k}={format_value(v)}" for k, v in graph.params.items())
    header = f"# {VERSION}" + (f" after {after}" if after else "")
    lines = [header, f"network {graph.network}({params})"]
    if graph.attrs:
        lines.append(f"attrs {format_attrs(graph.attrs)}")
    for block in graph.blocks:
        lines += _block_lines(block)
    lines += [format_node(n) for n in graph.nodes]
    out = f"output %{graph.output}"
    if graph.aux_outputs:
        out += " aux [" + ", ".join(f"%{a}" for a in graph.aux_outputs) + "]"
    lines.append(out)
    return "\n".join(lines) + "\n"
