"""Fuzzing the live OpenAPI spec with schemathesis: every route, authenticated.

The app is the one ``accord up`` serves (broker over a SQLite store, a ledger, access over
the same store) on the small test federation, with a job, a user, a project, an
allocation, an API token and a ledger entry in it. For every operation in its
``/openapi.json``, schemathesis generates requests that fit the schema, the same with the
path parameters pinned to those objects (so the fuzz gets past "not found"), and requests
that do not fit; every response must be

* no server error (5xx),
* of a documented status code (the app declares its problem responses app-wide),
* of a documented content type, and
* valid against the declared response schema.

The admin run sends the local admin token, who may do everything; the researcher run an
API token the admin minted for an enrolled researcher, who is refused most things.
Runs are bounded (``*_EXAMPLES`` per operation and kind of request) and derandomised, so CI
is deterministic. Nothing is excluded: ``POST /api/v1/jobs`` (and a campaign's submit) only
store jobs, since no dispatcher runs here, so no command is ever started.

The last tests pin, on SQLite and PostgreSQL, inputs the fuzz found or rarely draws.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accord.adapters.clock import FakeClock
from accord.adapters.local_backend import LocalBackend
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.federation.model import Federation
from accord.service.broker import Broker
from tests.api.conftest import AUTH, TOKEN
from tests.api.test_footprint_api import usage
from tests.conftest import fresh_pg_schema

# Per operation, for each of: schema-valid, schema-invalid, schema-valid with real ids.
# Locally, ACCORD_FUZZ_EXAMPLES=200 ACCORD_FUZZ_SEED=7 (say) runs a longer, different fuzz.
ADMIN_EXAMPLES = int(os.environ.get("ACCORD_FUZZ_EXAMPLES") or 25)
SEED = os.environ.get("ACCORD_FUZZ_SEED")
RESEARCHER_EXAMPLES = max(1, ADMIN_EXAMPLES * 3 // 5)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
SCOPES = ["jobs:read", "jobs:write", "ledger:read", "projects:read", "projects:write",
          "compliance", "audit:read"]


@dataclass
class Live:
    """The app under test, a client that owns its lifespan, and ids of objects in its store."""

    app: Any
    client: TestClient
    ids: dict[str, str]


def _no_lifespan(app: Any) -> Any:
    """``app`` without lifespan support: the TestClient owns its start and shutdown, so
    schemathesis must not start another that would outlive the test."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan is run by the test's TestClient")
        await app(scope, receive, send)

    return wrapped


@pytest.fixture(scope="module", autouse=True)
def _stop_schemathesis_portal() -> Iterator[None]:
    """schemathesis serves in-process ASGI calls from one event-loop thread for the whole
    process, stopped only at exit; a thread left running makes every later test that checks
    the ledger in slices spawn its worker processes instead of forking them (about 2 s a
    check): stop it once this module's fuzzing is done (a later call starts another)."""
    yield
    from schemathesis.python import asgi
    asgi._shutdown()


NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


@contextmanager
def serving(federation: Federation, where: Path, url: str | None = None) -> Iterator[Live]:
    """The full app (broker, ledger, access) over ``url`` (default SQLite in ``where``),
    with a few objects of each kind to aim at."""
    clock = FakeClock(NOW)   # inside uk-fr and the seeded allocation, whatever today is
    backends = {s.id: LocalBackend(s, where / "jobs") for s in federation.sites}
    services = compose(federation, url or f"sqlite:///{where / 'a.db'}", backends, clock, TOKEN,
                       data_dir=where)
    app = create_app(services)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Live(app, client, _seed(client, services.broker, services.ledger))
    finally:
        services.close()


@pytest.fixture
def live(small_federation: Federation, tmp_path: Path) -> Iterator[Live]:
    """A fresh app for one fuzz run."""
    with serving(small_federation, tmp_path) as it:
        yield it


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, small_federation: Federation,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One app for the single-request tests below (none of them changes anything), on each
    database: PostgreSQL refuses some text that SQLite stores (NUL characters)."""
    url = fresh_pg_schema(request.getfixturevalue("pg_database")) \
        if request.param == "postgresql" else None
    with serving(small_federation, tmp_path_factory.mktemp("shared"), url) as it:
        yield it


def _seed(client: TestClient, broker: Broker, ledger: Any) -> dict[str, str]:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = client.post(path, json=body, headers=AUTH)
        assert r.status_code in (200, 201), r.text
        doc: dict[str, Any] = r.json()
        return doc

    job = post("/api/v1/jobs", {"command": ["true"], "gpus": 1})
    post("/api/v1/users", {"id": "rita", "name": "Rita", "institution": "bristol"})
    project = post("/api/v1/projects", {"id": "clim", "name": "Climate", "partner": "uk",
                                        "theme": "climate"})
    post(f"/api/v1/projects/{project['id']}/members", {"user": "rita"})
    alloc = post(f"/api/v1/projects/{project['id']}/allocations",
                 {"agreement": "uk-fr", "host": "fr", "units": 10, "start": "2026-11",
                  "end": "2026-12"})
    token = post("/api/v1/tokens", {"name": "fuzz", "scopes": SCOPES, "for_user": "rita"})
    broker.store.add_usage(usage(1, datetime(2026, 11, 3, tzinfo=UTC), job_id=job["id"]))
    ledger.post_pending()
    entry = ledger.ledger.entries()[0]
    return {"job_id": job["id"], "user_id": "rita", "project_id": project["id"],
            "allocation_id": alloc["id"], "token_id": token["id"], "token": token["token"],
            "entry_id": entry.id, "agreement": "uk-fr", "period": "2026-11"}


def fuzz(live: Live, headers: dict[str, str], examples: int, *, invalid: bool) -> None:
    """Fuzz every operation with ``headers``; collect every failure, then fail listing all.

    Each operation gets ``examples`` schema-valid requests, as many again with its path
    parameters pinned to objects that exist (when it has any), and, if ``invalid``, as many
    schema-invalid ones (when it has a body or parameters to spoil).
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", _no_lifespan(live.app))
    operations = [schema[path][method] for path in schema for method in schema[path]]
    assert len(operations) > 30
    failures: list[str] = []
    for op in operations:
        pinned = {p.name: live.ids[p.name] for p in op.path_parameters if p.name in live.ids}
        runs = [("", op.as_strategy())]
        if pinned:
            runs.append((" (existing ids)", op.as_strategy(path_parameters=pinned)))
        if invalid and (op.body or op.query or op.path_parameters):
            runs.append((" (invalid input)", op.as_strategy(GenerationMode.NEGATIVE)))
        for label, strategy in runs:
            try:
                _run(strategy, headers, examples)
            except Unsatisfiable as exc:
                # A parameter no request can spoil (a path string takes anything) is fine;
                # failing to make valid requests is not.
                if label != " (invalid input)":
                    failures.append(f"{op.label}{label}: {exc}")
            except (Exception, BaseExceptionGroup) as exc:  # every failure of every operation
                failures.append(f"{op.label}{label}: {exc}")
    assert not failures, "\n\n".join(failures)


def _run(strategy: st.SearchStrategy[Case[Any]], headers: dict[str, str], examples: int) -> None:
    # deadline=None and no health checks: an in-process app with a database is slow and
    # variable on a shared CI runner; derandomize: the same requests on every run
    @settings(max_examples=examples, deadline=None, derandomize=SEED is None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def one(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    if SEED is not None:
        one = seed(int(SEED))(one)
    one()


def test_fuzz_every_route_as_admin(live: Live) -> None:
    """The local admin may do everything, so every route is exercised past its checks."""
    fuzz(live, AUTH, ADMIN_EXAMPLES, invalid=True)


def test_fuzz_every_route_as_a_researcher(live: Live) -> None:
    """An enrolled researcher's API token (minted by the admin): refusals are documented
    403s and 404s, never 5xx. Schema-invalid requests are left to the admin run: they are
    refused with 422 before anyone's rights are looked at."""
    researcher = {"Authorization": f"Bearer {live.ids['token']}"}
    assert live.client.get("/api/v1/me", headers=researcher).json()["user"] == "rita"
    fuzz(live, researcher, RESEARCHER_EXAMPLES, invalid=False)


@pytest.mark.parametrize(("method", "path", "body"), [
    # inputs the fuzz found, or that it rarely draws, which were 500s or undocumented statuses
    ("POST", "/api/v1/ledger/entries/{entry_id}/corrections",
     {"kind": "manual_credit", "units": "NaN", "reason": "x"}),
    ("POST", "/api/v1/ledger/entries/{entry_id}/corrections",
     {"kind": "refund", "units": "sNaN", "reason": "x"}),
    ("POST", "/api/v1/ledger/entries/{entry_id}/corrections",
     {"kind": "manual_credit", "units": "Infinity", "reason": "x"}),
    ("POST", "/api/v1/ledger/entries/{entry_id}/corrections",
     {"kind": "manual_credit", "units": "1e999999", "reason": "x"}),
    ("POST", "/api/v1/jobs/preview", {"command": ["x"], "deadline": "0001-01-01T00:00:00+14:00"}),
    ("POST", "/api/v1/jobs/preview", {"command": ["x"], "earliest_start": "9999-12-31T23:59:59-14:00"}),
    ("POST", "/api/v1/jobs", {"command": ["x"], "time_limit": "9" * 5000}),
    ("POST", "/api/v1/jobs", {"command": ["x"], "name": "nul\x00"}),
    ("POST", "/api/v1/jobs", b"\xff\xfe not UTF-8"),
    ("POST", "/api/v1/jobs", b'{"command": ["x"], "gpus": 1' + b"0" * 5000 + b"}"),  # int() limit
    ("GET", "/api/v1/audit?since=0001-01-01T00:00:00%2B14:00", None),
    ("GET", f"/api/v1/audit?after={2**63}", None),
    ("GET", "/api/v1/users/nul%00", None),
    ("GET", "/api/v1/statements/uk-fr/0277-04", None),
    ("GET", "/api/v1/ledger/reconcile?period=9999-12", None),
    ("GET", "/api/v1/emissions?period=%D9%A2%D9%A0%D9%A2%D9%A6-11", None),  # Arabic-Indic digits
])
def test_edge_inputs_are_422(shared: Live, method: str, path: str, body: object) -> None:
    kw: dict[str, Any] = {"content": body, "headers": {**AUTH, "content-type": "application/json"}} \
        if isinstance(body, bytes) else {"json": body, "headers": AUTH}
    r = shared.client.request(method, path.format(**shared.ids), **kw)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.json()["problems"]


def test_statement_formats_are_documented(shared: Live) -> None:
    spec = shared.client.get("/openapi.json").json()
    declared = spec["paths"]["/api/v1/statements/{agreement}/{period}"]["get"]["responses"]["200"]
    for fmt, kind in (("json", "application/json"), ("html", "text/html"), ("csv", "text/csv")):
        r = shared.client.get("/api/v1/statements/uk-fr/2026-11", params={"format": fmt}, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert kind in declared["content"]
