"""One error type with a source location, and one renderer for it.

Every user-facing failure (syntax, meaning, recipe, data, checkpoint) is raised
as `SnncError`; the CLI renders it as

    file:line:col: error: message
       12 |     main = conv(c, 3) -> bn -> lfi
          |                                ^^^
    hint: did you mean 'lif'?

and exits with status 1.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class Loc:
    """A span in a source file; lines and columns are 1-based, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(file: str, line: int, col: int, length: int = 1) -> "Loc":
        return Loc(file, line, col, line, col + max(1, length))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def span_text(self) -> str:
        """`file:line:col-end` as the IR printer writes it (round-trips via `parse_span`).

        The file name is escaped (backslashes, control and non-ASCII characters as \\n, \\xNN, ...)
        so that a name with a newline cannot end the line it is printed on."""
        end = f"{self.end_col}" if self.end_line == self.line else f"{self.end_line}:{self.end_col}"
        file = self.file.encode("unicode_escape").decode("ascii")
        return f"{file}:{self.line}:{self.col}-{end}"

    @staticmethod
    def parse_span(text: str) -> "Loc":
        head, _, end = text.rpartition("-")
        file, line, col = head.rsplit(":", 2)
        file = file.encode("ascii").decode("unicode_escape")
        if ":" in end:
            end_line, end_col = end.split(":")
        else:
            end_line, end_col = line, end
        return Loc(file, int(line), int(col), int(end_line), int(end_col))


@dataclass
class Note:
    message: str
    loc: Loc | None = None


@dataclass
class SnncError(Exception):
    """A user error: what went wrong, where, and what to try instead."""

    message: str
    loc: Loc | None = None
    hint: str | None = None
    notes: list[Note] = field(default_factory=list)

    def __post_init__(self):
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{where}error: {self.message}"


def brief(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` of a foreign exception on one line, shortened at a word boundary."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + " ..."
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def did_you_mean(name: str, candidates, what: str = "") -> str | None:
    """A hint naming the closest candidate, or listing the allowed ones if none is close."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if candidates and len(candidates) <= 12:
        label = f"{what} " if what else ""
        return f"known {label}names: " + ", ".join(candidates)
    return None


class SourceCache:
    """Remembers source texts by file name so diagnostics can quote lines."""

    def __init__(self):
        self._texts: dict[str, str] = {}

    def add(self, file: str, text: str) -> None:
        self._texts[file] = text

    def line(self, loc: Loc) -> str | None:
        text = self._texts.get(loc.file)
        if text is None:
            try:
                # Undecodable bytes show as U+FFFD so a non-UTF-8 file can still be quoted.
                text = Path(loc.file).read_bytes().decode("utf-8", errors="replace")
            except OSError:
                return None
            self._texts[loc.file] = text
        # Lines as Lark counts them: only "\n" ends one (splitlines also splits at \f, \v, \x1c, U+2028...).
        lines = text.removesuffix("\n").split("\n") if text else []
        if 1 <= loc.line <= len(lines):
            return lines[loc.line - 1].removesuffix("\r")
        return None


SOURCES = SourceCache()


def _excerpt(loc: Loc, sources: SourceCache) -> list[str]:
    line = sources.line(loc)
    if line is None:
        return []
    # One printable character per source character keeps the caret aligned.
    line = "".join(ch if ch.isprintable() else "?" for ch in line.expandtabs(1))
    gutter = f"{loc.line:>5} | "
    start = max(loc.col - 1, 0)
    stop = loc.end_col - 1 if loc.end_line == loc.line else len(line)
    stop = max(stop, start + 1)
    width = min(stop, max(len(line), start + 1)) - start
    caret = " " * start + "^" * max(width, 1)
    return [gutter + line, " " * (len(gutter) - 2) + "| " + caret]


def render(err: SnncError, sources: SourceCache = SOURCES) -> str:
    """The full multi-line diagnostic text for `err` (no trailing newline)."""
    out = [str(err)]
    if err.loc is not None:
        out += _excerpt(err.loc, sources)
    for note in err.notes:
        where = f"{note.loc}: " if note.loc else ""
        out.append(f"{where}note: {note.message}")
        if note.loc is not None:
            out += _excerpt(note.loc, sources)
    if err.hint:
        out.append(f"hint: {err.hint}")
    return "\n".join(out)
