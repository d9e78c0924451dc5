"""Operators' view of a hub: ``/metrics`` (Prometheus text, no token, bounded labels: never a
job id or a user), request ids (taken from ``X-Request-ID`` when safe, returned, written into
the job's story) and JSON log lines carrying the request, job and site."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from accord.domain.errors import Busy, InvalidInput, Unavailable
from accord.service import log_context
from accord.service.telemetry import HubSources, Telemetry
from tests.api.access_world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path, people=False) as w:
        yield w


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[name, tuple(sorted(labels.items()))]


def test_metrics_need_no_token_and_show_no_job_id_or_user(world: World) -> None:
    jobs = [world.submit("admin", command=["true"], gpus=1)["id"] for _ in range(3)]
    r = world.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert value(r.text, "accord_jobs", state="submitted", site="none") == 3
    assert value(r.text, "accord_jobs", state="completed", site="none") == 0
    assert value(r.text, "accord_replica_leading") == 0   # no dispatch lease in process
    assert value(r.text, "accord_ledger_entries") == 0
    assert value(r.text, "accord_group_commit_queue_depth") == 0
    assert not any(j in r.text for j in jobs) and "admin" not in r.text


def test_a_pass_counts_placements_and_times_the_site_calls(world: World) -> None:
    world.submit("admin", command=["true"], gpus=1)
    world.broker.step()
    text = world.client.get("/metrics").text
    placed = value(text, "accord_placement_decisions_total", kind="first", verdict="place")
    assert placed == 1
    assert value(text, "accord_placement_duration_seconds_count", kind="first") == 1
    site = next(lbl["site"] for (n, ls), v in samples(text).items()
                if n == "accord_jobs" and v == 1 for lbl in [dict(ls)])
    assert site != "none"
    assert value(text, "accord_site_call_duration_seconds_count", site=site, call="dispatch") == 1


def test_site_call_failures_are_counted_by_kind_and_raised_again() -> None:
    t = Telemetry()
    for exc in (Busy("full"), Unavailable("down"), ValueError("bug")):
        with pytest.raises(type(exc)), t.site_call("s1", "dispatch"):
            raise exc
    text = t.exposition().decode()
    for kind in ("busy", "unavailable", "error"):
        assert value(text, "accord_site_call_failures_total", site="s1", call="dispatch", kind=kind) == 1
    assert value(text, "accord_site_call_duration_seconds_count", site="s1", call="dispatch") == 3


def _sources(**over: object) -> HubSources:
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    base: dict[str, object] = {
        "sites": ("s1",), "jobs": lambda: {("running", "s1"): 2, ("submitted", None): 1},
        "ledger_entries": lambda: 7, "last_closure": lambda: datetime(2026, 11, 2, 8, tzinfo=UTC),
        "allocations": lambda: {"uk-fr": (100.0, 25.5)}, "audit_queued": lambda: 3,
        "audit_spooled": lambda: 0, "commit_queued": lambda: 4, "now": lambda: now}
    return HubSources(**{**base, **over})  # type: ignore[arg-type]


def test_the_hub_state_is_read_at_scrape_time_and_a_failing_source_is_left_out() -> None:
    t = Telemetry()
    t.watch(_sources(ledger_entries=lambda: 1 // 0))
    t.lead_by(lambda: True, lambda: 5)
    text = t.exposition().decode()
    assert value(text, "accord_jobs", state="running", site="s1") == 2
    assert value(text, "accord_jobs", state="submitted", site="none") == 1
    assert value(text, "accord_ledger_last_closure_age_seconds") == 3600
    assert "accord_ledger_entries" not in text          # its source failed: left out
    assert value(text, "accord_allocation_granted_units", agreement="uk-fr") == 100
    assert value(text, "accord_allocation_used_units", agreement="uk-fr") == 25.5
    assert value(text, "accord_audit_queue_depth") == 3
    assert value(text, "accord_group_commit_queue_depth") == 4
    assert value(text, "accord_replica_leading") == 1
    assert value(text, "accord_dispatch_lease_epoch") == 5


def test_two_hubs_in_one_process_keep_their_own_metrics() -> None:
    a, b = Telemetry(), Telemetry()
    a.watch(_sources())
    b.watch(_sources(jobs=lambda: {}))
    assert value(a.exposition().decode(), "accord_jobs", state="running", site="s1") == 2
    assert value(b.exposition().decode(), "accord_jobs", state="running", site="s1") == 0


@pytest.mark.parametrize("given", ["abc-123", "trace:1.2_3", "x" * 128])
def test_a_safe_request_id_is_returned_and_written_into_the_story(world: World, given: str) -> None:
    r = world.client.post("/api/v1/jobs", json={"command": ["true"]},
                          headers={**world.auth("admin"), "X-Request-ID": given})
    assert r.status_code == 201 and r.headers["X-Request-ID"] == given
    story = world.job(r.json()["id"])["story"]
    assert story[0]["stimulus"] == f"submit.request.{given}"


@pytest.mark.parametrize("given", [None, "", "x" * 129, "a b", "id\u00e9", "a/../b", "<script>"])
def test_an_unsafe_or_missing_request_id_is_replaced(world: World, given: str | None) -> None:
    headers = [(k.encode(), v.encode()) for k, v in world.auth("admin").items()]
    if given is not None:
        headers.append((b"X-Request-ID", given.encode("latin-1")))   # as sent: é is one byte
    r = world.client.post("/api/v1/jobs", json={"command": ["true"]}, headers=headers)
    rid = r.headers["X-Request-ID"]
    assert r.status_code == 201 and rid != given and len(rid) == 32 and int(rid, 16) >= 0
    assert world.job(r.json()["id"])["story"][0]["stimulus"] == f"submit.request.{rid}"


def test_every_answer_carries_a_request_id(world: World) -> None:
    for path in ("/healthz", "/metrics", "/api/v1/jobs/j-nothing"):
        assert world.client.get(path, headers=world.auth("admin")).headers["X-Request-ID"]


def test_an_unexpected_error_answers_500_with_the_request_id(world: World, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(world.store, "get_job", broken)
    client = TestClient(world.client.app, raise_server_exceptions=False)
    r = client.get("/api/v1/jobs/j-anything", headers={**world.auth("admin"), "X-Request-ID": "op-trace-42"})
    assert r.status_code == 500 and r.json()["title"] == "Internal error"
    assert r.headers["X-Request-ID"] == "op-trace-42"


def test_json_log_lines_carry_the_request_job_and_site() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(log_context.JsonFormatter())
    log = logging.getLogger("accord.test-json")
    log.addHandler(handler)
    try:
        with log_context.bound(request_id="r1"), log_context.bound(job_id="j1", site="s1"):
            log.warning("placed %s", "here")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "placed here" and first["level"] == "warning"
    assert (first["request_id"], first["job_id"], first["site"]) == ("r1", "j1", "s1")
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert second["event"] == "outside" and "request_id" not in second and "job_id" not in second


def test_an_unknown_log_format_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput) as e:
        log_context.configure("xml")
    p = e.value.problems[0]
    assert (p.where, p.got) == ("--log-format", "xml") and "json" in str(p.allowed)


def test_the_jobs_are_counted_at_most_once_per_interval() -> None:
    reads: list[int] = []

    def jobs() -> dict[tuple[str, str | None], int]:
        reads.append(1)
        return {("running", "s1"): len(reads)}

    t, fresh = Telemetry(), Telemetry()
    t.watch(_sources(jobs=jobs, jobs_every_s=3600.0))
    fresh.watch(_sources(jobs=jobs, jobs_every_s=0.0))
    first, second = (value(t.exposition().decode(), "accord_jobs", state="running", site="s1")
                     for _ in range(2))
    assert (first, second, len(reads)) == (1, 1, 1)     # the second scrape reused the count
    assert value(fresh.exposition().decode(), "accord_jobs", state="running", site="s1") == 2
