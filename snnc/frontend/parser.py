"""Lark parser for .snn sources, recipe strings and single call spellings."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from snnc.frontend.syntax_errors import syntax_error

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}
# A newline next to one of these tokens continues the statement.
_CONTINUES_AFTER = {"ARROW", "LBRACE", "COMMA", "EQUAL", "PLUS", "AT"}
_CONTINUES_BEFORE = {"ARROW", "RBRACE", "ELSE"}


class _NewlinePostLexer:
    """Drops newlines inside brackets, around `->`, after `{` and before `}`.

    That keeps the grammar LALR(1) with a plain `_NL` statement separator.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        pending = None  # a newline waiting to see the next token
        previous = None
        for tok in stream:
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
    """Parses `text`; a syntax error becomes a located SnncError."""
    try:
        return _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise syntax_error(exc, text, file, start) from None


def token_types() -> dict[str, str]:
    """Terminal name -> its literal text, for readable 'expected ...' lists."""
    out = {}
    for term in _parser().terminals:
        pattern = term.pattern
        if pattern.type == "str":
            out[term.name] = pattern.value
    return out
