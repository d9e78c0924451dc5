"""A real Prometheus (Debian's ``prometheus``, which ``scripts/test`` installs) scrapes a real
``accord up`` every second; after a scripted run (three jobs that complete, one that fails)
PromQL through Prometheus's HTTP API returns the expected values, no label value anywhere is
a job id, a user or a request id, and the hub's JSON log lines name the jobs they are about."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.domain.errors import Unavailable
from accord.service.telemetry import HubSources, Telemetry
from tests.conftest import SMALL_FEDERATION
from tests.integration.in_force import write_in_force
from tests.integration.prometheus import Prometheus, wait_until
from tests.integration.server import AccordProcess

FINAL = ("completed", "failed", "cancelled", "timed_out")
REQUEST_ID = "metrics-test-0001"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[AccordProcess]:
    server = AccordProcess(tmp_path / "data", write_in_force(tmp_path / "f.toml", SMALL_FEDERATION))
    server.start_args = ["--log-format", "json"]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, hub: AccordProcess) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path / "prom", f"127.0.0.1:{hub.port}")
    try:
        prom.wait_ready()
        yield prom
    finally:
        prom.stop()


def _run_jobs(hub: AccordProcess) -> list[dict[str, Any]]:
    """Three jobs that complete and one that fails; every job once final."""
    commands = [["true"], ["true"], ["true"], ["false"]]
    with hub.client() as c:
        ids = [c.post("/api/v1/jobs", json={"command": cmd, "gpus": 1},
                      headers={"X-Request-ID": f"{REQUEST_ID}-{i}"}).json()["id"]
               for i, cmd in enumerate(commands)]

        def final() -> bool:
            return all(c.get(f"/api/v1/jobs/{j}").json()["state"] in FINAL for j in ids)

        wait_until(final, 60, "the four jobs to end", hub.log)
        return [c.get(f"/api/v1/jobs/{j}").json() for j in ids]


def test_prometheus_scrapes_the_hub_and_promql_sees_the_run(
    hub: AccordProcess, prometheus: Prometheus
) -> None:
    jobs = _run_jobs(hub)
    assert sorted(j["state"] for j in jobs) == ["completed"] * 3 + ["failed"]
    assert [j["story"][0]["stimulus"] for j in jobs] == [f"submit.request.{REQUEST_ID}-{i}" for i in range(4)]
    expected = {
        'sum(accord_jobs{state="completed"})': 3.0,
        'sum(accord_jobs{state="failed"})': 1.0,
        'sum(accord_jobs{state=~"submitted|placed|dispatched|running"})': 0.0,
        'sum(accord_placement_decisions_total{kind="first",verdict="place"})': 4.0,
        'sum(accord_placement_duration_seconds_count)': 4.0,
        'sum(accord_site_call_duration_seconds_count{call="dispatch"})': 4.0,
        'sum(accord_site_call_failures_total) or vector(0)': 0.0,
        'accord_replica_leading{job="accord"}': 1.0,
        'up{job="accord"}': 1.0,
    }

    def seen() -> bool:
        return all(prometheus.scalar(q) == v for q, v in expected.items())

    wait_until(seen, 30, f"Prometheus to scrape the run's values: "
                         f"{ {q: prometheus.scalar(q) for q in expected} }")
    assert (prometheus.scalar("accord_dispatch_lease_epoch") or 0) >= 1
    assert (prometheus.scalar('sum(accord_site_call_duration_seconds_count{call="poll"})') or 0) >= 1
    p90 = prometheus.scalar("histogram_quantile(0.9, sum by (le) (accord_placement_duration_seconds_bucket))")
    assert p90 is not None and 0 < p90 < 2.5
    assert prometheus.scalar("accord_ledger_entries") is not None
    _no_unbounded_labels(prometheus, {j["id"] for j in jobs} | {"admin", REQUEST_ID})
    _json_logs_name_the_jobs(hub, jobs)


def _no_unbounded_labels(prom: Prometheus, secrets: set[str]) -> None:
    """No label value Prometheus stored is a job id, a user or a request id."""
    names = httpx.get(f"{prom.url}/api/v1/labels", timeout=10).json()["data"]
    for name in names:
        values = httpx.get(f"{prom.url}/api/v1/label/{name}/values", timeout=10).json()["data"]
        leaked = [v for v in values if any(s in v for s in secrets)]
        assert not leaked, f"label {name} holds {leaked}"


def _json_logs_name_the_jobs(hub: AccordProcess, jobs: list[dict[str, Any]]) -> None:
    """Every line the hub logged is one JSON object; those about a job name it and its site."""
    lines = [json.loads(line) for line in hub.log.read_text().splitlines()
             if line.startswith("{")]
    assert lines and all({"time", "level", "event", "logger"} <= set(x) for x in lines)
    assert any("replica" in x["event"] and x["level"] == "info" for x in lines)
    sites = {j["id"]: j["site"] for j in jobs}
    about = [x for x in lines if "job_id" in x]
    assert about and {x["job_id"] for x in about} <= set(sites), about   # e.g. each job's end
    assert all(x["site"] == sites[x["job_id"]] for x in about), about


DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
METRIC = re.compile(r"\baccord_[a-z_]+\b")


def _exported() -> set[str]:
    """Every sample name a hub exports once each metric has a value."""
    t = Telemetry()
    t.watch(HubSources(sites=("s1",), jobs=lambda: {}, ledger_entries=lambda: 1,
                       last_closure=lambda: datetime(2026, 1, 1, tzinfo=UTC),
                       allocations=lambda: {"a": (1.0, 0.5)},
                       audit_queued=lambda: 0, audit_spooled=lambda: 0, commit_queued=lambda: 0,
                       now=lambda: datetime(2026, 1, 2, tzinfo=UTC), agents=lambda: {"s1": (3.0, 2)},
                       last_cosigned=lambda: datetime(2026, 1, 1, 23, tzinfo=UTC)))
    t.lead_by(lambda: True, lambda: 1)
    with contextlib.suppress(Unavailable), t.site_call("s1", "poll"):
        raise Unavailable("down")
    t.placement_seconds.labels("first").observe(0.01)
    t.placements.labels("first", "place").inc()
    return {line.split("{")[0].split(" ")[0] for line in t.exposition().decode().splitlines()
            if line.startswith("accord_") and "_created" not in line}   # client-library timestamps


def test_the_dashboard_and_the_alerts_use_only_metrics_the_hub_exports() -> None:
    exported = _exported()
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    rules = (DOCS / "accord-alerts.yml").read_text()
    used = {m for text in [*exprs, rules] for m in METRIC.findall(text)}
    assert used and not used - exported, f"not exported: {sorted(used - exported)}"
    unused = {m.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for m in exported}
    unused -= {m.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for m in used}
    assert not unused, f"exported but on no panel or alert: {sorted(unused)}"
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is not installed"
    check = subprocess.run([promtool, "check", "rules", str(DOCS / "accord-alerts.yml")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
