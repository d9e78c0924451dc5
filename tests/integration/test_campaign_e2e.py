"""A joint UK–France model-testing campaign on the real Slurm testbed, end to end.

Two tasks (the shipped Inspect tasks ``arithmetic`` and ``capitals``) × two model
endpoints served by a deterministic OpenAI-compatible stand-in started here: four
Accord jobs, two at home on isambard (uk) and two abroad on jeanzay (fr) under the
uk-fr agreement and an allocation France's programme officer approved. Real Inspect
runs in each Slurm job; no network is reachable from the jobs but loopback (a dead
proxy for everything else), so nothing can be downloaded. The embargoed results are
refused to everyone until both partners' programme officers approve, and always to a
third partner; every read is audited; the abroad jobs are in the ledger under uk-fr.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import SystemClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.slurm.backend import SlurmBackend
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.access.rules import TokenScope
from accord.service.access import RateLimiter
from accord.service.broker import Broker
from accord.service.campaigns import CampaignService
from accord.service.ledger import LedgerService
from tests.api.access_world import cancel_unfinished
from tests.conftest import SMALL_FEDERATION
from tests.fixtures.campaigns.model_server import EXPECTED, ModelServer
from tests.integration.in_force import write_in_force
from tests.integration.server import AccordProcess, run_cli
from tests.integration.slurm_testbed import SERIAL, slurm_federation_text

ADMIN_TOKEN = "campaign-admin-token"
THIRD_PARTNER = """
[[partners]]
id = "kr"
name = "Korea"
country = "KR"

[[institutions]]
id = "bristol"
name = "University of Bristol"
partner = "uk"
sector = "academia"

[[institutions]]
id = "sorbonne"
name = "Sorbonne Université"
partner = "fr"
sector = "academia"

[[institutions]]
id = "kaist"
name = "KAIST"
partner = "kr"
sector = "academia"
"""
PEOPLE = {
    "alice": ("bristol", []),                                             # UK researcher, PI
    "pouk": ("bristol", [("programme_officer", "partner", "uk")]),
    "claire": ("sorbonne", []),                                           # French researcher
    "pofr": ("sorbonne", [("programme_officer", "partner", "fr")]),
    "kim": ("kaist", []),                                                 # unrelated partner
    "pokr": ("kaist", [("programme_officer", "partner", "kr")]),
}


@dataclass
class Bed:
    client: TestClient
    broker: Broker
    ledger: LedgerService
    campaigns: CampaignService
    tokens: dict[str, str]

    def call(self, user: str, method: str, path: str, **kw: Any) -> Any:
        token = ADMIN_TOKEN if user == "admin" else self.tokens[user]
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(user, method, path, **kw)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()


@pytest.fixture
def testbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bed]:
    # The Slurm jobs inherit this environment (sbatch --export=ALL): only loopback is reachable.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fed = parse_federation_text(slurm_federation_text() + THIRD_PARTNER, "campaign-testbed.toml")
    backends = {s.id: SlurmBackend(s, tmp_path / "slurm-jobs") for s in fed.sites}
    services = compose(fed, f"sqlite:///{tmp_path / 'accord.db'}", backends, SystemClock(), ADMIN_TOKEN,
                       token_limiter=RateLimiter(1000, 60.0))
    broker, ledger, campaigns = services.broker, services.ledger, services.campaigns
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            tb = Bed(client, broker, ledger, campaigns, {})
            for user, (institution, grants) in PEOPLE.items():
                tb.ok("admin", "POST", "/api/v1/users", json={"id": user, "name": user.title(),
                                                               "institution": institution})
                for role, scope, target in grants:
                    tb.ok("admin", "POST", f"/api/v1/users/{user}/grants",
                          json={"role": role, "scope": scope, "target": target})
                tb.tokens[user] = tb.ok("admin", "POST", "/api/v1/tokens", json={
                    "name": user, "scopes": [s.value for s in TokenScope], "for_user": user})["token"]
            yield tb
            cancel_unfinished(broker, limit=100)
    finally:
        services.close()


def _campaign(url: str) -> dict[str, Any]:
    return {
        "id": "uk-fr-evals-1", "name": "UK–France joint testing, round 1", "project": "joint-evals",
        "partners": ["uk", "fr"], "sites": ["isambard", "jeanzay"], "time_limit_s": 600,
        "tasks": [{"name": "arithmetic", "version": 1}, {"name": "capitals", "version": 2}],
        "models": [{"name": "calc", "base_url": url, "model": "calc", "partner": "uk"},
                   {"name": "fortytwo", "base_url": url, "model": "fortytwo", "partner": "fr"}],
        "results": {"embargo": "approval"},
    }


@SERIAL
def test_two_partner_campaign_on_slurm_embargo_release_and_ledger(testbed: Bed) -> None:
    tb = testbed
    now = datetime.now(UTC)
    month = now.strftime("%Y-%m")
    following = f"{now.year + now.month // 12}-{now.month % 12 + 1:02d}"   # a run may cross months
    tb.ok("alice", "POST", "/api/v1/projects", json={"id": "joint-evals", "name": "Joint evaluations",
                                                      "partner": "uk", "theme": None})
    alloc = tb.ok("alice", "POST", "/api/v1/projects/joint-evals/allocations", json={
        "agreement": "uk-fr", "host": "fr", "units": 50, "start": month, "end": following})
    tb.ok("pofr", "POST", f"/api/v1/allocations/{alloc['id']}/decision",
          json={"approve": True, "reason": "joint testing exercise"})

    with ModelServer() as model:
        created = tb.call("alice", "POST", "/api/v1/campaigns", json=_campaign(model.url))
        assert created.status_code == 201, created.text
        assert tb.call("alice", "POST", "/api/v1/campaigns", json=_campaign(model.url)).status_code == 409
        assert tb.call("kim", "POST", "/api/v1/campaigns",
                       json={**_campaign(model.url), "id": "x"}).status_code == 403   # not a member
        wrong = tb.call("alice", "POST", "/api/v1/campaigns",
                        json={**_campaign(model.url), "id": "x", "partners": ["fr"], "sites": ["jeanzay"]})
        assert wrong.status_code == 422 and wrong.json()["problems"][0]["field"] == "partners"
        assert tb.call("kim", "POST", "/api/v1/campaigns/uk-fr-evals-1/submit").status_code == 403
        runs = tb.ok("alice", "POST", "/api/v1/campaigns/uk-fr-evals-1/submit")["runs"]
        again = tb.ok("alice", "POST", "/api/v1/campaigns/uk-fr-evals-1/submit")["runs"]
        assert len(runs) == 4 and again == runs          # submitting twice adds nothing
        jobs = _run_until_done(tb, [r["job"] for r in runs], timeout=150)
        assert model.calls == 16                           # 4 pairs x 4 samples, nothing retried

    for j in jobs.values():
        assert j["state"] == "completed", (j["id"], j["state"], j["reason"], tb.ok("admin", "GET",
                                           f"/api/v1/jobs/{j['id']}/logs"))
    abroad = {i for i, j in jobs.items() if j["site"] == "jeanzay"}
    assert len(abroad) == 2 and all(jobs[i]["agreement"] == "uk-fr" for i in abroad)
    assert all(j["agreement"] is None for i, j in jobs.items() if i not in abroad)

    # Embargoed: nobody reads results, the third partner never does, nor the operator.
    for user in ("alice", "claire", "pouk", "pofr", "kim", "admin"):
        r = tb.call(user, "GET", "/api/v1/campaigns/uk-fr-evals-1/results")
        assert r.status_code == 403, (user, r.text)
    assert "every partner approves release" in tb.call("alice", "GET",
                                                       "/api/v1/campaigns/uk-fr-evals-1/results").text
    status = tb.ok("claire", "GET", "/api/v1/campaigns/uk-fr-evals-1")
    assert {r["state"] for r in status["runs"]} == {"completed"}
    assert all(r["logs"] == 1 for r in status["runs"])
    compute = status["compute"]["by_host_partner"]
    assert compute["fr"]["agreements"] == ["uk-fr"] and compute["fr"]["jobs"] == 2
    assert compute["uk"]["agreements"] == [] and compute["uk"]["jobs"] == 2
    assert compute["fr"]["gpu_hours"] > 0 and compute["fr"]["energy_kwh"] > 0
    assert tb.call("kim", "GET", "/api/v1/campaigns/uk-fr-evals-1").status_code == 403

    # Release: the programme officer of each partner; another partner's cannot.
    assert tb.call("pokr", "POST", "/api/v1/campaigns/uk-fr-evals-1/release", json={}).status_code == 403
    assert tb.call("claire", "POST", "/api/v1/campaigns/uk-fr-evals-1/release", json={}).status_code == 403
    first = tb.ok("pouk", "POST", "/api/v1/campaigns/uk-fr-evals-1/release", json={})
    assert (first["partner"], first["lifted"]) == ("uk", False)
    assert tb.call("alice", "GET", "/api/v1/campaigns/uk-fr-evals-1/results").status_code == 403
    second = tb.ok("pofr", "POST", "/api/v1/campaigns/uk-fr-evals-1/release", json={})
    assert (second["partner"], second["lifted"]) == ("fr", True)

    for user in ("alice", "claire"):
        results = tb.ok(user, "GET", "/api/v1/campaigns/uk-fr-evals-1/results")["results"]
        scores = {(x["task"], x["model"]): x for x in results}
        assert set(scores) == set(EXPECTED)
        for pair, accuracy in EXPECTED.items():
            line = next(s for s in scores[pair]["scores"] if s["metric"] == "accuracy")
            assert line["value"] == accuracy, pair
            assert scores[pair]["status"] == "success" and scores[pair]["completed"] == 4
        calc_capitals = next(s for s in scores[("capitals", "calc")]["scores"] if s["metric"] == "accuracy")
        assert math.isclose(calc_capitals["stderr"], math.sqrt((1 / 3) / 4))   # [1,1,0,0]: s/√n
        assert (calc_capitals["ci_low"], calc_capitals["ci_high"]) == (0.0, 1.0)   # 0.5 ± 0.566, clipped
        guess = next(s for s in scores[("arithmetic", "fortytwo")]["scores"] if s["metric"] == "accuracy")
        assert guess["stderr"] == 0.25                                          # [1,0,0,0]: s = 0.5
        assert (guess["ci_low"], guess["ci_high"]) == (0.0, round(0.25 + 1.959963984540054 * 0.25, 6))
        assert {scores[("arithmetic", m)]["task_version"] for m in ("calc", "fortytwo")} == {"1"}
        assert {scores[("capitals", m)]["task_version"] for m in ("calc", "fortytwo")} == {"2"}
    assert tb.call("kim", "GET", "/api/v1/campaigns/uk-fr-evals-1/results").status_code == 403

    # The stored log is Inspect's file, byte for byte, under its SHA-256.
    one = results[0]
    raw = tb.call("alice", "GET", f"/api/v1/campaigns/uk-fr-evals-1/logs/{one['sha256']}")
    assert raw.status_code == 200
    assert hashlib.sha256(raw.content).hexdigest() == one["sha256"]
    assert tb.campaigns.collect() == 0 and len(tb.campaigns.store.logs("uk-fr-evals-1")) == 4

    # The abroad jobs are charged to uk-fr: uk requested, fr hosted, at jeanzay.
    tb.ledger.post_pending()
    for job_id in abroad:
        entries = tb.ledger.ledger.entries(agreement="uk-fr", job_id=job_id)
        assert len(entries) == 1, job_id
        e = entries[0]
        assert (e.requester, e.host, e.site, e.project) == ("uk", "fr", "jeanzay", "joint-evals")
        assert float(e.units) > 0
    for job_id in set(jobs) - abroad:
        assert tb.ledger.ledger.entries(job_id=job_id) == []

    # Every results read is in the audit log, refused ones included.
    records = tb.ok("admin", "GET", "/api/v1/audit", params={"action": "campaign.results.read"})["records"]
    seen = {(r["actor"], r["outcome"]) for r in records}
    assert {("alice", "refused"), ("alice", "ok"), ("claire", "ok"), ("kim", "refused"),
            ("admin", "refused")} <= seen
    releases = tb.ok("admin", "GET", "/api/v1/audit", params={"action": "campaign.release"})["records"]
    assert {(r["actor"], r["outcome"]) for r in releases} >= {("pouk", "ok"), ("pofr", "ok"),
                                                              ("pokr", "refused")}


def _run_until_done(tb: Bed, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        tb.broker.step()
        jobs = {i: tb.ok("admin", "GET", f"/api/v1/jobs/{i}") for i in ids}
        if all(j["state"] in ("completed", "failed", "cancelled", "timed_out") for j in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError([(j["id"], j["state"], j["reason"]) for j in jobs.values()])
        time.sleep(1)


# ---------------------------------------------------------------------------- the CLI
LOCAL_FEDERATION = SMALL_FEDERATION + """
[[institutions]]
id = "sorbonne"
name = "Sorbonne Université"
partner = "fr"
sector = "academia"
"""


def test_the_cli_runs_a_campaign_on_local_sites_and_the_dispatcher_collects(tmp_path: Path) -> None:
    fed = write_in_force(tmp_path / "federation.toml", LOCAL_FEDERATION)   # uk-fr in force today
    server = AccordProcess(tmp_path / "data", fed)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        server.env[var] = "http://127.0.0.1:9"            # the jobs reach nothing but loopback
    server.env["NO_PROXY"] = server.env["no_proxy"] = "127.0.0.1,localhost"
    data = server.data_dir
    with ModelServer() as model:
        server.start()
        try:
            tokens = {}
            for user, inst, grant in (("ada", "bristol", []), ("pouk", "bristol", ["--partner", "uk"]),
                                      ("pofr", "sorbonne", ["--partner", "fr"])):
                assert run_cli(data, "user", "add", user, "--name", user, "--institution", inst)[0] == 0
                if grant:
                    assert run_cli(data, "user", "grant", user, "programme_officer", *grant)[0] == 0
                code, out, err = run_cli(data, "token", "create", f"{user}-cli", "--for-user", user,
                                      *[x for s in ("jobs:read", "jobs:write", "projects:read",
                                                    "projects:write") for x in ("--scope", s)])
                assert code == 0, err
                tokens[user] = out.strip()
            ada = tokens["ada"]
            assert run_cli(data, "project", "create", "evals", "--name", "Evals", "--partner", "uk",
                        token=ada)[0] == 0
            code, out, err = run_cli(data, "campaign", "create", "--id", "local-1", "--project", "evals",
                                  "--partner", "uk", "--partner", "fr", "--site", "bristol",
                                  "--task", "arithmetic:1", "--model", f"calc,{model.url},calc,uk",
                                  "--model", f"fortytwo,{model.url},fortytwo,fr", token=ada)
            assert code == 0, err
            assert "2 model(s), charged to project evals; results embargo: approval" in out
            bad = run_cli(data, "campaign", "create", "--id", "local-2", "--project", "evals", "--partner",
                       "uk", "--site", "bristol", "--task", "arithmetic:9", "--model", "m,ftp://x,m",
                       token=ada)
            assert bad[0] == 2 and "tasks[0].version: does not match the shipped task arithmetic" in bad[2]
            assert "models[0].base_url: is not an http(s) URL" in bad[2]
            code, out, err = run_cli(data, "campaign", "submit", "local-1", token=ada)
            assert code == 0 and out.count("job j") == 2, err
            deadline = time.monotonic() + 90
            while True:     # the dispatcher runs the jobs and collects their logs by itself
                with sqlite3.connect(data / "accord.db") as db:
                    collected = db.execute("SELECT count(*) FROM campaign_runs WHERE collected_at "
                                           "IS NOT NULL").fetchone()[0]
                if collected == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert collected == 2, run_cli(data, "campaign", "status", "local-1", token=ada)
            code, out, err = run_cli(data, "campaign", "status", "local-1", token=ada)
            assert code == 0 and out.count(": completed at bristol") == 2, out
            assert "results: embargoed" in out and "compute at uk:" in out
            code, _, err = run_cli(data, "campaign", "results", "local-1", token=ada)
            assert code == 2 and "every partner approves release" in err
            assert run_cli(data, "campaign", "approve-release", "local-1", token=tokens["pouk"])[0] == 0
            code, out, _ = run_cli(data, "campaign", "approve-release", "local-1", token=tokens["pofr"])
            assert code == 0 and "the embargo has lifted" in out
            code, out, err = run_cli(data, "campaign", "results", "local-1", token=ada)
            assert code == 0, err
            rows = {tuple(line.split()[:4]) for line in out.splitlines()[1:]}
            assert rows == {("arithmetic", "calc", "accuracy", "1.000"),
                            ("arithmetic", "fortytwo", "accuracy", "0.250")}, out
        finally:
            server.stop()
