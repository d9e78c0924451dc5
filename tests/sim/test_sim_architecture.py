"""The simulator is a thin shell: its kernel, policies, accounting, oracle and metrics use
the domain (and the service's pure quota rule) but no adapter and no I/O; only the runner,
the scenario reader, the report and the CLI touch files. Nothing inside imports the sim."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "accord"
CORE = ("kernel.py", "run_state.py", "native.py", "native_sites.py", "native_run.py", "jit.py", "model.py",
        "accounting.py", "oracle.py",
        "metrics.py", "replications.py", "sites.py", "forecast.py")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("name", CORE)
def test_sim_core_is_pure(name: str) -> None:
    path = SRC / "sim" / name
    outer = ("accord.adapters", "accord.api", "accord.cli", "accord.web")
    io = ("subprocess", "socket", "sqlalchemy", "httpx", "os", "pathlib")
    bad = [n for n in _imports(path) if n.startswith(outer) or n.split(".")[0] in io]
    assert not bad, f"{name} imports {bad}"
    text = path.read_text()
    for forbidden in ("open(", ".read_text(", ".write_", "datetime.now(", "time.time("):
        assert forbidden not in text, f"{name} uses {forbidden}"


def test_nothing_inside_imports_the_simulator() -> None:
    for layer in ("domain", "service", "adapters"):
        for path in sorted((SRC / layer).rglob("*.py")):
            bad = [n for n in _imports(path) if n.startswith("accord.sim")]
            assert not bad, f"{path.relative_to(SRC)} imports {bad}"
