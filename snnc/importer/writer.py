"""Document -> .snn text, formatted like the files in models/.

Everything written is a validated name, a number, a keyword of the language
or a comment made safe by `snnc.names.comment_text`.
"""

from __future__ import annotations

from snnc.importer.elements import Element
from snnc.importer.layout import Document, Stage
from snnc.importer.unify import BlockDef, DefChain
from snnc.names import comment_text
from snnc.params import format_value

WIDTH = 110


def _element(el: Element, neuron: str) -> str:
    word = neuron if el.word == "lif" else el.word
    text = f"{word}({', '.join(el.args)})" if el.args else word
    return f"{text} x {el.repeat}" if el.repeat > 1 else text


def _chain(start: str | None, operands: tuple[str, ...], elements: list[Element], neuron: str,
           join: str | None = "add") -> list[str]:
    parts = [f"{join}({', '.join(operands)})"] if operands else [start] if start else []
    return parts + [_element(e, neuron) for e in elements]


def _group(parts: list[str]) -> str:
    return " -> ".join(parts) if len(parts) == 1 else "(" + " -> ".join(parts) + ")"


def _assignment(indent: str, name: str, width: int, parts: list[str], comment: list[str]) -> list[str]:
    """`name = a -> b -> ...`, wrapped before `->` past WIDTH columns, with a trailing comment."""
    head = f"{indent}{name:<{width}} = "
    lines, line = [], head + parts[0]
    for part in parts[1:]:
        if len(line) + 4 + len(part) > WIDTH:
            lines.append(line)
            line = " " * (len(head) - 3) + "-> " + part
        else:
            line += " -> " + part
    if comment:
        line += "  # " + comment_text("; ".join(comment))
    return lines + [line]


def _def_chain(c: DefChain, width: int, neuron: str) -> list[str]:
    rows = [_chain(c.start, c.operands, v, neuron, c.join) for v in c.variants]
    if c.cond is None:
        return _assignment("    ", c.name, width, rows[0], c.comment)
    text = f"{_group(rows[0])} if {c.cond} else {_group(rows[1])}"
    return _assignment("    ", c.name, width, [text], c.comment)


def _block(b: BlockDef, neuron: str) -> list[str]:
    params = ", ".join(p.name if p.default is None else f"{p.name} = {format_value(p.default)}" for p in b.params)
    width = max(len(c.name) for c in b.chains)
    lines = [f"  block {b.name}({params}) {{  # {comment_text(b.cls_name)}"]
    for c in b.chains:
        lines += _def_chain(c, width, neuron)
    return lines + ["  }"]


def _stage(s: Stage, width: int, neuron: str) -> list[str]:
    return _assignment("  ", s.name, width, _chain(s.start, s.operands, s.elements, neuron, s.join), s.comment)


def render(doc: Document) -> str:
    lines = [f"# {comment_text(h)}" for h in doc.header]
    dims = ", ".join(str(int(d)) for d in doc.input_dims)
    lines += [f"network {doc.network}(T = {int(doc.T)}, classes = {int(doc.classes)}) {{",
              f"  input image[{dims}]",
              f"  neuron {doc.neuron}",
              f"  surrogate {doc.surrogate}",
              "  norm bn"]
    for b in doc.blocks:
        lines += [""] + _block(b, doc.neuron_word)
    lines.append("")
    width = max(len(s.name) for s in doc.stages)
    for s in doc.stages:
        lines += _stage(s, width, doc.neuron_word)
    lines.append("}")
    return "\n".join(lines) + "\n"
