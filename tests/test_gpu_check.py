"""bench/gpu_check.py: its --smoke run end to end (Triton's interpreter without CUDA), and on CUDA
its validation of every kernel specialization, compiled, against the float64 reference."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.py"


def run_script(*args, timeout):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_smoke_runs_end_to_end():
    done = run_script("--smoke", timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "failed 0, skipped 0, not run (time budget) 0" in out
    assert "| mask kernel keep fraction | ok |" in out
    assert "PASSED: validation" in out
    # the timing table: one row per contender, snnc first, failures as rows rather than crashes
    rows = [line for line in out.splitlines() if line.startswith("| 4 | float32 |")]
    assert rows and rows[0].startswith("| 4 | float32 | snnc (Triton) |")
    assert any("eager loop" in row for row in rows) and any("torch.compile loop" in row for row in rows)
    # the fused BN+LIF trade on the Triton engine (bench/bn_lif.py's table)
    assert any(line.startswith("tiny         8    4x4  triton ") for line in out.splitlines()), out[-2000:]
    assert "triton: fused/unfused median" in out


def test_without_cuda_and_without_smoke_it_says_what_to_do():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    done = run_script(timeout=120)
    assert done.returncode == 2 and "--smoke" in done.stdout


@pytest.mark.gpu
def test_every_specialization_compiled_matches_the_reference():
    done = run_script("--validate", timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
