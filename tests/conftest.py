"""Test setup: Triton kernels run in the interpreter on the CPU unless CUDA is present.

With a CUDA device the Triton tests run the compiled kernels, and tests marked `gpu` run
too; without one TRITON_INTERPRET=1 is set and `gpu` tests are skipped (and counted).
An explicit TRITON_INTERPRET in the environment is kept either way.
"""

import os
import sys
from pathlib import Path


def cuda_present() -> bool:
    """Whether torch sees a CUDA device. Imports torch, never triton (torch.cuda does not import it)."""
    try:
        import torch
    except ImportError:
        return False
    try:
        return torch.cuda.is_available()
    except Exception:  # a broken driver counts as no device
        return False


HAS_CUDA = cuda_present()
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each test worker is one process among several on the machine: a torch thread pool per worker
    # oversubscribes the cores, and small ops then run many times slower than on one thread.
    import torch

    torch.set_num_threads(1)
# Must happen before any kernel module is loaded (DESIGN.md "Testing and measuring").
if "TRITON_INTERPRET" not in os.environ and not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite golden files (IR dumps, generated code, diagnostics) instead of comparing")


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_globals_untouched():
    """Tests share worker processes: one that changes torch's default dtype would skew the others."""
    import torch

    before = torch.get_default_dtype()
    yield
    after = torch.get_default_dtype()
    torch.set_default_dtype(before)
    assert after == before, f"the test changed torch's default dtype to {after}"
