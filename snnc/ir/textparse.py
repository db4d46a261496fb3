"""Parser for the canonical IR text (grammar/ir.lark): `parse(print_graph(g)) == g`."""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Transformer
from lark.exceptions import UnexpectedInput

from snnc.catalog import SurrogateSpec
from snnc.diagnostics import Loc, SnncError
from snnc.frontend.parser import grammar_text
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Block, Graph, Node


@lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark(grammar_text("ir.lark"), parser="lalr", lexer="contextual", maybe_placeholders=True)


class _ToGraph(Transformer):
    def start(self, c):
        _header, network, attrs, *rest = c
        name, params = network
        blocks = tuple(x for x in rest if isinstance(x, Block))
        nodes = tuple(x for x in rest if isinstance(x, Node))
        output, aux = rest[-1]
        return Graph(name, params, nodes, output, aux, blocks, Attrs(attrs or {}))

    def network(self, c):
        return str(c[0]), Attrs(x for x in c[1:] if x is not None)

    def graph_attrs(self, c):
        return c[0]

    def block(self, c):
        name, *rest = c
        params = Attrs(x for x in rest if isinstance(x, tuple))
        nodes = tuple(x for x in rest if isinstance(x, Node))
        result = str(rest[-1])[1:]
        return Block(str(name), params, nodes, result)

    def node(self, c):
        ref, op, *rest = c
        loc_tok = rest.pop()
        shape = rest.pop()
        attrs = rest.pop()
        inputs = tuple(str(r)[1:] for r in rest if r is not None)
        attrs = dict(attrs or {})
        role = attrs.pop("role", "main")
        loc = Loc.parse_span(str(loc_tok)[1:].strip()) if loc_tok is not None else None
        return Node(str(ref)[1:], str(op), inputs, Attrs(attrs), shape, role, loc)

    def output(self, c):
        main, *aux = c
        return str(main)[1:], tuple(str(a)[1:] for a in aux if a is not None)

    def attr_dict(self, c):
        return dict(x for x in c if x is not None)

    def kv(self, c):
        return str(c[0]), c[1]

    def int_v(self, c):
        return int(c[0])

    def float_v(self, c):
        return float(c[0])

    def true_v(self, c):
        return True

    def false_v(self, c):
        return False

    def name_v(self, c):
        return str(c[0])

    def list_v(self, c):
        return tuple(x for x in c if x is not None)

    def call_v(self, c):
        name, *kvs = c
        return SurrogateSpec(str(name), tuple(x for x in kvs if x is not None))

    def shape(self, c):
        return tuple(int(d) if d.isdigit() else str(d) for d in (str(x) for x in c if x is not None))


def parse(text: str, file: str = "<ir>") -> Graph:
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise SnncError(f"malformed IR text: {exc.__class__.__name__}",
                        Loc.point(file, getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1)) from None
    return _ToGraph().transform(tree)
