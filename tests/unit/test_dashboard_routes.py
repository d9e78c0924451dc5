"""The dashboard's API routes and the placement estimates they read, against a live app
(FastAPI's test client) over SQLite, with fake sites and a fake grid: live load per
site, an agreement's quotas, statement verification with the offline verifier, and the
emissions saving against the home-site baseline; and that the dashboard's files are
served with a strict Content-Security-Policy."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import FakeClock
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.carbon.series import IntensitySeries, series
from accord.domain.errors import Unavailable
from accord.domain.jobs.machine import _estimates
from accord.domain.jobs.model import EventKind, Job
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.ledger import signing
from accord.domain.ledger.statement import public_pem_of
from accord.domain.placement.records import Candidate, PoolLoad
from accord.service.broker import Broker
from accord.service.ledger import LedgerService
from tests.api.access_world import ADMIN, ADMIN_TOKEN, T0, world_federation

HOUR = timedelta(hours=1)


class Site:
    """A site with fixed free GPUs per pool that takes every job and keeps it pending;
    ``down`` makes it unreachable."""

    def __init__(self, site_id: str, free: Mapping[str, int], down: bool = False) -> None:
        self.site_id, self.free, self.down = site_id, dict(free), down

    def loads(self) -> Mapping[str, PoolLoad]:
        if self.down:
            raise Unavailable(f"{self.site_id}: the scheduler does not answer")
        return {pool: PoolLoad(free, queued_gpus=1) for pool, free in self.free.items()}

    def look_up(self, job: Job) -> Dispatched | None:
        return None

    def submit(self, job: Job) -> Dispatched:
        return Dispatched(backend_ref=f"r-{job.id}")

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        return {r: RemoteStatus(RemoteState.PENDING) for r in refs}

    def cancel(self, ref: str) -> None:
        pass

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


class Grid:
    """GB at 300 g/kWh, FR at 50, every hour."""

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = math.ceil((end - first) / HOUR)
        return series(zone, first, 3600, [300.0 if zone == "GB" else 50.0] * hours, source="test grid")


class App:
    """The app and its parts."""

    def __init__(self, client: TestClient, broker: Broker, ledger: LedgerService, sites: dict[str, Site]):
        self.client, self.broker, self.ledger, self.sites = client, broker, ledger, sites
        self.tokens: dict[str, str] = {}

    def get(self, user: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.auth(user), **kw)

    def post(self, user: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.auth(user), **kw)

    def auth(self, user: str) -> dict[str, str]:
        return ADMIN if user == "admin" else {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    fed = world_federation()
    clock = FakeClock(T0)
    sites = {"bristol": Site("bristol", {"h100": 3}), "paris": Site("paris", {"a100": 8}, down=True)}
    services = compose(fed, f"sqlite:///{tmp_path / 'd.db'}", sites, clock, ADMIN_TOKEN, carbon=Grid())
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            a = App(client, services.broker, services.ledger, sites)
            for user, institution, grant in (("alice", "bristol", None),
                                             ("pofr", "sorbonne", ("programme_officer", "partner", "fr"))):
                assert client.post("/api/v1/users", headers=ADMIN, json={
                    "id": user, "name": user, "institution": institution}).status_code == 201
                if grant:
                    role, scope, target = grant
                    assert client.post(f"/api/v1/users/{user}/grants", headers=ADMIN, json={
                        "role": role, "scope": scope, "target": target}).status_code == 201
                a.tokens[user] = client.post("/api/v1/tokens", headers=ADMIN, json={
                    "name": user, "scopes": ["jobs:read", "jobs:write", "ledger:read", "projects:read"],
                    "for_user": user}).json()["token"]
            yield a
    finally:
        services.close()


def test_the_load_of_every_site_is_shown_to_any_signed_in_caller(app: App) -> None:
    assert app.client.get("/api/v1/federation/load").status_code == 401
    doc = app.get("alice", "/api/v1/federation/load").json()
    sites = {s["site"]: s for s in doc["sites"]}
    assert sites["bristol"]["available"] and sites["bristol"]["gpus"] == 4
    assert (sites["bristol"]["busy_gpus"], sites["bristol"]["queued_gpus"]) == (1, 1)
    assert sites["bristol"]["pools"][0] == {"pool": "h100", "gpu_model": "H100", "gpus": 4,
                                            "free_gpus": 3, "busy_gpus": 1, "queued_gpus": 1,
                                            "available": True, "note": ""}
    paris = sites["paris"]
    assert not paris["available"] and paris["busy_gpus"] is None
    assert "does not answer" in paris["note"]


def test_an_agreements_quotas_are_for_its_overseers(app: App) -> None:
    doc = app.get("pofr", "/api/v1/agreements/uk-fr/quotas").json()
    assert doc["agreement"] == "uk-fr" and doc["in_force"] and doc["unit"] == "H100-hour"
    assert {(q["requester"], q["host"], q["per"], q["period"], q["used"], q["left"]) for q in doc["quotas"]} \
        == {("uk", "fr", "year", "2026", 0.0, 1000.0), ("fr", "uk", "year", "2026", 0.0, 1000.0)}
    refused = app.get("alice", "/api/v1/agreements/uk-fr/quotas")
    assert refused.status_code == 403
    assert "only programme officers and auditors of its parties" in refused.json()["detail"]
    unknown = app.get("pofr", "/api/v1/agreements/nope/quotas")
    assert unknown.status_code == 404 and "uk-fr" in unknown.json()["detail"]


def test_a_statement_is_verified_with_the_offline_verifier(app: App) -> None:
    doc = app.get("pofr", "/api/v1/statements/uk-fr/2026-11").json()
    pem = public_pem_of(app.ledger.public_key)
    ok = app.post("pofr", "/api/v1/statements/verify", json={"statement": doc, "public_key_pem": pem})
    assert ok.status_code == 200, ok.text
    assert ok.json() | {"key_id": None} == {"ok": True, "problems": [], "agreement": "uk-fr",
                                            "period": "2026-11", "status": "provisional", "entries": 0,
                                            "tree_size": 0, "key_id": None}
    forged = {**doc, "totals": {**doc["totals"], "net_by_partner": {"uk": "999"}}}

    def check(statement: Any, key: str) -> Any:
        return app.post("alice", "/api/v1/statements/verify",
                        json={"statement": statement, "public_key_pem": key})

    bad = check(forged, pem).json()
    assert not bad["ok"] and "the totals do not match the entries" in bad["problems"]
    wrong = check(doc, public_pem_of(signing.public_key(signing.generate_private_key()))).json()
    assert not wrong["ok"]
    assert "the statement was signed with another key than the one given" in wrong["problems"]
    junk = check({"format": 1}, pem)
    assert junk.status_code == 200 and junk.json()["ok"] is False
    not_pem = app.post("alice", "/api/v1/statements/verify", json={"statement": doc, "public_key_pem": "x"})
    assert not_pem.status_code == 422 and not_pem.json()["problems"][0]["field"] == "public_key_pem"
    assert app.post("alice", "/api/v1/statements/verify", json={"statement": [], "public_key_pem": pem}
                    ).status_code == 422
    assert app.client.post("/api/v1/statements/verify", json={"statement": doc, "public_key_pem": pem}
                           ).status_code == 401


def test_placement_records_its_estimate_and_the_home_baseline() -> None:
    chosen = Candidate("paris", "a100", "uk-fr", (("emissions", 0.1),), T0, 120.0)
    home = Candidate("bristol", "h100", None, (("emissions", 0.5),), T0, 900.0)
    assert _estimates(chosen, home) == (("emissions_g", "120.000"), ("baseline_g", "900.000"),
                                        ("baseline_site", "bristol"), ("baseline_pool", "h100"))
    assert _estimates(chosen, None) == (("emissions_g", "120.000"),)
    assert _estimates(chosen._replace(emissions_g=None), home) == ()


def place_event(app: App, **job: Any) -> Any:
    """Submit ``job`` as the admin (starting within 30 minutes), run one dispatcher pass,
    and return the job's PLACE event."""
    body = {"command": ["x"], "partner": "uk", "time_limit": "1h",
            "deadline": (T0 + 90 * timedelta(minutes=1)).isoformat(), **job}
    job_id = app.post("admin", "/api/v1/jobs", json=body).json()["id"]
    app.broker.step()
    return next(e.event for e in app.broker.store.get_job(job_id).story if e.event.kind is EventKind.PLACE)


def test_the_saving_against_the_home_site_is_summed_for_what_the_caller_sees(app: App) -> None:
    home = place_event(app, gpu_model="H100")   # paris is down: the home site is the only choice
    assert home.get("site") == "bristol" and home.get("baseline_site") == "bristol"
    at_home = float(home.get("emissions_g") or 0)
    assert at_home > 0 and home.get("baseline_g") == home.get("emissions_g")
    app.sites["paris"].down = False
    abroad = place_event(app, theme="climate")   # Paris's grid is six times cleaner
    assert (abroad.get("site"), abroad.get("baseline_site")) == ("paris", "bristol")
    estimate, baseline = float(abroad.get("emissions_g") or 0), float(abroad.get("baseline_g") or 0)
    assert 0 < estimate < baseline

    doc = app.get("admin", "/api/v1/emissions/savings", params={"group": "site", "period": "2026-11"}).json()
    kg = pytest.approx
    assert doc["totals"] == [
        {"key": "bristol", "jobs": 1, "estimated_kg": kg(at_home / 1000), "baseline_kg": kg(at_home / 1000),
         "saving_kg": 0.0},
        {"key": "paris", "jobs": 1, "estimated_kg": kg(estimate / 1000), "baseline_kg": kg(baseline / 1000),
         "saving_kg": kg((baseline - estimate) / 1000)}]
    assert doc["total"]["saving_kg"] == kg((baseline - estimate) / 1000)
    assert doc["without_estimate"] == 0
    assert app.get("admin", "/api/v1/emissions/savings", params={"period": "2026-10"}).json()["totals"] == []
    since = app.get("admin", "/api/v1/emissions/savings", params={"since": "2026-06"}).json()
    assert since["total"]["jobs"] == 2 and since["totals"][0]["key"] == "uk"   # by requesting partner
    assert app.get("admin", "/api/v1/emissions/savings", params={"since": "2026-12"}).json()["totals"] == []
    assert app.get("alice", "/api/v1/emissions/savings").json()["total"]["jobs"] == 0, "not hers"
    assert app.get("alice", "/api/v1/emissions/savings", params={"group": "x"}).status_code == 422
    assert app.get("alice", "/api/v1/emissions/savings", params={"period": "2026-13"}).status_code == 422


def test_the_dashboard_is_served_with_a_strict_content_security_policy(app: App) -> None:
    page = app.client.get("/dashboard/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    script = app.client.get("/dashboard/js/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert app.client.get("/dashboard", follow_redirects=False).status_code in (307, 308)
    assert app.client.get("/dashboard/js/nothing.js").status_code == 404
    assert app.client.get("/dashboard/../pyproject.toml").status_code == 404
