"""A small world of partners, people, roles, projects and allocations behind a live app,
shared by the access tests: who may see and do what is tested against it.

Its time is a :class:`FakeClock` (``start``, by default :data:`T0`), never the machine's:
tokens expire, allocations and agreements are in force, and embargoes lift by that clock.
A test that needs a month names it relative to the clock (:func:`month_of`,
:data:`MONTH0`, :data:`MONTH1`), so the world behaves the same whatever today's date is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.local_backend import LocalBackend
from accord.adapters.sql.store import SqlStore
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.access.rules import TokenScope
from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import next_period
from accord.service.access import AccessService, RateLimiter
from accord.service.broker import Broker
from accord.service.ledger import LedgerService
from tests.conftest import SMALL_FEDERATION

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)   # the world's "now": inside every agreement it uses


def month_of(at: datetime) -> str:
    """The ``YYYY-MM`` month of ``at`` (UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m")


MONTH0 = month_of(T0)             # the world's current month
MONTH1 = next_period(MONTH0)      # and the next
ADMIN_TOKEN = "local-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALL_SCOPES = [s.value for s in TokenScope]

WORLD_FEDERATION = SMALL_FEDERATION + """
[[institutions]]
id = "sorbonne"
name = "Sorbonne Université"
partner = "fr"
sector = "academia"

[[institutions]]
id = "acme"
name = "Acme AI Ltd"
partner = "uk"
sector = "industry"

[[institutions]]
id = "kaist"
name = "KAIST"
partner = "kr"
sector = "academia"

[[institutions]]
id = "rogue"
name = "Rogue Labs"
partner = "kr"
sector = "industry"

[[compliance.large_runs]]
id = "foreign-training"
hosts = ["fr"]
gpu_hours = 100

[[compliance.denied_parties]]
id = "denied-parties"
institutions = ["rogue"]

[[compliance.residency]]
id = "uk-safety-stays-home"
themes = ["ai-safety"]
countries = ["GB"]
partners = ["uk"]
"""

# user -> (institution, grants as (role, scope, target))
PEOPLE: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "alice": ("bristol", []),
    "bob": ("bristol", []),
    "claire": ("sorbonne", []),
    "ivy": ("acme", []),
    "rex": ("rogue", []),
    "opfr": ("sorbonne", [("site_operator", "site", "paris")]),
    "pofr": ("sorbonne", [("programme_officer", "partner", "fr")]),
    "pouk": ("bristol", [("programme_officer", "partner", "uk")]),
    "audfr": ("sorbonne", [("auditor", "partner", "fr")]),
    "root": ("bristol", [("admin", "global", "")]),
}


@dataclass
class World:
    """The app, its parts, and a bearer token per person."""

    client: TestClient
    broker: Broker
    access: AccessService
    ledger: LedgerService
    clock: FakeClock
    store: SqlStore
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        """The Authorization header of ``user`` ("admin": the local admin token)."""
        return ADMIN if user == "admin" else {"Authorization": f"Bearer {self.tokens[user]}"}

    def call(self, user: str, method: str, path: str, **kw: Any) -> Any:
        """A request as ``user``."""
        return self.client.request(method, path, headers=self.auth(user), **kw)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        """A request that must succeed; its JSON."""
        r = self.call(user, method, path, **kw)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def submit(self, user: str, **job: Any) -> dict[str, Any]:
        """Submit a job as ``user`` (it must be accepted)."""
        body = {"command": ["sleep", "30"], "gpus": 1, "time_limit": 3600, **job}
        return dict(self.ok(user, "POST", "/api/v1/jobs", json=body))

    def job(self, job_id: str) -> dict[str, Any]:
        """A job as the admin sees it."""
        return dict(self.ok("admin", "GET", f"/api/v1/jobs/{job_id}"))

    def enrol(self, user: str, institution: str, grants: list[tuple[str, str, str]] = ()) -> None:  # type: ignore[assignment]
        """Enrol ``user``, grant roles and mint them an all-scope token."""
        self.ok("admin", "POST", "/api/v1/users", json={"id": user, "name": user.title(),
                                                           "institution": institution})
        for role, scope, target in grants:
            self.ok("admin", "POST", f"/api/v1/users/{user}/grants",
                    json={"role": role, "scope": scope, "target": target})
        minted = self.ok("admin", "POST", "/api/v1/tokens",
                         json={"name": f"{user}-all", "scopes": ALL_SCOPES, "for_user": user})
        self.tokens[user] = minted["token"]


def world_federation(extra: str = "") -> Federation:
    """The small test federation with more institutions and compliance rules (and ``extra``)."""
    return parse_federation_text(WORLD_FEDERATION + extra, "world.toml")


@contextmanager
def make_world(tmp: Path, *, verifier: Callable[[str], tuple[str, str]] | None = None,
               people: bool = True, token_limit: int = 1000, extra: str = "",
               start: datetime = T0, database_url: str | None = None,
               data_dir: Path | None = None) -> Iterator[World]:
    """A live app over a fresh store (SQLite in ``tmp`` unless ``database_url`` names
    another) with (optionally) everyone in :data:`PEOPLE`; its clock is a
    :class:`FakeClock` set to ``start`` (the machine's clock is never read); ``data_dir``
    (default: none) holds its signing key and audit spool."""
    fed = world_federation(extra)
    clock = FakeClock(start)
    backends = {s.id: LocalBackend(s, tmp / "jobs") for s in fed.sites}
    store = SqlStore(database_url or f"sqlite:///{tmp / 'world.db'}")
    services = compose(fed, store, backends, clock, ADMIN_TOKEN, oidc=verifier, data_dir=data_dir,
                       token_limiter=RateLimiter(token_limit, 60.0))
    broker = services.broker
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            w = World(client, broker, services.access, services.ledger, clock, store)
            if people:
                for user, (institution, grants) in PEOPLE.items():
                    w.enrol(user, institution, grants)
            yield w
            cancel_unfinished(broker)
    finally:
        services.close()


def cancel_unfinished(broker: Broker, limit: int = 1000) -> None:
    """Cancel every job still running or waiting when a test is over (best effort)."""
    for j in broker.store.list_jobs(limit=limit):
        if not j.state.is_final:
            try:
                broker.cancel(j.id, "test over")
            except Exception:  # noqa: S110 - best effort: the test is over
                pass
