"""The footprint and emissions routes: a job's energy and emissions, and totals per group."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import FakeClock
from accord.compose import compose
from accord.domain.federation.model import Federation
from accord.domain.ledger.usage import UsageRecord
from accord.service.broker import Broker
from accord.service.services import Services
from tests.api.conftest import AUTH, TOKEN
from tests.conftest import T0
from tests.service.test_broker_footprint import EndingBackend, FlatCarbon, ran


@pytest.fixture
def services(small_federation: Federation, tmp_path: Path) -> Iterator[Services]:
    backends = {"bristol": EndingBackend("bristol", ran(1.0))}
    composed = compose(small_federation, f"sqlite:///{tmp_path / 'a.db'}", backends,
                       FakeClock(T0 + timedelta(hours=3)), TOKEN, carbon=FlatCarbon(200.0))
    yield composed
    composed.close()


def test_routes_need_the_token(api: TestClient) -> None:
    for path in ("/api/v1/jobs/x/footprint", "/api/v1/emissions"):
        assert api.get(path).status_code == 401


def test_a_finished_jobs_footprint(api: TestClient, broker: Broker) -> None:
    job, _ = broker.submit({"command": ["x"], "site": "bristol", "gpus": 2}, "admin")
    before = api.get(f"/api/v1/jobs/{job.id}/footprint", headers=AUTH).json()
    assert (before["recorded"], before["energy_kwh"], before["reason"]) == (
        False, None, f"job {job.id} has not ended yet")
    broker.step()
    f = api.get(f"/api/v1/jobs/{job.id}/footprint", headers=AUTH).json()
    assert (f["recorded"], f["state"], f["site"], f["gpus"], f["energy_basis"]) == (
        True, "completed", "bristol", 2, "model")
    assert f["energy_kwh"] == pytest.approx(2.805, rel=1e-12)
    assert f["emissions_kg"] == pytest.approx(0.561, rel=1e-12)
    assert f["mean_intensity_g_per_kwh"] == pytest.approx(200.0, rel=1e-12)
    assert f["intensity_source"] == "flat test data"


def test_an_unknown_job_is_404(api: TestClient) -> None:
    r = api.get("/api/v1/jobs/nope/footprint", headers=AUTH)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def usage(i: int, start: datetime, **kw: object) -> UsageRecord:
    base = UsageRecord(f"paris:{i}", f"j{i}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                       "proj", start, start + timedelta(hours=1), 2, 7200.0, "completed", 0,
                       energy_kwh=1.0, emissions_g=100.0, intensity_source="flat")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_totals_per_group_and_start_month(api: TestClient, broker: Broker) -> None:
    nov = datetime(2026, 11, 3, tzinfo=UTC)
    for r in (usage(1, nov), usage(2, nov, project="other", emissions_g=None),
              usage(3, nov, site="bristol", host_partner="uk", requester_partner="fr"),
              usage(4, datetime(2026, 10, 31, 23, 30, tzinfo=UTC)),  # started in October
              usage(5, nov, agreement=None, requester_partner=None)):
        broker.store.add_usage(r)
    doc = api.get("/api/v1/emissions", params={"group": "agreement", "period": "2026-11"},
                  headers=AUTH).json()
    assert (doc["group"], doc["period"]) == ("agreement", "2026-11")
    assert doc["totals"] == [
        {"key": "(none)", "jobs": 1, "gpu_hours": 2.0, "energy_kwh": 1.0, "emissions_kg": 0.1,
         "energy_unknown": 0, "emissions_unknown": 0},
        {"key": "uk-fr", "jobs": 3, "gpu_hours": 6.0, "energy_kwh": 3.0,
         "emissions_kg": pytest.approx(0.2), "energy_unknown": 0, "emissions_unknown": 1}]
    assert doc["total"]["jobs"] == 4 and doc["total"]["emissions_unknown"] == 1
    by_host = api.get("/api/v1/emissions", params={"group": "partner"}, headers=AUTH).json()
    assert by_host["group"] == "host_partner"
    assert [(t["key"], t["jobs"]) for t in by_host["totals"]] == [("fr", 4), ("uk", 1)]
    by_req = api.get("/api/v1/emissions", params={"group": "requester_partner"}, headers=AUTH)
    assert [(t["key"], t["jobs"]) for t in by_req.json()["totals"]] == [
        ("(none)", 1), ("fr", 1), ("uk", 3)]
    for group in ("project", "site"):
        assert api.get("/api/v1/emissions", params={"group": group}, headers=AUTH).status_code == 200


@pytest.mark.parametrize("params", [{"group": "country"}, {"period": "2026-13"},
                                    {"period": "november"}])
def test_bad_queries_are_422(api: TestClient, params: dict[str, str]) -> None:
    r = api.get("/api/v1/emissions", params=params, headers=AUTH)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
