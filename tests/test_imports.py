"""No import loops: the modules of the package, joined by every import between them (at the top of
a module or deferred inside a function), form no cycle; the layers below the run layer do not
import it; the optimisers do not import the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in (SRC / "superspike").rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere (TYPE_CHECKING blocks aside)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("superspike"):
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    found.add(sub if sub in MODULES else child.module)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("superspike"))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != "superspike"}


GRAPH = {name: _imports(path) for name, path in MODULES.items() if name != "superspike"}


def test_no_module_imports_itself_back_through_others() -> None:
    """Depth-first search for a cycle (a package's __init__ importing its own submodules is not one:
    that is how a package re-exports; the edges here are the import statements themselves)."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def dfs(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(GRAPH.get(u, ())):
            if v.startswith(u + ".") or u.startswith(v + "."):
                continue  # a package and its own submodules
            if state.get(v) == 1:
                cycles.append([*stack[stack.index(v) :], v])
            elif v not in state:
                dfs(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(GRAPH):
        if m not in state:
            dfs(m, [])
    assert cycles == []


@pytest.mark.parametrize("package", ["io", "network", "task", "engine", "rule", "optim", "params", "errors"])
def test_layers_below_the_run_layer_do_not_import_it(package: str) -> None:
    for name, deps in GRAPH.items():
        if name == f"superspike.{package}" or name.startswith(f"superspike.{package}."):
            assert not {d for d in deps if d.startswith(("superspike.run", "superspike.outputs", "superspike.cli"))}, (
                name
            )


def test_optimisers_and_nir_export_stand_alone() -> None:
    assert not {d for d in GRAPH["superspike.optim.optimizers"] if d.startswith("superspike.engine")}
    assert not {d for d in GRAPH["superspike.outputs.nir"] if d.startswith("superspike.run")}


@pytest.mark.slow
def test_every_module_imports_first() -> None:
    """Each module imported first in a fresh interpreter (an import loop shows up as an ImportError
    only for some orders)."""
    code = (
        "import importlib, subprocess, sys\n"
        "bad = []\n"
        f"for m in {sorted(GRAPH)!r}:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
        "    if r.returncode: bad.append((m, r.stderr.strip().splitlines()[-1]))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
