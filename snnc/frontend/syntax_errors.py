"""Turns Lark's parse exceptions into located, readable SnncErrors."""

from __future__ import annotations

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from snnc.diagnostics import Loc, SnncError

from snnc.names import RESERVED_WORDS

# Readable spellings of the grammar's terminals.
_TERMINAL_TEXT = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "_NL": "end of line",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//' or '%'",
    "$END": "end of input", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "EQUAL": "'='", "ARROW": "'->'",
    "FLOORDIV": "'//'", "AT": "'@'", "DOT": "'.'", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'", "PERCENT": "'%'",
}

_START_WHAT = {"start": "network", "recipe_start": "recipe", "call_start": "spelling"}


def _readable(terminal: str) -> str:
    if terminal in _TERMINAL_TEXT:
        return _TERMINAL_TEXT[terminal]
    word = terminal.lower()
    if word in RESERVED_WORDS:
        return f"'{word}'"
    return terminal


def _expected_list(exc: UnexpectedInput) -> list[str]:
    names = getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ()
    texts = sorted({_readable(n) for n in names})
    return texts


def _describe_token(tok) -> str:
    if tok.type == "$END":
        return "end of input"
    if tok.type == "_NL":
        return "end of line"
    return f"'{tok.value}'"


def syntax_error(exc: UnexpectedInput, text: str, file: str, start: str) -> SnncError:
    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = None
        if ch and not ch.isascii():
            hint = "names use ASCII letters, digits and '_' only"
        elif ch in "\"'":
            hint = "the language has no strings: write names and numbers bare"
        shown = repr(ch)[1:-1] if ch else ch
        return SnncError(f"unexpected character '{shown}'", Loc.point(file, line, col), hint)

    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = [ln.removesuffix("\r") for ln in text.removesuffix("\n").split("\n")]  # as Lark counts lines
        last = len(lines)
        loc = Loc.point(file, last, len(lines[-1]) + 1)
        what = _START_WHAT.get(start, "input")
        expected = _expected_list(exc)
        hint = "is a closing '}' or ')' missing?" if start == "start" else None
        msg = f"unexpected end of {what}"
        if expected:
            msg += "; expected " + ", ".join(expected)
        return SnncError(msg, loc, hint)

    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = _expected_list(exc)
    length = len(tok.value) if tok.type != "_NL" else 1
    loc = Loc.point(file, tok.line or line, tok.column or col, length)
    hint = None
    if tok.value in RESERVED_WORDS and "a name" in expected:
        hint = f"'{tok.value}' is a reserved word; reserved words are " + ", ".join(RESERVED_WORDS)
    elif tok.type == "NAME" and "'->'" in expected:
        hint = "chain layers with '->', as in conv(64) -> bn -> lif"
    elif "')'" in expected and tok.type in ("_NL", "ARROW", "RBRACE"):
        hint = "is a ')' missing?"
    msg = f"unexpected {_describe_token(tok)}"
    if expected:
        shown = expected if len(expected) <= 8 else expected[:8] + ["..."]
        msg += "; expected " + ", ".join(shown)
    return SnncError(msg, loc, hint)
