"""Golden-file comparison shared by tests; `pytest --update-goldens` rewrites them."""

from __future__ import annotations

import difflib
from pathlib import Path


def check_golden(path: Path, actual: str, update: bool) -> None:
    if update or not path.exists():
        if not update:
            raise AssertionError(f"missing golden {path}; run pytest --update-goldens and review the diff")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if expected != actual:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            str(path), "actual", n=2))
        raise AssertionError(f"{path} differs (pytest --update-goldens rewrites it):\n{diff[:6000]}")
