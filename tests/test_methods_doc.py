"""docs/methods.md is the one place the method math lives: every citation names it and an existing section."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITING = ("snnc", "backends", "docs", "models", "tests", "README.md")
SUFFIXES = {".py", ".jinja", ".md", ".snn"}


def _files():
    for top in CITING:
        path = ROOT / top
        for f in ([path] if path.is_file() else path.rglob("*")):
            if f.suffix in SUFFIXES and "golden" not in f.parts and f.name != "test_methods_doc.py":
                yield f


def test_citations_name_docs_methods_and_existing_sections():
    text = (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)}
    assert sections == set(range(1, 11))
    stale, missing = [], []
    for f in _files():
        body = f.read_text(encoding="utf-8", errors="replace")  # some diagnostics fixtures are not UTF-8
        if "METHODS" in body:  # the old file outside the repository
            stale.append(str(f.relative_to(ROOT)))
        for cite in re.findall(r"methods\.md\)? (§\d+(?:\s*[-,]\s*§\d+)*)", body):
            missing += [f"{f.relative_to(ROOT)}: §{n}" for n in re.findall(r"§(\d+)", cite)
                        if int(n) not in sections]
    assert not stale and not missing, (stale, missing)
