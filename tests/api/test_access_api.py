"""Identity, tokens, projects, allocations, compliance and audit through the live API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from accord.adapters.oidc import OidcSettings, OidcVerifier
from tests import oidc_helpers as oh
from tests.api.access_world import ALL_SCOPES, World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        w.ok("alice", "POST", "/api/v1/projects", json={"id": "climate-a", "name": "Climate A",
                                                         "partner": "uk", "theme": "climate"})
        yield w


def allocate(w: World, units: float, project: str = "climate-a", by: str = "alice") -> str:
    a = w.ok(by, "POST", f"/api/v1/projects/{project}/allocations",
             json={"agreement": "uk-fr", "host": "fr", "units": units, "start": "2026-11", "end": "2026-12"})
    w.ok("pofr", "POST", f"/api/v1/allocations/{a['id']}/decision", json={"approve": True, "reason": "fits"})
    return str(a["id"])


def story(w: World, job_id: str) -> str:
    return " | ".join(e["reason"] for e in w.job(job_id)["story"])


# ── identity ─────────────────────────────────────────────────────────────────────────
def test_oidc_tokens_are_verified_against_a_jwks_served_locally(tmp_path: Path) -> None:
    keys = oh.make_keys()
    with oh.serve_jwks(lambda: oh.jwks_document({"rsa-1": keys["rsa-1"]})) as url:
        oidc = OidcVerifier(OidcSettings(oh.ISSUER, oh.AUDIENCE, url))

        def verify(token: str) -> tuple[str, str]:
            c = oidc.verify(token)
            return c.issuer, c.subject

        with make_world(tmp_path, verifier=verify, people=False) as w:
            olga = {"id": "olga", "name": "Olga", "institution": "bristol", "oidc_issuer": oh.ISSUER,
                    "oidc_subject": "olga-sub"}
            w.ok("admin", "POST", "/api/v1/users", json=olga)
            good = oh.mint(keys["rsa-1"], "rsa-1", sub="olga-sub")
            me = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
            assert me.status_code == 200 and me.json()["user"] == "olga" and me.json()["partners"] == ["uk"]
            other_key = oh.make_keys()["rsa-1"]
            refused = {
                "expired": oh.mint(keys["rsa-1"], "rsa-1", sub="olga-sub", exp=1_000_000_000,
                                   iat=999_999_000),
                "wrong audience": oh.mint(keys["rsa-1"], "rsa-1", sub="olga-sub", aud="someone-else"),
                "wrong issuer": oh.mint(keys["rsa-1"], "rsa-1", sub="olga-sub", iss="https://evil.test"),
                "forged": oh.mint(other_key, "rsa-1", sub="olga-sub"),
                "alg none": oh.unsigned("rsa-1", sub="olga-sub"),
                "hs256 with the public key": oh.forge_hs256(oh.public_pem(keys["rsa-1"]), "rsa-1",
                                                            sub="olga-sub"),
                "garbage": "not.a.jwt",
            }
            for why, token in refused.items():
                r = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 401, why
                assert r.headers["www-authenticate"] == "Bearer"
                assert r.headers["content-type"] == "application/problem+json"
            stranger = oh.mint(keys["rsa-1"], "rsa-1", sub="not-enrolled")
            r = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {stranger}"})
            assert r.status_code == 403 and "not enrolled" in r.json()["detail"]


def test_api_tokens_are_scoped_expiring_revocable_and_stored_as_hashes(world: World) -> None:
    w = world
    minted = w.ok("alice", "POST", "/api/v1/tokens", json={"name": "read-only", "scopes": ["jobs:read"],
                                                            "days": 30})
    secret = minted["token"]
    read_only = {"Authorization": f"Bearer {secret}"}
    assert w.client.get("/api/v1/jobs", headers=read_only).status_code == 200
    r = w.client.post("/api/v1/jobs", headers=read_only, json={"command": ["true"], "project": "climate-a"})
    assert r.status_code == 403 and "jobs:write" in r.json()["detail"]
    # a read-only token cannot mint a wider one
    r = w.client.post("/api/v1/tokens", headers=read_only, json={"name": "x", "scopes": ALL_SCOPES})
    assert r.status_code == 403
    # only a hash is stored
    with w.broker.store.transaction() as conn:  # type: ignore[attr-defined]
        stored = conn.execute(text("SELECT secret_hash FROM api_tokens WHERE id = :i"),
                              {"i": minted["id"]}).scalar_one()
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM api_tokens")).all())
    assert secret.split("_", 2)[2] not in dump
    assert stored == hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
    # expiry
    w.clock.advance(timedelta(days=31).total_seconds())
    r = w.client.get("/api/v1/jobs", headers=read_only)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    w.clock.advance(-timedelta(days=31).total_seconds())
    # revocation; someone else cannot revoke it, nor learn that it exists
    assert w.call("bob", "DELETE", f"/api/v1/tokens/{minted['id']}").status_code == 403
    assert w.call("bob", "DELETE", "/api/v1/tokens/nonexistent").json()["detail"].endswith("is not yours")
    w.ok("alice", "DELETE", f"/api/v1/tokens/{minted['id']}")
    r = w.client.get("/api/v1/jobs", headers=read_only)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # tampered secret
    bad = {"Authorization": f"Bearer {w.tokens['alice'][:-2]}xx"}
    assert w.client.get("/api/v1/jobs", headers=bad).status_code == 401


def test_token_endpoints_are_rate_limited(tmp_path: Path) -> None:
    with make_world(tmp_path, people=False) as w:
        w.enrol("alice", "bristol")
        w.access.token_limiter = type(w.access.token_limiter)(5, 60.0)
        codes = [w.call("alice", "POST", "/api/v1/tokens", json={"name": f"t{i}", "scopes": ["jobs:read"]}
                        ).status_code for i in range(7)]
        assert codes[:5] == [201] * 5 and codes[5:] == [429, 429]
        r = w.call("alice", "GET", "/api/v1/tokens")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"


def test_failed_authentication_is_rate_limited_per_client(world: World) -> None:
    codes = [world.client.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code
             for _ in range(65)]
    assert codes[0] == 401 and codes[-1] == 429


# ── submissions ──────────────────────────────────────────────────────────────────────
def test_only_members_submit_to_a_project_and_cannot_tell_if_others_exist(world: World) -> None:
    w = world
    not_member = w.call("bob", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "climate-a"})
    missing = w.call("bob", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "no-such"})
    assert not_member.status_code == missing.status_code == 403
    assert not_member.json()["detail"].replace("climate-a",
                                               "X") == missing.json()["detail"].replace("no-such", "X")
    w.ok("alice", "POST", "/api/v1/projects/climate-a/members", json={"user": "bob"})
    job = w.submit("bob", project="climate-a")
    assert job["spec"]["partner"] == "uk" and job["owner"] == "bob" and job["spec"]["theme"] == "climate"
    r = w.call("bob", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "climate-a",
                                                    "partner": "fr"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "partner"


def test_a_removed_member_submits_no_more_and_the_pi_stays(world: World) -> None:
    w = world
    w.ok("alice", "POST", "/api/v1/projects/climate-a/members", json={"user": "bob"})
    w.submit("bob", project="climate-a")
    project = w.ok("alice", "DELETE", "/api/v1/projects/climate-a/members/bob")
    assert "bob" not in project["members"]
    r = w.call("bob", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "climate-a"})
    assert r.status_code == 403
    again = w.call("alice", "DELETE", "/api/v1/projects/climate-a/members/bob")
    assert again.status_code == 404 and "not a member" in again.json()["detail"]
    pi = w.call("alice", "DELETE", "/api/v1/projects/climate-a/members/alice")
    assert pi.status_code == 409 and "leads project climate-a" in pi.json()["detail"]
    audit = w.ok("admin", "GET", "/api/v1/audit", params={"action": "project.member"})
    assert any("remove bob" in str(x) for x in audit["records"]), audit


def test_denied_parties_are_refused_with_the_rule_and_facts(world: World) -> None:
    w = world
    w.ok("rex", "POST", "/api/v1/projects", json={"id": "rex-p", "name": "Rex", "partner": "kr"})
    r = w.call("rex", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "rex-p"})
    assert r.status_code == 403
    assert "rule denied-parties (denied_party)" in r.json()["detail"] and "rogue" in r.json()["detail"]


def test_a_denied_party_rule_for_some_hosts_keeps_work_away_from_them(tmp_path: Path) -> None:
    extra = """
[[compliance.denied_parties]]
id = "no-gb-at-fr"
countries = ["GB"]
hosts = ["fr"]
"""
    with make_world(tmp_path, extra=extra) as w:
        w.ok("alice", "POST", "/api/v1/projects", json={"id": "p", "name": "P", "partner": "uk",
                                                         "theme": "climate"})
        job = w.submit("alice", project="p", gpus=2)
        assert sorted(job["spec"]["data_residency"]) == ["GB", "KR"]
        assert "rule no-gb-at-fr (denied_party)" in story(w, job["id"])
        r = w.call("alice", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "p",
                                                          "data_residency": ["FR"]})
        assert r.status_code == 422 and "no-gb-at-fr" in r.text


def test_residency_rules_narrow_where_work_may_run(world: World) -> None:
    w = world
    w.ok("alice", "POST", "/api/v1/projects", json={"id": "safety-a", "name": "Safety", "partner": "uk",
                                                     "theme": "ai-safety"})
    job = w.submit("alice", project="safety-a")
    assert job["spec"]["data_residency"] == ["GB"]
    assert "rule uk-safety-stays-home (residency)" in story(w, job["id"])
    r = w.call("alice", "POST", "/api/v1/jobs", json={"command": ["true"], "project": "safety-a",
                                                      "data_residency": ["FR"]})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "data_residency"


def test_an_agreement_open_to_academia_refuses_industry(world: World) -> None:
    w = world
    w.ok("alice", "POST", "/api/v1/projects/climate-a/members", json={"user": "ivy"})
    allocate(w, 100)
    job = w.submit("ivy", project="climate-a", gpus=8)      # only Paris has 8 GPUs
    w.broker.step()
    got = w.job(job["id"])
    assert got["state"] == "failed"
    assert "open to the academia sector(s), not industry" in story(w, job["id"])


def test_a_project_runs_abroad_only_under_an_approved_allocation(world: World) -> None:
    w = world
    job = w.submit("alice", project="climate-a", site="paris")
    w.broker.step()
    assert w.job(job["id"])["state"] == "failed"
    assert "holds no approved allocation under agreement uk-fr at paris" in story(w, job["id"])
    pending = w.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
                   json={"agreement": "uk-fr", "host": "fr", "units": 50, "start": "2026-11",
                         "end": "2026-12"})
    for who in ("alice", "pouk", "root", "opfr", "claire"):     # only fr's programme officer decides
        r = w.call(who, "POST", f"/api/v1/allocations/{pending['id']}/decision",
                   json={"approve": True, "reason": "me"})
        assert r.status_code == 403, who
    r = w.call("pofr", "POST", f"/api/v1/allocations/{pending['id']}/decision", json={"approve": False})
    assert r.status_code == 422                                     # a refusal needs a reason
    w.ok("pofr", "POST", f"/api/v1/allocations/{pending['id']}/decision", json={"approve": True,
                                                                                "reason": "ok"})
    r = w.call("pofr", "POST", f"/api/v1/allocations/{pending['id']}/decision",
               json={"approve": False, "reason": "changed my mind"})
    assert r.status_code == 409
    job = w.submit("alice", project="climate-a", site="paris")
    w.broker.step()
    assert w.job(job["id"])["site"] == "paris"


def test_allocation_use_is_enforced_in_grades(world: World) -> None:
    w = world
    allocate(w, 5)                                     # A100 at 0.5 unit per GPU-hour
    warn = w.submit("alice", project="climate-a", site="paris", gpus=4, time_limit=7560)    # 4.2 → 84 %
    w.broker.step()
    assert w.job(warn["id"])["state"] in ("dispatched", "running")
    assert "Warning: past 80% of the allocation" in story(w, warn["id"])
    lower = w.submit("alice", project="climate-a", site="paris", gpus=1, time_limit=5760)  # +0.8 → 100 %
    w.broker.step()
    assert w.job(lower["id"])["state"] == "submitted"
    assert "Priority lowered" in story(w, lower["id"])
    w.broker.step()                                    # yields one pass, then runs
    assert w.job(lower["id"])["state"] in ("dispatched", "running")
    over = w.submit("alice", project="climate-a", site="paris", gpus=1, time_limit=3600)   # +0.5 → 110 %
    w.broker.step()
    held = w.job(over["id"])
    assert held["state"] == "held" and "allocation would be overdrawn" in story(w, over["id"])
    preview = w.ok("alice", "POST", "/api/v1/jobs/preview",
                   json={"command": ["true"], "project": "climate-a", "site": "paris", "gpus": 2})
    assert preview["site"] == "paris" and preview["cost_units"] == 1.0 and preview["gate"]["action"] == "hold"
    assert preview["energy_kwh"] > 0 and preview["gate"]["would_run"] is False
    allocate(w, 10)                                    # more units: the held job is released and runs
    assert w.job(over["id"])["state"] == "submitted"
    w.broker.step()
    assert w.job(over["id"])["state"] in ("dispatched", "running")


def test_large_runs_abroad_wait_for_the_site_operator(world: World) -> None:
    w = world
    allocate(w, 10_000)
    big = w.submit("alice", project="climate-a", site="paris", gpus=8, time_limit="13h")   # 104 GPU-h
    w.broker.step()
    assert w.job(big["id"])["state"] == "held"
    assert "rule foreign-training (large_run)" in story(w, big["id"])
    report = w.ok("opfr", "GET", "/api/v1/compliance")["held"]
    assert [(h["job"], h["site"], h["rule"]) for h in report] == [(big["id"], "paris", "foreign-training")]
    assert w.ok("pofr", "GET", "/api/v1/compliance")["held"]               # the host's officer sees it
    assert w.call("alice", "GET", "/api/v1/compliance").status_code == 403
    for who in ("alice", "pofr", "root", "claire"):
        r = w.call(who, "POST", f"/api/v1/compliance/{big['id']}/decision", json={"approve": True})
        assert r.status_code == 403, who
    w.ok("opfr", "POST", f"/api/v1/compliance/{big['id']}/decision",
         json={"approve": True, "reason": "checked the model card"})
    w.broker.step()
    got = w.job(big["id"])
    assert got["site"] == "paris" and "Approved by opfr" in story(w, big["id"])


def test_a_refused_large_run_fails_with_the_reason(world: World) -> None:
    w = world
    allocate(w, 10_000)
    big = w.submit("alice", project="climate-a", site="paris", gpus=8, time_limit="13h")
    w.broker.step()
    r = w.call("opfr", "POST", f"/api/v1/compliance/{big['id']}/decision", json={"approve": False})
    assert r.status_code == 422
    w.ok("opfr", "POST", f"/api/v1/compliance/{big['id']}/decision",
         json={"approve": False, "reason": "dual-use concerns"})
    w.broker.step()
    assert w.job(big["id"])["state"] == "failed" and "dual-use concerns" in story(w, big["id"])


def test_a_secondment_to_the_host_exempts_from_the_large_run_rule(world: World) -> None:
    w = world
    w.enrol("sam", "bristol")
    w.ok("admin", "POST", "/api/v1/users/sam/affiliations",
         json={"institution": "sorbonne", "kind": "secondment", "start": "2026-10-01", "end": "2027-03-31"})
    w.ok("alice", "POST", "/api/v1/projects/climate-a/members", json={"user": "sam"})
    allocate(w, 10_000)
    big = w.submit("sam", project="climate-a", site="paris", gpus=8, time_limit="13h")
    w.broker.step()
    assert w.job(big["id"])["site"] == "paris"
    # a placement (visit) does not count as an affiliation for the rule
    w.enrol("pat", "bristol")
    w.ok("admin", "POST", "/api/v1/users/pat/affiliations",
         json={"institution": "sorbonne", "kind": "placement", "start": "2026-10-01", "end": "2027-03-31"})
    w.ok("alice", "POST", "/api/v1/projects/climate-a/members", json={"user": "pat"})
    w.broker.cancel(big["id"])
    w.broker.step()
    other = w.submit("pat", project="climate-a", site="paris", gpus=8, time_limit="13h")
    w.broker.step()
    assert w.job(other["id"])["state"] == "held"


# ── audit ────────────────────────────────────────────────────────────────────────────
def test_every_state_changing_request_is_audited_and_auditors_see_their_partner(world: World) -> None:
    w = world
    allocate(w, 100)
    job = w.submit("alice", project="climate-a")
    assert w.call("bob", "POST", f"/api/v1/jobs/{job['id']}/cancel").status_code == 403
    assert w.client.post("/api/v1/projects", json={"id": "x", "name": "x",
                                                   "partner": "uk"}).status_code == 401
    records = w.ok("root", "GET", "/api/v1/audit")["records"]
    by_action = {(r["actor"], r["action"], r["outcome"]) for r in records}
    assert ("alice", "project.create", "ok") in by_action
    assert ("alice", "allocation.apply", "ok") in by_action
    assert ("pofr", "allocation.decide", "ok") in by_action
    assert ("alice", "job.submit", "ok") in by_action
    assert ("bob", "job.cancel", "refused") in by_action
    assert any(r["actor"] == "anonymous" and r["status"] == 401 for r in records)
    assert all(r["source"] and r["at"] for r in records)
    submitted = next(r for r in records if r["action"] == "job.submit")
    assert submitted["target"] == f"job {job['id']}" and submitted["via"].startswith("api-token:")
    fr_view = w.ok("audfr", "GET", "/api/v1/audit")["records"]
    assert fr_view and all("fr" in r["partners"] for r in fr_view)
    assert {r["action"] for r in fr_view} >= {"allocation.decide"}
    for who in ("alice", "pofr", "opfr"):
        assert w.call(who, "GET", "/api/v1/audit").status_code == 403
    only_alice = w.ok("root", "GET", "/api/v1/audit", params={"actor": "alice", "action": "job.submit"})
    assert [r["target"] for r in only_alice["records"]] == [f"job {job['id']}"]


# ── hostile input ────────────────────────────────────────────────────────────────────
INJECTIONS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "x' OR '1'='1", "j1; DROP TABLE jobs; --",
              "%00", "a" * 300]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_names_and_paths_cannot_escape_or_inject(world: World, evil: str) -> None:
    w = world
    before = len(w.broker.store.list_jobs(limit=1000))
    for user in ("alice", "admin"):
        for path in (f"/api/v1/jobs/{evil}", f"/api/v1/jobs/{evil}/logs", f"/api/v1/projects/{evil}",
                     f"/api/v1/users/{evil}", f"/api/v1/statements/{evil}/2026-11"):
            r = w.call(user, "GET", path)
            assert r.status_code in (403, 404, 422), (user, path, r.status_code)
            assert "root:" not in r.text
        r = w.call(user, "GET", "/api/v1/ledger/entries", params={"agreement": evil})
        assert r.status_code in (403, 422)
        r = w.call(user, "POST", "/api/v1/projects", json={"id": evil, "name": "n", "partner": "uk"})
        assert r.status_code == 422
    assert len(w.broker.store.list_jobs(limit=1000)) == before
    with w.broker.store.transaction() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == before


def test_preview_stores_nothing(world: World) -> None:
    w = world
    doc: dict[str, Any] = w.ok("alice", "POST", "/api/v1/jobs/preview",
                               json={"command": ["true"], "project": "climate-a", "gpus": 2})
    assert doc["site"] == "bristol" and doc["cost_units"] == 0.0 and doc["gate"]["action"] == "go"
    assert w.broker.store.list_jobs(limit=10) == []


def test_an_allocation_needs_an_agreement_that_covers_the_projects_theme(world: World) -> None:
    w = world
    w.ok("alice", "POST", "/api/v1/projects", json={"id": "safety-b", "name": "S", "partner": "uk",
                                                     "theme": "ai-safety"})
    r = w.call("alice", "POST", "/api/v1/projects/safety-b/allocations",
               json={"agreement": "uk-fr", "host": "fr", "units": 5, "start": "2026-11", "end": "2026-12"})
    assert r.status_code == 422
    problem = r.json()["problems"][0]
    assert (problem["field"], problem["got"], problem["allowed"]) == ("agreement", "ai-safety", "climate")
