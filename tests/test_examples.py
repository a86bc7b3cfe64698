"""Every Python snippet in the README is a file of the project that a test runs or builds."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [*REPO.glob("examples/*.py"), *REPO.glob("configs/**/*.py")]


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_every_readme_python_snippet_is_quoted_from_a_file():
    texts = {path: path.read_text() for path in SOURCES}
    snippets = _snippets()
    assert len(snippets) >= 4
    for snippet in snippets:
        found = [p for p, text in texts.items() if snippet in text]
        assert found, f"README snippet not quoted from examples/ or configs/:\n{snippet[:300]}"


def test_the_python_api_example_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert sum("hkt_alpha" in line for line in lines) == 3
    assert lines[-1] == "student path alone at inference: (4, 10)"
