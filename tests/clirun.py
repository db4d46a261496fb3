"""Runs the installed `snnc` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def snnc(*args: str, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("snnc", path=str(Path(sys.executable).parent)) or shutil.which("snnc")
    cmd = [exe] if exe else [sys.executable, "-m", "snnc"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
