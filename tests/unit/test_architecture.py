"""Imports point inward: the domain is pure (no I/O libraries, no outer layers, no clock)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "accord"
OUTER = ("accord.adapters", "accord.service", "accord.api", "accord.web", "accord.cli",
         "accord.runtime", "accord.client", "accord.sim")
IO_LIBS = ("sqlalchemy", "httpx", "fastapi", "starlette", "uvicorn", "subprocess", "requests",
           "socket", "psycopg", "alembic", "shutil")
DOMAIN = sorted((SRC / "domain").rglob("*.py"))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _name(path: Path) -> str:
    return str(path.relative_to(SRC / "domain"))


@pytest.mark.parametrize("path", DOMAIN, ids=_name)
def test_domain_imports_nothing_outward(path: Path) -> None:
    bad = [n for n in _imports(path) if n.startswith(OUTER) or n.split(".")[0] in IO_LIBS]
    assert not bad, f"{_name(path)} imports {bad}"


@pytest.mark.parametrize("path", DOMAIN, ids=_name)
def test_domain_reads_no_clock_and_no_environment(path: Path) -> None:
    text = path.read_text()
    for forbidden in ("datetime.now(", "time.time(", "os.environ", "open(", ".read_text("):
        assert forbidden not in text, f"{_name(path)} uses {forbidden}"


def test_ports_and_service_do_not_import_adapters() -> None:
    for path in [*sorted((SRC / "ports").glob("*.py")), *sorted((SRC / "service").glob("*.py"))]:
        bad = [n for n in _imports(path) if n.startswith("accord.adapters")]
        assert not bad, f"{path.name} imports {bad}"
