"""tools/*.py: each is its console command's ``main``, imported from the editable install."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

WRAPPERS = sorted((REPO / "tools").glob("*.py"))


def _main_module(tree: ast.Module) -> str | None:
    """The module a wrapper imports ``main`` from."""
    return next((node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                 and [a.name for a in node.names] == ["main"]), None)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=[w.name for w in WRAPPERS])
def test_a_wrapper_is_its_console_commands_main_and_edits_no_sys_path(wrapper):
    source = wrapper.read_text()
    assert "sys.path" not in source, f"{wrapper.name}: the package is installed editable"
    module = _main_module(ast.parse(source))
    assert module is not None and importlib.util.find_spec(module) is not None, wrapper.name
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert f"{module}:main" in scripts.values(), f"{wrapper.name}: no console command runs it"


def test_a_wrapper_runs_from_outside_the_clone(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_cls.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--demo" in done.stdout
