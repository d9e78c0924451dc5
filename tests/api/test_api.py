"""The REST API: auth, submission, idempotency, and problem+json for every bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import SystemClock
from accord.adapters.local_backend import LocalBackend
from accord.compose import compose
from accord.domain.federation.model import Federation
from accord.service.broker import Broker
from accord.service.services import Services
from tests.api.conftest import AUTH, TOKEN


@pytest.fixture
def services(small_federation: Federation, tmp_path: Path) -> Iterator[Services]:
    backends = {s.id: LocalBackend(s, tmp_path / "jobs") for s in small_federation.sites}
    composed = compose(small_federation, f"sqlite:///{tmp_path / 'a.db'}", backends, SystemClock(), TOKEN)
    yield composed
    composed.close()


def test_routes_need_the_token(api: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = api.get("/api/v1/jobs", headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
    assert api.get("/healthz").json() == {"status": "ok"}


def test_submit_show_list_cancel(api: TestClient) -> None:
    r = api.post("/api/v1/jobs", json={"command": ["sleep", "1"], "gpus": 2}, headers=AUTH)
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "submitted" and job["story"][0]["kind"] == "submit"
    assert api.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).json()["id"] == job["id"]
    listed = api.get("/api/v1/jobs", params={"state": "submitted"}, headers=AUTH).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    cancelled = api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=AUTH).json()
    assert cancelled["state"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_idempotency_key(api: TestClient) -> None:
    body = {"command": ["true"]}
    h = {**AUTH, "Idempotency-Key": "abc"}
    first = api.post("/api/v1/jobs", json=body, headers=h)
    second = api.post("/api/v1/jobs", json=body, headers=h)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    other = api.post("/api/v1/jobs", json={"command": ["false"]}, headers=h)
    assert other.status_code == 409 and "different spec" in other.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"command": ["x"], "gpus": "two"}, "gpus", "'two'"),
        ({"command": ["x"], "gpus": 0}, "gpus", "greater than or equal to 1"),
        ({"command": ["x"], "gpus": 64}, "gpus", "more GPUs than any pool has"),
        ({"command": "ls"}, "command", "valid list"),
        ({"command": ["x"], "gpu_model": "TPU"}, "gpu_model", "unknown GPU model"),
        ({"command": ["x"], "time_limit": "forever"}, "time_limit", "not a valid time limit"),
        ({"command": ["x"], "shoe_size": 9}, "shoe_size", "Extra inputs are not permitted"),
        ({}, "command", "needs a command or a script"),
        ({"command": ["x"], "partner": "atlantis"}, "partner", "unknown partner"),
    ],
)
def test_bad_jobs_get_422_naming_the_field(
    api: TestClient, body: dict[str, object], field: str, fragment: str
) -> None:
    r = api.post("/api/v1/jobs", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problems = r.json()["problems"]
    assert any(p["field"] == field and fragment in f"{p['message']} {p['got']}" for p in problems), \
        problems


def test_malformed_json_and_wrong_types(api: TestClient) -> None:
    r = api.post("/api/v1/jobs", content=b"{not json", headers={**AUTH,
                                                                 "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["problems"][0]["message"] == "is not valid JSON"
    r = api.post("/api/v1/jobs", json=[1, 2], headers=AUTH)
    assert r.status_code == 422
    r = api.get("/api/v1/jobs", params={"limit": "lots"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "limit"
    r = api.get("/api/v1/jobs", params={"state": "sleeping"}, headers=AUTH)
    assert r.status_code == 422 and "submitted" in str(r.json()["problems"])


def test_unknown_job_and_route_are_problem_404(api: TestClient) -> None:
    r = api.get("/api/v1/jobs/nope", headers=AUTH)
    assert r.status_code == 404 and r.json()["detail"] == "no job 'nope'"
    assert api.get("/api/v1/nothing", headers=AUTH).status_code == 404
    assert api.post("/api/v1/jobs/nope/cancel", headers=AUTH).status_code == 404
    assert api.get("/api/v1/jobs/nope/logs", headers=AUTH).status_code == 404


def test_status_page_and_openapi(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200 and "test federation" in page.text
    spec = api.get("/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"]


def test_job_runs_through_the_dispatcher(api: TestClient, broker: Broker) -> None:
    import time

    job = api.post("/api/v1/jobs", json={"command": ["python", "-c", "print('hi')"]},
                   headers=AUTH).json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        broker.step()
        state = api.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).json()
        if state["state"] == "completed":
            break
        time.sleep(0.1)
    assert state["state"] == "completed", state
    assert api.get(f"/api/v1/jobs/{job['id']}/logs", headers=AUTH).json()["stdout"] == "hi\n"
    kinds = [e["kind"] for e in state["story"] if e["kind"] != "note"]
    assert kinds[:3] == ["submit", "place", "dispatch"]
    assert kinds[-1] == "complete"
