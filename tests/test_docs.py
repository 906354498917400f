"""The documentation site builds in strict mode, and every tutorial notebook executes.

The site (mkdocs.yml, docs/) is built with ``mkdocs build --strict`` into a temporary folder:
any warning (a broken link or anchor, a page missing from the navigation, a docstring the API
reference cannot render) fails the build. The notebooks in docs/tutorials are stored without
outputs; each is executed here, in a fresh kernel whose working directory is a temporary folder.
The site build itself does not execute them (SUPERSPIKE_DOCS_EXECUTE=false; a plain
``mkdocs build`` does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.ipynb"))


def _tree(top: Path) -> set[str]:
    """Files under ``top`` (caches left out), relative paths."""
    skip = {"__pycache__", ".cache", ".ipynb_checkpoints"}
    return {str(p.relative_to(top)) for p in top.rglob("*") if not skip & set(p.relative_to(top).parts)}


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "SUPERSPIKE_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=tmp_path,  # mkdocs-jupyter keeps its cache in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the API reference is rendered from the docstrings, the tutorials are pages, the README is home
    network = (site / "api" / "network" / "index.html").read_text()
    assert 'id="superspike.network.graph.NetworkSpec"' in network
    assert ":class:<code>" not in network  # the hook drops the docstrings' Sphinx role names
    for nb in TUTORIALS:
        assert (site / "tutorials" / nb.stem / "index.html").is_file()
    home = (site / "index.html").read_text()
    assert 'href="TASKS/"' in home  # README links to docs/TASKS.md, rewritten for the site


def test_every_tutorial_is_tested_and_stored_without_outputs() -> None:
    import nbformat

    assert len(TUTORIALS) >= 4
    for path in TUTORIALS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: stored with outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    before = _tree(ROOT / "docs") | {p.name for p in ROOT.iterdir()}
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert _tree(ROOT / "docs") | {p.name for p in ROOT.iterdir()} == before, "the notebook wrote into the repository"


def _python_blocks(path: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown file: (line of the fence, code)."""
    out, block, start = [], None, 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if block is None and line.strip() == "```python":
            block, start = [], n
        elif block is not None and line.strip() == "```":
            out.append((start, "\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
    return out


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_python_examples_in_the_docs_import_what_exists(page: str) -> None:
    """Every name a Python example of the documentation imports from superspike exists (the
    examples themselves train for minutes; their imports are what goes stale)."""
    import ast
    import importlib

    for line, code in _python_blocks(ROOT / page):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("superspike"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or _is_module(f"{node.module}.{alias.name}"), (
                        f"{page}:{line}: {node.module} has no {alias.name}"
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("superspike"):
                        importlib.import_module(alias.name)
