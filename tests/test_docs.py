"""The documentation site builds with `mkdocs build --strict`, and covers every public name.

A broken link or anchor, a cross-reference to a name that does not exist, or a name of a
package's ``__all__`` missing from the API reference fails here, as does a README link into a
page or heading that the site does not have.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None
NO_MKDOCS = ("mkdocs is not installed: the docs extra, pip install -e '.[docs]' "
             "(tools/setup_env.sh installs it)")
needs_mkdocs = pytest.mark.skipif(not HAS_MKDOCS, reason=NO_MKDOCS)
# A relative Markdown link: [text](target), the target without a scheme.
LINK = re.compile(r"\]\((?![a-z]+:)([^)#\s]*)(?:#([^)\s]+))?\)")


def _mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    # Material for MkDocs prints a banner about MkDocs 2.0 on every build unless told not to.
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site_dir)], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if not HAS_MKDOCS:
        pytest.skip(NO_MKDOCS)
    site_dir = tmp_path_factory.mktemp("site")
    done = _mkdocs_build(REPO / "mkdocs.yml", site_dir)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return site_dir


def public_names(package: Path) -> list[str]:
    """A package's ``__all__``, read from its ``__init__.py`` without importing it."""
    for node in ast.parse((package / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def api_packages() -> list[str]:
    """The packages with public names: the core and every adapter that has an ``__all__``."""
    candidates = [REPO / "hybridkt_ext" / "core", *sorted((REPO / "hybridkt_ext").glob("for_*"))]
    return [path.name for path in candidates if public_names(path)]


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "api" / "core.html").is_file()


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'id="(hybridkt_ext\.[\w.]+)"', page.read_text()))


def test_every_public_name_is_in_the_api_reference(site):
    packages = api_packages()
    expected = {"core", "for_openmmlab", "for_mmseg", "for_mmdet", "for_detectron2",
                "for_classification"}
    assert expected <= set(packages)
    everywhere = set().union(*(_ids(page) for page in (site / "api").glob("*.html")))
    for package in packages:
        page = site / "api" / f"{package}.html"
        assert page.is_file(), (f"hybridkt_ext.{package} has an __all__ but no API page: add "
                                f"docs/api/{package}.md ('::: hybridkt_ext.{package}') to the nav")
        ids = _ids(page)
        for name in public_names(REPO / "hybridkt_ext" / package):
            # griffe reads a function that shadows its same-named module (`from .x import x`)
            # as the module, also where another package re-exports it; such a function is
            # rendered once by its full path.
            rendered = f"hybridkt_ext.{package}.{name}" in ids or any(
                identifier.endswith(f".{name}.{name}") for identifier in everywhere)
            assert rendered, (f"hybridkt_ext.{package}.{name} (in __all__) is not rendered in "
                              f"docs/api/{package}.md: is it defined where __init__ imports it?")


def test_readme_links_reach_pages_and_headings_of_the_site(site):
    links = LINK.findall((REPO / "README.md").read_text())
    assert len(links) >= 10
    for target, anchor in links:
        assert (REPO / target).exists(), f"README links to {target}, which does not exist"
        if target.startswith("docs/") and target.endswith(".md"):
            page = site / Path(target).relative_to("docs").with_suffix(".html")
            assert page.is_file(), f"README links to {target}, which the site does not build"
            assert not anchor or f'id="{anchor}"' in page.read_text(), (
                f"README links to {target}#{anchor}: the page has no such heading")


@needs_mkdocs
def test_a_broken_link_anchor_or_name_fails_the_build(tmp_path):
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(
        "# Page\n\n[a page](missing.md), [a heading](#nowhere), "
        "[a name][hybridkt_ext.core.NoSuchName].\n")
    config.update(docs_dir=str(tmp_path / "docs"), nav=["index.md"])
    plugin = next(entry for entry in config["plugins"]
                  if isinstance(entry, dict) and "mkdocstrings" in entry)
    plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(REPO)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    for defect in ("missing.md", "nowhere", "hybridkt_ext.core.NoSuchName"):
        assert defect in done.stderr, f"the strict build did not report {defect}:\n{done.stderr}"


def test_the_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert "make test" in first_block and "make demo" in first_block
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in ci]
    assert re.search(r"^test:", (REPO / "Makefile").read_text(), re.M)
