"""tests/conftest.py chooses the interpreter only without CUDA, and finds out without importing triton."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = """
import os, sys
sys.path.insert(0, {tests!r})
import conftest
print(os.environ.get("TRITON_INTERPRET"), "triton" in sys.modules, conftest.HAS_CUDA)
"""


def probe(**env_changes) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", PROBE.format(tests=str(TESTS))], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_without_cuda_the_interpreter_is_chosen_before_triton_is_imported():
    assert probe(CUDA_VISIBLE_DEVICES="") == ["1", "False", "False"]


def test_an_explicit_choice_is_kept():
    assert probe(CUDA_VISIBLE_DEVICES="", TRITON_INTERPRET="0")[:2] == ["0", "False"]
