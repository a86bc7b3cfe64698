"""Every code block of the docs (README.md and docs/**/*.md) is a file the tests run or build.

Python blocks are quoted verbatim from examples/ or configs/, YAML blocks from configs/, and
the repository paths in bash blocks exist, so a snippet cannot drift from the code it shows.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# A fenced block: its indentation, its language, its body (up to the fence of the same indent).
FENCE = re.compile(r"^([ \t]*)```([\w+-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
# Languages a block may have, each with its check below; `text` is free (layout listings).
LANGUAGES = ("python", "yaml", "bash", "text")
# A path into the repository inside a command (not the tail of another path: `.mim/tools/`).
REPO_PATH = re.compile(r"(?<![\w./$-])((?:tools|configs|examples|docs)/[\w.+*/-]*[\w*])")
SHELL_VARIABLE = re.compile(r"^(\w+)=(\S+)", re.M)


def _blocks() -> list[tuple[Path, str, str]]:
    """(page, language, body) of every fenced block, the body dedented to its fence."""
    found = []
    for page in DOC_PAGES:
        for indent, language, body in FENCE.findall(page.read_text()):
            lines = [line[len(indent):] if line.startswith(indent) else line
                     for line in body.splitlines(keepends=True)]
            found.append((page, language, "".join(lines)))
    return found


def _named(page: Path) -> str:
    return str(page.relative_to(REPO))


def _sources(*patterns: str) -> dict[Path, str]:
    return {path: path.read_text() for pattern in patterns for path in REPO.glob(pattern)}


def test_every_block_names_a_checked_language():
    blocks = _blocks()
    assert len(blocks) >= 20, "the fence pattern found too few blocks: has the syntax changed?"
    for page, language, body in blocks:
        assert language in LANGUAGES, (
            f"{_named(page)}: a ```{language} block; give it one of {LANGUAGES}:\n{body[:200]}")


def test_every_python_block_is_quoted_from_a_file():
    texts = _sources("examples/*.py", "configs/**/*.py")
    snippets = [(page, body) for page, language, body in _blocks() if language == "python"]
    assert len(snippets) >= 8
    for page, snippet in snippets:
        found = [path for path, text in texts.items() if snippet in text]
        assert found, (f"{_named(page)}: snippet not quoted from examples/ or configs/:\n"
                       f"{snippet[:300]}")


def test_every_yaml_block_is_quoted_from_a_config():
    texts = _sources("configs/**/*.yaml")
    snippets = [(page, body) for page, language, body in _blocks() if language == "yaml"]
    assert snippets
    for page, snippet in snippets:
        found = [path for path, text in texts.items() if snippet in text]
        assert found, f"{_named(page)}: YAML not quoted from configs/:\n{snippet[:300]}"


def _repository_paths(command: str) -> list[str]:
    """The repository paths a bash block names, with its `C=...` variables filled in."""
    for name, value in SHELL_VARIABLE.findall(command):
        command = command.replace(f"${name}", value)
    return REPO_PATH.findall(command)


def test_repository_paths_in_bash_blocks_exist():
    commands = [(page, body) for page, language, body in _blocks() if language == "bash"]
    named = [(page, path) for page, body in commands for path in _repository_paths(body)]
    assert len(named) >= 20
    for page, path in named:
        assert any(REPO.glob(path)), f"{_named(page)}: a command names {path}, which does not exist"


def test_repository_paths_fill_shell_variables():
    command = "C=configs/mmseg\npython tools/train_seg.py $C/x.py .mim/tools/train.py"
    assert _repository_paths(command) == [
        "configs/mmseg", "tools/train_seg.py", "configs/mmseg/x.py"]


def test_the_python_api_example_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert sum("hkt_alpha" in line for line in lines) == 3
    assert lines[-1] == "student path alone at inference: (4, 10)"


def test_the_several_teachers_example_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "several_teachers.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and all("'hkt_alpha/imagenet'" in line and "'hkt_alpha/digits'"
                                   in line for line in lines)
