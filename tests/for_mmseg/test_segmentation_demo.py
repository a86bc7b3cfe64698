"""The README's main command, tools/demo_seg.py, end to end on a two-iteration schedule."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from .conftest import REPO


def test_demo_trains_teacher_and_both_students_and_reports_their_miou(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "tools/demo_seg.py", "--work-dir", str(tmp_path / "demo"),
         "--data-root", str(tmp_path / "data"), "--iters", "3", "--teacher-iters", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # The printed table names all three models with a number in both domain columns.
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in table[1:]] == [
        "teacher R18 1/4 width", "student R18 1/8 width, no teacher",
        "student R18 1/8 width, hybrid forward"]

    runs = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert [run["name"] for run in runs] == ["teacher", "no teacher", "hybrid forward"]
    for run in runs:
        for key in ("miou_student_domain", "miou_teacher_domain"):
            assert 0.0 <= run[key] <= 100.0 and math.isfinite(run[key])
        assert os.path.exists(run["checkpoint"])
    # Only the hybrid student has path losses, logged up to its last iteration, alpha > 0.
    assert runs[1]["path_losses"] == []
    rows = runs[2]["path_losses"]
    assert rows and rows[-1]["step"] == 3
    assert all(row["hkt_alpha"] > 0 and row["hkt_L1"] > 0 for row in rows)
    plot = tmp_path / "demo" / "alpha_and_path_losses.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The hybrid student loaded the teacher the demo trained, not a random one.
    config = next((tmp_path / "demo" / "hybrid_forward").glob("*.py")).read_text()
    assert runs[0]["checkpoint"] in config
