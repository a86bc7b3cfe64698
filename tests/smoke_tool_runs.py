"""Running tools/smoke.py as a user does, for the smoke tool's tests in each framework."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

ALPHA_ROW = re.compile(r"^\| (\d+) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| yes \|$", re.M)


def run_smoke(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               HYBRIDKT_DATA=str(tmp_path / "data"))
    return subprocess.run([sys.executable, str(REPO / "tools" / "smoke.py"), *args,
                           "--work-dir", str(tmp_path / "work")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def check_passed(done: subprocess.CompletedProcess, iterations: int) -> str:
    """The report of a run that passed: one checked alpha row per iteration, same outputs."""
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = done.stdout
    assert [int(i) for i, _ in ALPHA_ROW.findall(out)] == list(range(1, iterations + 1)), out
    assert "largest output difference 0 (same outputs)" in out, out
    assert re.search(r"plain [\d.]+ s, hybrid [\d.]+ s \([\d.]+x\)", out), out
    assert out.rstrip().endswith("smoke test passed")
    return out
