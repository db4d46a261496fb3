"""Every bad_*.snn gives exactly its golden diagnostic (tests/diagnostics/bad_*.err) under `snnc check`."""

from pathlib import Path

import pytest

from goldens import check_golden
from snnc.diagnostics import SnncError, render
from snnc.pipeline import compile_source
from snnc.recipes import check_definitions

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "diagnostics").glob("bad_*.snn"))


def test_there_are_enough_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostic_matches_golden(case, monkeypatch, update_goldens):
    monkeypatch.chdir(ROOT)
    rel = case.relative_to(ROOT).as_posix()
    with pytest.raises(SnncError) as info:  # what `snnc check` does
        check_definitions(compile_source(rel).network.recipes)
    text = render(info.value) + "\n"
    first = text.splitlines()[0]
    assert first.startswith(rel + ":") and ": error: " in first, first
    assert "Traceback" not in text
    check_golden(case.with_suffix(".err"), text, update_goldens)


def test_missing_file():
    with pytest.raises(SnncError) as info:
        compile_source("models/no_such_model.snn")
    assert "no such file: models/no_such_model.snn" in render(info.value)


def test_unknown_set_name_names_the_known_ones():
    with pytest.raises(SnncError) as info:
        compile_source(ROOT / "models" / "toy.snn", {"LL": "3"})
    text = render(info.value)
    assert "has no parameter 'LL'" in text and "did you mean 'L'?" in text


@pytest.mark.parametrize("value", ["abc", "1e999", "nan", "", "४", "1_6", "１６"])
def test_bad_set_value(value):
    with pytest.raises(SnncError) as info:
        compile_source(ROOT / "models" / "toy.snn", {"L": value})
    assert "--set L=" in str(info.value)
