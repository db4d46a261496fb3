"""Frontend: .snn text -> AST -> IR graph, with located diagnostics."""

from __future__ import annotations

from pathlib import Path

from snnc.diagnostics import SOURCES, Loc, SnncError
from snnc.frontend import ast
from snnc.frontend.builder import Builder
from snnc.frontend.parser import parse_tree
from snnc.frontend.transform import ToAst
from snnc.ir.graph import Graph

MAX_SOURCE_BYTES = 4 * 1024 * 1024


def read_source(path: str | Path) -> str:
    """The text of a .snn file, or a located error for missing, binary, non-UTF-8 or empty files."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise SnncError(f"no such file: {name}", None, "check the path; the model zoo is in models/")
    if path.is_dir():
        raise SnncError(f"{name} is a directory, not a .snn file", None)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnncError(f"cannot read {name}: {exc.strerror}", None) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise SnncError(f"{name} is {len(data)} bytes; .snn files are limited to {MAX_SOURCE_BYTES} bytes", None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SnncError(f"{name} is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                        Loc.point(name, line, col), "save the file as UTF-8") from None
    return check_text(text, name)


def check_text(text: str, name: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    SOURCES.add(name, text)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SnncError(f"{name} is empty", Loc.point(name, 1, 1),
                        "a .snn file holds one network: network name(T = 4) { ... }")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        col = text.index("\x00") - (text.rfind("\n", 0, text.index("\x00")) + 1) + 1
        raise SnncError("the file contains a NUL byte", Loc.point(name, line, col), "is it a binary file?")
    return text


def parse_network(text: str, file: str) -> ast.Network:
    check_text(text, file)
    tree = parse_tree(text, file, "start")
    return ToAst(file, text).transform(tree)


def build(net: ast.Network, overrides: dict[str, str] | None = None) -> Graph:
    """The un-expanded IR graph of `net` with `--set` overrides applied."""
    return Builder(net, overrides).build()


def load(path_or_text: str | Path, overrides: dict[str, str] | None = None, file: str | None = None):
    """(AST, graph) for a path, or for source text when `file` names it."""
    if file is None:
        file = str(path_or_text)
        text = read_source(path_or_text)
    else:
        text = str(path_or_text)
    net = parse_network(text, file)
    return net, build(net, overrides)
