"""The house's rules, over every module of ``src/accord``: imports point inward (each room
imports only the rooms its ring may), no import circle anywhere, no module over 600 lines, no
function over 60 (migrations aside). ``test_architecture.py`` holds the domain's purity."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "accord"
MODULE_LINES = 600
FUNCTION_LINES = 60

# The rooms each room may import (besides itself). Inner rings first: the domain is pure; ports
# name what the services drive; services drive the domain through ports; adapters implement
# ports; the shells (api, web, cli, client, sim) sit outside; compose and runtime build it all.
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "ports": frozenset({"domain"}),
    "service": frozenset({"domain", "ports"}),
    "adapters": frozenset({"domain", "ports"}),
    "web": frozenset({"domain"}),
    "client": frozenset({"domain"}),
    "api": frozenset({"domain", "ports", "service", "web"}),
    "sim": frozenset({"domain", "ports", "service", "adapters"}),
    "compose": frozenset({"domain", "ports", "service", "adapters"}),
    "runtime": frozenset({"domain", "ports", "service", "adapters", "compose", "api"}),
    "site_runtime": frozenset({"domain", "ports", "service", "adapters"}),
    "witness_runtime": frozenset({"domain", "adapters"}),
    "cli": frozenset({"domain", "client", "adapters", "sim", "runtime", "site_runtime",
                      "witness_runtime"}),
    "__main__": frozenset({"cli"}),
}


def modules() -> Iterator[tuple[str, Path]]:
    """Every module but the package's own (empty) face and the Inspect tasks shipped as data."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "accord" and not name.startswith("accord.data."):
            yield name, path


MODULES = dict(modules())


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def imports(path: Path, module: str) -> set[str]:
    """The accord modules ``path`` imports (anywhere in it, relative imports resolved)."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]).strip(".")
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)   # `from pkg import module`
    return {m for m in out if m in MODULES}


GRAPH = {m: imports(p, m) - {m} for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_inward(module: str) -> None:
    mine = room(module)
    allowed = ALLOWED[mine] | {mine}
    outward = sorted(m for m in GRAPH[module] if room(m) not in allowed)
    assert not outward, f"{module} ({mine}) imports {outward}: {mine} may import {sorted(ALLOWED[mine])}"


def test_every_room_has_a_ring() -> None:
    assert {room(m) for m in MODULES} <= set(ALLOWED)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    # a package's __init__ imports nothing of its own (rooms hold no re-exports), so a module
    # importing its package's __init__ is no tie back
    graph = {m: {w for w in ws if not m.startswith(w + ".")} for m, ws in GRAPH.items()}
    assert circles(graph) == []


def test_a_circle_is_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_small(module: str) -> None:
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    assert lines <= MODULE_LINES, f"{module} has {lines} lines (at most {MODULE_LINES})"
    if ".migrations." in module:
        return
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno is not None
            and n.end_lineno - n.lineno + 1 > FUNCTION_LINES]
    assert not long, f"{module}: functions over {FUNCTION_LINES} lines: {long}"
