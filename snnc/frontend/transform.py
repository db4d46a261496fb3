"""Lark parse tree -> the frozen AST of snnc/frontend/ast.py (one method per rule)."""

from __future__ import annotations

from lark import Token, Transformer, v_args
from lark.exceptions import VisitError

from snnc.diagnostics import Loc, SnncError
from snnc.frontend import ast


def _loc(file: str, meta) -> Loc:
    if getattr(meta, "empty", False):
        return Loc(file, 1, 1, 1, 2)
    return Loc(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_loc(file: str, tok: Token) -> Loc:
    return Loc(file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok))


_BINARY = {
    "add_op": "+", "sub_op": "-", "mul_op": "*", "div_op": "/", "floordiv_op": "//", "mod_op": "%",
}


@v_args(meta=True)
class ToAst(Transformer):
    def __init__(self, file: str, source: str = ""):
        super().__init__()
        self.file = file
        self.source = source

    def transform(self, tree):
        """As Transformer.transform, but a SnncError raised by a rule comes out as itself."""
        try:
            return super().transform(tree)
        except VisitError as exc:
            if isinstance(exc.orig_exc, SnncError):
                raise exc.orig_exc from None
            raise

    def L(self, meta) -> Loc:
        return _loc(self.file, meta)

    def T(self, tok: Token) -> Loc:
        return _tok_loc(self.file, tok)

    # ---- entry points
    def start(self, meta, children):
        return children[0]

    def recipe_start(self, meta, children):
        return children[0]

    def call_start(self, meta, children):
        return children[0]

    def network(self, meta, children):
        name, params, body = children
        kinds = {ast.InputDecl: [], ast.DefaultDecl: [], ast.BlockDef: [], ast.RecipeDef: [], ast.Assign: []}
        for stmt in body:
            kinds[type(stmt)].append(stmt)
        return ast.Network(
            str(name), self.T(name), tuple(params or ()), tuple(kinds[ast.InputDecl]),
            tuple(kinds[ast.DefaultDecl]), tuple(kinds[ast.BlockDef]), tuple(kinds[ast.RecipeDef]),
            tuple(kinds[ast.Assign]), self.L(meta), self.source,
        )

    def param_decls(self, meta, children):
        return tuple(c for c in children if c is not None)

    def param_decl(self, meta, children):
        name, default = children
        return ast.ParamDecl(str(name), default, self.L(meta))

    def body(self, meta, children):
        return list(children)

    block_body = body

    def input_decl(self, meta, children):
        kind, *rest = children
        dims = tuple(c for c in rest if not isinstance(c, ast.Annotation))
        annotations = tuple(c for c in rest if isinstance(c, ast.Annotation))
        return ast.InputDecl(str(kind), self.T(kind), dims, self.L(meta), annotations)

    def neuron_decl(self, meta, children):
        return ast.DefaultDecl("neuron", children[0], self.L(meta))

    def surrogate_decl(self, meta, children):
        return ast.DefaultDecl("surrogate", children[0], self.L(meta))

    def norm_decl(self, meta, children):
        return ast.DefaultDecl("norm", children[0], self.L(meta))

    def recipe_def(self, meta, children):
        name, calls = children
        return ast.RecipeDef(str(name), self.T(name), calls, self.L(meta))

    def recipe_expr(self, meta, children):
        return tuple(children)

    def block_def(self, meta, children):
        name, params, body = children
        return ast.BlockDef(str(name), self.T(name), tuple(params or ()), tuple(body), self.L(meta))

    def assign(self, meta, children):
        name, rhs = children
        return ast.Assign(str(name), self.T(name), rhs, self.L(meta))

    # ---- chains
    def cond_chain(self, meta, children):
        then, cond, otherwise = children
        return ast.CondChain(then, cond, otherwise, self.L(meta))

    def chain(self, meta, children):
        elements = tuple(c for c in children if not isinstance(c, Token))
        return ast.Chain(elements, self.L(meta))

    def element(self, meta, children):
        unit, repeat, *annotations = children
        return ast.Element(unit, repeat, tuple(a for a in annotations if a is not None), self.L(meta))

    def repeat(self, meta, children):
        return children[0]

    def group(self, meta, children):
        return ast.Group(children[0], self.L(meta))

    def annotation(self, meta, children):
        name_tok, args = children
        return ast.Annotation(str(name_tok), tuple(args or ()), self.L(meta), self.T(name_tok))

    def annotation_name(self, meta, children):
        return children[0]

    def callee(self, meta, children):
        return children[0]

    def call(self, meta, children):
        name_tok, args = children
        has_parens = self.source[meta.end_pos - 1:meta.end_pos] == ")" if self.source else args is not None
        return ast.Call(str(name_tok), tuple(args or ()), self.L(meta), self.T(name_tok), has_parens)

    def call_expr(self, meta, children):
        name_tok, args = children
        return ast.Call(str(name_tok), tuple(args or ()), self.L(meta), self.T(name_tok), True)

    def args(self, meta, children):
        out = []
        for child in children:
            if isinstance(child, ast.Arg):
                out.append(child)
            else:
                out.append(ast.Arg(None, child, _expr_loc(child)))
        return tuple(out)

    def kwarg(self, meta, children):
        name, value = children
        return ast.Arg(str(name), value, self.L(meta))

    # ---- expressions
    def int_lit(self, meta, children):
        if len(children[0]) > 30:  # int() refuses over 4300 digits; the evaluator's limit is 2**62 anyway
            raise SnncError("number too large", self.L(meta))
        return ast.Lit(int(children[0]), self.L(meta))

    def float_lit(self, meta, children):
        return ast.Lit(float(children[0]), self.L(meta))

    def true_lit(self, meta, children):
        return ast.Lit(True, self.L(meta))

    def false_lit(self, meta, children):
        return ast.Lit(False, self.L(meta))

    def in_channels(self, meta, children):
        return ast.InChannels(self.L(meta))

    def name_ref(self, meta, children):
        return ast.NameRef(str(children[0]), self.L(meta))

    def dotted(self, meta, children):
        return ast.Dotted(tuple(str(c) for c in children), self.L(meta))

    def list_lit(self, meta, children):
        return ast.ListLit(tuple(c for c in children if c is not None), self.L(meta))

    def tuple_lit(self, meta, children):
        return ast.ListLit(tuple(c for c in children if c is not None), self.L(meta), is_tuple=True)

    def neg(self, meta, children):
        return ast.Unary("-", children[0], self.L(meta))

    def unary(self, meta, children):  # unary plus
        return children[-1]

    def not_op(self, meta, children):
        return ast.Unary("not", children[0], self.L(meta))

    def or_expr(self, meta, children):
        return self._fold("or", children, meta)

    def and_expr(self, meta, children):
        return self._fold("and", children, meta)

    def comparison(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op), left, right, self.L(meta))

    def _fold(self, op, children, meta):
        items = [c for c in children if not isinstance(c, Token)]
        out = items[0]
        for item in items[1:]:
            out = ast.Binary(op, out, item, self.L(meta))
        return out

    def __default__(self, data, children, meta):
        if data in _BINARY:
            left, right = [c for c in children if not isinstance(c, Token)]
            return ast.Binary(_BINARY[data], left, right, self.L(meta))
        return super().__default__(data, children, meta)


def _expr_loc(expr) -> Loc:
    return expr.loc
