"""Lark parser for .snn sources, recipe strings and single call spellings."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from snnc.diagnostics import Loc, SnncError
from snnc.frontend.syntax_errors import syntax_error

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}
# A newline next to one of these tokens continues the statement.
_CONTINUES_AFTER = {"ARROW", "LBRACE", "COMMA", "EQUAL", "PLUS", "AT"}
_CONTINUES_BEFORE = {"ARROW", "RBRACE", "ELSE"}
# Bounds that keep every later stage linear and well inside Python's recursion limit: the
# transformer, the evaluator and the builder recurse once per tree level. The zoo's
# largest file has about 400 tokens and a parse tree 15 levels deep.
MAX_TOKENS = 20_000
MAX_DEPTH = 100


class _TooLong(Exception):
    def __init__(self, token: Token):
        super().__init__()
        self.token = token


class _NewlinePostLexer:
    """Drops newlines inside brackets, around `->`, after `{` and before `}`.

    That keeps the grammar LALR(1) with a plain `_NL` statement separator.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        count = 0
        depth = 0
        pending = None  # a newline waiting to see the next token
        previous = None
        for tok in stream:
            count += 1
            if count > MAX_TOKENS:
                raise _TooLong(tok)
            if tok.type == "_NL":
                if depth == 0 and previous is not None and previous.type not in _CONTINUES_AFTER:
                    pending = pending or tok
                continue
            if tok.type in _OPEN:
                depth += 1
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            if pending is not None and tok.type not in _CONTINUES_BEFORE:
                yield pending
            pending = None
            previous = tok
            yield tok


def grammar_text(name: str = "snn.lark") -> str:
    return resources.files("snnc.grammar").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        postlex=_NewlinePostLexer(),
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "recipe_start", "call_start"],
    )


def parse_tree(text: str, file: str, start: str = "start") -> Tree:
    """Parses `text`; a syntax error, a source too long or nested too deeply becomes a located SnncError."""
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise syntax_error(exc, text, file, start) from None
    except _TooLong as exc:
        tok = exc.token
        raise SnncError(f"the source is too long: more than {MAX_TOKENS} tokens",
                        Loc.point(file, tok.line, tok.column, len(tok)),
                        "a network file describes one network; use blocks and repeats (x N)") from None
    check_depth(tree, file)
    return tree


def check_depth(tree: Tree, file: str) -> None:
    """Raises 'nesting too deep' at the first subtree more than MAX_DEPTH levels down (iteratively)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            loc = Loc(file, meta.line, meta.column, meta.end_line, meta.end_column) if not meta.empty else None
            raise SnncError(f"nesting too deep (more than {MAX_DEPTH} levels)", loc,
                            "split the expression or chain, e.g. into named values or blocks")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def token_types() -> dict[str, str]:
    """Terminal name -> its literal text, for readable 'expected ...' lists."""
    out = {}
    for term in _parser().terminals:
        pattern = term.pattern
        if pattern.type == "str":
            out[term.name] = pattern.value
    return out
