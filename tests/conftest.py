"""Shared fixtures: federations, stores on SQLite and PostgreSQL, the no-skip rule.

With ``ACCORD_REQUIRE_ALL=1`` (the test command sets it), a skipped, xfailed or
xpassed test fails the run: integration tests must run in CI, never be skipped there,
and an ``xfail`` marker must not turn a failing test into a green run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from accord.adapters.federation_file import load_federation, parse_federation_text
from accord.domain.federation.model import Federation

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "src" / "accord" / "data" / "demo-federation.toml"
PG_ADMIN = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

SMALL_FEDERATION = """
[federation]
name = "test federation"
reference_unit = "H100-hour"
themes = ["climate", "ai-safety"]

[[gpu_models]]
name = "H100"
[[gpu_models]]
name = "A100"

[[exchange_rates]]
gpu_model = "H100"
units_per_gpu_hour = 1.0
valid_from = 2024-01-01
[[exchange_rates]]
gpu_model = "A100"
units_per_gpu_hour = 0.6
valid_from = 2024-01-01
valid_until = 2026-01-01
[[exchange_rates]]
gpu_model = "A100"
units_per_gpu_hour = 0.5
valid_from = 2026-01-01

[[partners]]
id = "uk"
name = "United Kingdom"
country = "GB"
[[partners]]
id = "fr"
name = "France"
country = "FR"
[[partners]]
id = "kr"
name = "South Korea"
country = "KR"

[[institutions]]
id = "bristol"
name = "University of Bristol"
partner = "uk"
sector = "academia"

[[sites]]
id = "bristol"
name = "Bristol"
partner = "uk"
grid_zone = "GB"
pue = 1.1
backend = "local"
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = 4
power_w = 700

[[sites]]
id = "paris"
name = "Paris"
partner = "fr"
grid_zone = "FR"
pue = 1.2
backend = "local"
[[sites.pools]]
id = "a100"
gpu_model = "A100"
gpus = 8
power_w = 400

[[agreements]]
id = "uk-fr"
name = "UK-France"
parties = ["uk", "fr"]
start = 2025-01-01
end = 2027-12-31
themes = ["climate"]
sectors = ["academia"]
[[agreements.quotas]]
requester = "uk"
host = "fr"
units = 1000
per = "year"
[[agreements.quotas]]
requester = "fr"
host = "uk"
units = 1000
"""


@pytest.fixture(scope="session")
def small_federation() -> Federation:
    """Two local sites (uk: 4 x H100, fr: 8 x A100) and one agreement."""
    return parse_federation_text(SMALL_FEDERATION, "small.toml")


@pytest.fixture(scope="session")
def demo_federation() -> Federation:
    """The demo federation shipped with Accord."""
    return load_federation(DEMO)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session (dropped afterwards)."""
    name = f"accord_t_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_pg_schema(database_url: str) -> str:
    """A new empty schema in the session database; the URL selects it by search_path."""
    schema = f"s_{secrets.token_hex(5)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'accord.db'}"
    return fresh_pg_schema(request.getfixturevalue("pg_database"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, give each test in an ``xdist_group`` its ``@GROUP`` node-id
    suffix, which is what makes the scheduler send the group to one worker.

    pytest-xdist 3.8 appends it by assigning ``item._nodeid``, which pytest 9.2 no longer reads
    (its node ids are structured): the groups were silently ignored and Slurm tests ran side
    by side (pytest-xdist issue 1386). This appends it the same way (sorted names joined
    by ``_``) where it is missing; with a pytest that still reads ``_nodeid`` it is a no-op.
    """
    if not getattr(config.option, "loadgroup", False):   # set on xdist's workers
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            from _pytest.nodeid import NodeId  # pytest >= 9.2, where the suffix goes missing

            item._id = NodeId.parse(item.nodeid + suffix)


# What ACCORD_REQUIRE_ALL=1 refuses: a test that did not run, or whose verdict was
# inverted by a marker (an expected failure, or one that unexpectedly passed), is not a pass.
NOT_RUN_OR_EXCUSED = ("skipped", "xfailed", "xpassed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything was skipped, xfailed or xpassed while ACCORD_REQUIRE_ALL is set.

    Under pytest-xdist this decides on the controller: its terminal reporter has every
    worker's reports (a skip at collection too), and the run's exit status is its own;
    a worker's exit status is not the run's, so a worker leaves the verdict to it.
    """
    if os.environ.get("ACCORD_REQUIRE_ALL") != "1" or hasattr(session.config, "workerinput"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    counts = {kind: len(reporter.stats.get(kind, [])) if reporter else 0
              for kind in NOT_RUN_OR_EXCUSED}
    if any(counts.values()) and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.ensure_newline()
            found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
            reporter.write_line(
                f"ACCORD_REQUIRE_ALL=1: {found}; every test must run and pass here "
                "(no skip, no xfail)", red=True)
