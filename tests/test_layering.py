"""The package's import graph: no module imports one that imports it back, and the core
never imports the agent. Read from the source (typing-only and function-level imports
count too), so a cycle hidden behind ``TYPE_CHECKING`` or a lazy import is found as well."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pgrad"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its source."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps
                       if d in modules and d not in (name, "pgrad")}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for dep in graph[stack.pop()] - seen:
            seen.add(dep)
            stack.append(dep)
    return seen


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    cycles = {(m, d) for m, deps in graph.items() for d in deps if m in _reachable(graph, d)}
    assert not cycles, sorted(cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [m for m in sorted(graph) if m in _reachable(graph, m)] == ["a", "b", "c"]


@pytest.mark.parametrize("module", ["trainer", "guard", "returns", "losses", "normalization",
                                    "diagnostics", "distributed"])
def test_the_core_does_not_import_the_agent(module: str) -> None:
    assert "pgrad.agent" not in _reachable(import_graph(), f"pgrad.{module}")
