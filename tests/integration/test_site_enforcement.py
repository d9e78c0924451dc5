"""The site enforces the agreement, against real Slurm (``docs/design/site-enforcement.md``).

A hub over HTTPS with the two testbed clusters as agent sites; each agent runs with site
enforcement (``--identity create:PREFIX``, a sync every 2 s). An allocation of a few
GPU-minutes becomes a Slurm account tree with ``GrpTRESMins``; Accord's jobs run as the
visitor's local user under the allocation's account; a job that would exceed the allocation,
submitted with plain ``sbatch`` by that user, is held by Slurm itself; a revoked allocation
takes no new job; hand-made changes are put back; two visitors of different partners get
different users who cannot read each other's job directories; bad input is reported at the
hub; an agent killed with SIGKILL in the middle of a sync converges at the next.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent_world import SITES, AgentProcess, TlsHub, agent_hub
from tests.integration.slurm_testbed import SERIAL, cluster_settings

pytestmark = SERIAL
PREFIX = {"jeanzay": "jz-", "isambard": "is-"}
INSTITUTIONS = """
[[institutions]]
id = "turing"
name = "The Alan Turing Institute"
partner = "uk"
sector = "academia"
[[institutions]]
id = "genci"
name = "GENCI"
partner = "fr"
sector = "academia"
"""
FINAL = ("completed", "failed", "cancelled", "timed_out")


@dataclass
class World:
    hub: TlsHub
    agents: dict[str, AgentProcess]
    tokens: dict[str, str]

    def client(self, user: str | None = None) -> httpx.Client:
        c = self.hub.client()
        if user is not None:
            c.headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return c


def slurm(site: str, *argv: str, user: str | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """A Slurm command at ``site`` (as root, or as the local ``user``)."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    env = {"SLURM_CONF": cluster_settings(site).slurm_conf, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, env=env, check=check, cwd="/tmp")


def associations(site: str) -> list[list[str]]:
    out = slurm(site, "sacctmgr", "-n", "-P", "list", "assoc", f"cluster={site}",
                "format=Account,User,ParentName,GrpTRESMins,GrpSubmitJobs,GrpJobs").stdout
    return [line.split("|") for line in out.splitlines() if line.startswith("acc-")]


def _clean_site(site: str) -> None:
    """Remove every Accord account and the local users the agents made (jobs cancelled first)."""
    for user in _made_users():
        slurm(site, "scancel", "-u", user, check=False)
    time.sleep(1)
    accounts = sorted({a[0] for a in associations(site)}, key=lambda a: (a.count("-"), a), reverse=True)
    for acct in accounts:
        slurm(site, "sacctmgr", "-i", "remove", "user", "where", f"account={acct}", f"cluster={site}",
              check=False)
    for acct in sorted(accounts, key=lambda a: 0 if a.startswith("acc-al") else 1 if "-pj-" in a else 2):
        slurm(site, "sacctmgr", "-i", "remove", "account", acct, f"cluster={site}", check=False)


def _made_users() -> list[str]:
    out = subprocess.run(["getent", "passwd"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0] for line in out.splitlines() if ":accord visitor " in line]


def _cleanup() -> None:
    for site in SITES:
        _clean_site(site)
    for user in _made_users():
        subprocess.run(["userdel", user], capture_output=True, check=False)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    for site in SITES:
        cluster_settings(site)   # skips when the testbed is down
    _cleanup()
    base = Path(tempfile.mkdtemp(prefix="accord-enforce-"))
    base.chmod(0o711)   # visitors traverse to their job directories
    _, tls, hub = agent_hub(base, extra=INSTITUTIONS)
    agents = {s: _agent(hub.url, s, base, tls.ca) for s in SITES}
    try:
        for a in agents.values():
            a.start()
        world = World(hub, agents, {})
        _people(world)
        yield world
    finally:
        for a in agents.values():
            a.stop()
        hub.stop()
        _cleanup()
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], capture_output=True, check=False)


def _agent(url: str, site: str, base: Path, ca: Path) -> AgentProcess:
    c = cluster_settings(site)
    return AgentProcess(url, site, base / "keys" / site / "site.key", base / f"agent-{site}", ca,
                        backend="slurm",
                        extra=("--cluster", site, "--slurm-conf", c.slurm_conf, "--partition", c.partition,
                               "--account", "accord", "--identity", f"create:{PREFIX[site]}", "--sync", "2"))


def _people(w: World) -> None:
    with w.client() as admin:
        people = (("ada", "turing"), ("odile", "genci"), ("claire", "genci"), ("bad.user", "turing"))
        for user, inst in people:
            ok(admin.post("/api/v1/users", json={"id": user, "name": user, "institution": inst}))
            scopes = ["jobs:read", "jobs:write", "projects:read", "projects:write"]
            body = {"name": "t", "scopes": scopes, "days": 1, "for_user": user}
            t = ok(admin.post("/api/v1/tokens", json=body))
            w.tokens[user] = t["token"]
        for partner in ("uk", "fr"):
            ok(admin.post("/api/v1/users/claire/grants",
                          json={"role": "programme_officer", "scope": "partner", "target": partner}))
    with w.client("ada") as ada:
        ok(ada.post("/api/v1/projects", json={"id": "evals", "name": "Evals", "partner": "uk"}))
        ok(ada.post("/api/v1/projects/evals/members", json={"user": "bad.user"}))
    with w.client("odile") as odile:
        ok(odile.post("/api/v1/projects", json={"id": "climat", "name": "Climat", "partner": "fr"}))


def ok(r: httpx.Response) -> Any:
    assert r.status_code in (200, 201), (r.status_code, r.text)
    return r.json()


def month(offset: int = 0) -> str:
    now = datetime.now(UTC)
    m = now.year * 12 + now.month - 1 + offset
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def allocate(w: World, user: str, project: str, host: str, site: str, units: float) -> str:
    with w.client(user) as c:
        a = ok(c.post(f"/api/v1/projects/{project}/allocations",
                      json={"agreement": "uk-fr", "host": host, "units": units, "start": month(),
                            "end": month(1), "sites": [site]}))
    with w.client("claire") as c:
        ok(c.post(f"/api/v1/allocations/{a['id']}/decision", json={"approve": True, "reason": "ok"}))
    return str(a["id"])


def status(w: World, site: str) -> dict[str, Any]:
    with w.client() as c:
        return dict(ok(c.get(f"/api/v1/sites/{site}/enforcement")))


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def grant_of(w: World, site: str, allocation: str) -> dict[str, Any]:
    return next(a for a in status(w, site)["allocations"] if a["allocation"] == allocation)


def identity_of(w: World, site: str, user: str) -> dict[str, Any]:
    return next((x for x in status(w, site)["identities"] if x["user"] == user), {})


def submit(w: World, user: str, project: str, site: str, gpus: int, command: str, partner: str) -> str:
    doc = {"name": f"{user}-job", "gpus": gpus, "site": site, "partner": partner, "project": project,
           "time_limit": "1m", "command": ["bash", "-c", command]}
    with w.client(user) as c:
        return str(ok(c.post("/api/v1/jobs", json=doc))["id"])


def finished(w: World, job: str, timeout: float = 120) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        with w.client() as c:
            j = dict(ok(c.get(f"/api/v1/jobs/{job}")))
        return j if j["state"] in FINAL else None
    return dict(wait_for(f"job {job} to end", probe, timeout))


def reason_of(site: str, slurm_id: str) -> str:
    out = slurm(site, "squeue", "-h", "-j", slurm_id, "-o", "%T %r", check=False).stdout
    return out.strip()


def test_an_allocation_is_enforced_by_slurm_itself(world: World) -> None:
    w, site = world, "jeanzay"
    alloc = allocate(w, "ada", "evals", "fr", site, 0.1)          # 6 GPU-minutes of H100
    account = f"acc-{alloc}"
    wait_for("the account", lambda: grant_of(w, site, alloc)["status"] == "ok")
    assert identity_of(w, site, "ada")["local_user"] == "jz-ada"
    assert identity_of(w, site, "ada")["state"] == "ok"
    rows = associations(site)
    assert ["acc-pt-uk", "", "root", "", "", ""] in rows
    assert ["acc-pj-evals", "", "acc-pt-uk", "", "", ""] in rows
    assert [account, "", "acc-pj-evals", "gres/gpu=6", "", ""] in rows
    assert [account, "jz-ada", "", "", "", ""] in rows

    # a job inside the allocation runs, as the visitor's user under the allocation's account
    job = finished(w, submit(w, "ada", "evals", site, 1, "id -un; sleep 1", "uk"))
    assert job["state"] == "completed", job
    with w.client() as c:
        assert "jz-ada" in ok(c.get(f"/api/v1/jobs/{job['id']}/logs"))["stdout"]
    def ran_as() -> list[str]:
        out = slurm(site, "sacct", "-M", site, "-X", "-n", "-P", "-a", "-S", "now-1days",
                    "-o", "Comment,Account,User").stdout
        return [line for line in out.splitlines() if line.startswith(f"accord:{job['id']}|")]
    assert wait_for("sacct's record", ran_as, timeout=20) == [f"accord:{job['id']}|{account}|jz-ada"]
    job_dir = w.agents[site].work_dir / "jobs" / site / job["id"]
    assert job_dir.stat().st_mode & 0o777 == 0o700 and job_dir.owner() == "jz-ada"

    # plain sbatch at the site by the mapped user, bypassing Accord: Slurm holds what exceeds it
    big = slurm(site, "sbatch", "--parsable", "-A", account, "--gpus=4", "-t", "10", "-o", "/dev/null",
                "--wrap", "sleep 1", user="jz-ada").stdout.strip().split(";")[0]
    held = wait_for("Slurm's reason", lambda: (r := reason_of(site, big)) and "AssocGrp" in r and r)
    assert held.startswith("PENDING") and "AssocGrpGRES" in held, held
    small = slurm(site, "sbatch", "--parsable", "-A", account, "--gpus=1", "-t", "1", "-o", "/dev/null",
                  "--wrap", "true", user="jz-ada").stdout.strip().split(";")[0]
    wait_for("the small job to run", lambda: reason_of(site, small) in ("", "COMPLETED None", "RUNNING None")
             or "COMPLET" in reason_of(site, small))
    slurm(site, "scancel", big)

    # an increase reaches Slurm within a sync
    with w.client("claire") as c:
        ok(c.post(f"/api/v1/allocations/{alloc}/increase", json={"units": 1, "reason": "more"}))
    wait_for("the new limit",
             lambda: [account, "", "acc-pj-evals", "gres/gpu=66", "", ""] in associations(site))

    # hand-made changes are reported and put back
    slurm(site, "sacctmgr", "-i", "modify", "account", "where", f"name={account}", f"cluster={site}", "set",
          "GrpTRESMins=gres/gpu=99999")
    slurm(site, "sacctmgr", "-i", "add", "user", "root", f"account={account}", f"cluster={site}")
    wait_for("the drift repaired", lambda: [account, "", "acc-pj-evals", "gres/gpu=66", "", ""]
             in associations(site) and not any(r[:2] == [account, "root"] for r in associations(site)))
    wait_for("both drifts at the hub", lambda: any("root" in d for d in _drift_seen(w, site))
             and any("GrpTRESMins" in d for d in _drift_seen(w, site)), timeout=20)

    # revoked: Slurm takes no new job under it, and Accord's fail with the reason
    with w.client("claire") as c:
        ok(c.post(f"/api/v1/allocations/{alloc}/revoke", json={"reason": "agreement suspended"}))
    wait_for("the account closed", lambda: [account, "", "acc-pj-evals", "gres/gpu=66", "0", "0"]
             in associations(site))
    refused = slurm(site, "sbatch", "--parsable", "-A", account, "--gpus=1", "-t", "1", "-o", "/dev/null",
                    "--wrap", "true", user="jz-ada", check=False)
    assert refused.returncode != 0 and "policy" in refused.stderr.lower(), refused
    job = finished(w, submit(w, "ada", "evals", site, 1, "true", "uk"))
    assert job["state"] == "failed" and "allocation" in str(job.get("reason")), job   # the hub refuses first


_DRIFT: list[str] = []


def _drift_seen(w: World, site: str) -> list[str]:
    """Drift lines the hub showed at any time (a repaired drift is gone from the next sync)."""
    _DRIFT.extend(status(w, site)["drift"])
    return list(_DRIFT)


def test_two_visitors_get_their_own_users_and_directories(world: World) -> None:
    w = world
    a_uk = allocate(w, "ada", "evals", "fr", "jeanzay", 2)
    a_fr = allocate(w, "odile", "climat", "uk", "isambard", 2)
    wait_for("both accounts", lambda: grant_of(w, "jeanzay", a_uk)["status"] == "ok"
             and grant_of(w, "isambard", a_fr)["status"] == "ok")
    jobs = {"ada": submit(w, "ada", "evals", "jeanzay", 1, "echo secret > mine.txt; sleep 3", "uk"),
            "odile": submit(w, "odile", "climat", "isambard", 1, "echo secret > mine.txt; sleep 3", "fr")}
    done = {u: finished(w, j) for u, j in jobs.items()}
    assert all(j["state"] == "completed" for j in done.values()), done
    dirs = {"ada": w.agents["jeanzay"].work_dir / "jobs" / "jeanzay" / jobs["ada"],
            "odile": w.agents["isambard"].work_dir / "jobs" / "isambard" / jobs["odile"]}
    users = {"ada": "jz-ada", "odile": "is-odile"}
    listing = subprocess.run(["runuser", "-u", "jz-ada", "--", "ls", str(dirs["ada"].parent)],
                             capture_output=True, text=True, check=False)
    assert listing.returncode != 0, "a visitor lists the site's job directories"
    assert (w.agents["jeanzay"].work_dir / "agent.db").stat().st_mode & 0o777 == 0o600
    assert dirs["ada"].owner() == "jz-ada" and dirs["odile"].owner() == "is-odile"
    for me, other in (("ada", "odile"), ("odile", "ada")):
        peek = subprocess.run(["runuser", "-u", users[me], "--", "cat", str(dirs[other] / "mine.txt")],
                              capture_output=True, text=True, check=False)
        assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek
        own = subprocess.run(["runuser", "-u", users[me], "--", "cat", str(dirs[me] / "mine.txt")],
                             capture_output=True, text=True, check=False)
        assert own.stdout.strip() == "secret", own
    with w.client("ada") as c:
        mine = ok(c.get("/api/v1/me/identities"))["identities"]
    assert {(x["site"], x["local_user"], x["state"]) for x in mine} == {("jeanzay", "jz-ada", "ok")}

    # the host's signed usage names the account and the local user the job ran as
    with w.client() as c:
        entries = wait_for("the ledger entry", lambda: ok(c.get("/api/v1/ledger/entries",
                                                                params={"job": jobs["ada"]}))["entries"])
        signed = ok(c.get(f"/api/v1/usage/attestations/{entries[0]['memo']['usage_attestation']}"))
    body = json.loads(signed["body"])
    assert body["user"] == "jz-ada" and body["account"] == f"acc-{a_uk}", body
    # ... and so does the usage record at the hub, and the job's outcome
    with w.client("ada") as c:
        usage = ok(c.get(f"/api/v1/jobs/{jobs['ada']}/footprint"))
        outcome = ok(c.get(f"/api/v1/jobs/{jobs['ada']}"))["outcome"]
    assert (usage["account"], usage["local_user"]) == (f"acc-{a_uk}", "jz-ada"), usage
    assert (outcome["account"], outcome["local_user"]) == (f"acc-{a_uk}", "jz-ada"), outcome

    # usage back by account: Slurm's own per-account totals agree with Accord's usage
    seen: list[Any] = []

    def checks() -> list[dict[str, Any]] | None:
        with w.client() as c:
            report = ok(c.get("/api/v1/ledger/reconcile", params={"period": month()}))
        seen[:] = [report]
        found = report.get("allocations", [])
        mine = [x for x in found if x["allocation"] in (a_uk, a_fr)]
        return mine if len(mine) == 2 and all(x["ok"] and x["slurm_gpu_seconds"] > 0 for x in mine) else None
    try:
        mine = wait_for("per-allocation totals that agree", checks, timeout=60)
    except AssertionError:
        raise AssertionError(seen) from None
    by = {x["allocation"]: x for x in mine}
    assert by[a_uk]["account"] == f"acc-{a_uk}" and by[a_uk]["users"] == ["jz-ada"], by
    assert by[a_fr]["site"] == "isambard" and by[a_fr]["users"] == ["is-odile"], by
    assert abs(by[a_uk]["usage_gpu_seconds"] - by[a_uk]["slurm_gpu_seconds"]) <= 60, by


def test_a_removed_member_leaves_the_account_and_report_only_drift_stays(world: World) -> None:
    w, site = world, "isambard"
    agent = w.agents[site]
    with w.client("odile") as c:
        ok(c.post("/api/v1/projects", json={"id": "ocean", "name": "Ocean", "partner": "fr"}))
        ok(c.post("/api/v1/projects/ocean/members", json={"user": "claire"}))
    alloc = allocate(w, "odile", "ocean", "uk", site, 1)
    account = f"acc-{alloc}"
    wait_for("claire's association", lambda: [account, "is-claire", "", "", "", ""] in associations(site))

    # removed at the hub: out of the account within a sync, her identity shown as removed
    with w.client("odile") as c:
        assert "claire" not in ok(c.delete("/api/v1/projects/ocean/members/claire"))["members"]
    wait_for("the association gone",
             lambda: not any(r[:2] == [account, "is-claire"] for r in associations(site)))
    assert [account, "is-odile", "", "", "", ""] in associations(site)
    assert identity_of(w, site, "claire").get("state") == "removed"

    # a site that only reports drift: the hand-made limit is shown at the hub and left alone
    agent.stop()
    agent.args += ["--drift", "report"]
    try:
        agent.start()
        slurm(site, "sacctmgr", "-i", "modify", "account", "where", f"name={account}", f"cluster={site}",
              "set", "GrpTRESMins=gres/gpu=777")
        wait_for("the drift reported", lambda: any(account in d and "reported only" in d
                                                   for d in status(w, site)["drift"]), timeout=30)
        time.sleep(5)   # two more syncs: still the hand-made value
        assert [account, "", "acc-pj-ocean", "gres/gpu=777", "", ""] in associations(site)
    finally:
        agent.stop()
        del agent.args[-2:]
        agent.start()
    wait_for("put back once the site repairs again",
             lambda: [account, "", "acc-pj-ocean", "gres/gpu=60", "", ""] in associations(site))


def test_bad_input_is_reported_at_the_hub_and_nothing_half_built(world: World) -> None:
    w, site = world, "jeanzay"
    tiny = allocate(w, "ada", "evals", "fr", site, 0.001)     # 0.06 GPU-minutes
    wait_for("bad.user's identity error", lambda: identity_of(w, site, "bad.user").get("state") == "error")
    err = identity_of(w, site, "bad.user")
    assert "cannot produce a username" in err["reason"] and "jz-bad.user" in err["reason"], err
    g = grant_of(w, site, tiny)
    assert g["status"] == "error" and "less than one GPU-minute" in g["reason"], g
    time.sleep(5)   # two more syncs: still reported, never made
    assert identity_of(w, site, "bad.user")["state"] == "error"
    assert not [r for r in associations(site) if r[0] == f"acc-{tiny}"]


def test_an_agent_killed_in_the_middle_of_a_sync_converges(world: World) -> None:
    w, site = world, "isambard"
    agent = w.agents[site]
    mark = len(agent.output())
    alloc = allocate(w, "odile", "climat", "uk", site, 3)
    wait_for("the sync to start", lambda: f"add account acc-{alloc}" in agent.output()[mark:], timeout=30)
    agent.kill9()
    agent.start()
    wait_for("the account after a restart", lambda: grant_of(w, site, alloc)["status"] == "ok")
    rows = [r for r in associations(site) if r[0] == f"acc-{alloc}"]
    assert sorted(rows) == sorted([[f"acc-{alloc}", "", "acc-pj-climat", "gres/gpu=180", "", ""],
                                   [f"acc-{alloc}", "is-odile", "", "", "", ""]]), rows
    assert json.dumps(status(w, site)["last_sync"]["state"]) == '"ok"'


def test_slurmdbd_down_is_reported_retried_and_then_converges(world: World) -> None:
    w, site = world, "jeanzay"
    with w.client("ada") as c:
        ok(c.post("/api/v1/projects", json={"id": "faults", "name": "Faults", "partner": "uk"}))
    base = Path("/var/lib/accord-slurm")
    stop = ["start-stop-daemon", "--stop", "--quiet", "--pidfile", str(base / "pids" / "slurmdbd.pid"),
            "--exec", "/usr/sbin/slurmdbd", "--retry", "TERM/20/KILL/5"]
    subprocess.run(stop, check=True)
    try:
        alloc = allocate(w, "ada", "faults", "fr", site, 1)
        down = wait_for("the error at the hub", lambda: (g := grant_of(w, site, alloc))["status"] == "error"
                        and g, timeout=90)
        assert "Slurm not reached" in down["reason"] or "sacctmgr" in down["reason"], down
        assert status(w, site)["last_sync"]["state"] == "error"
    finally:
        subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "slurm-testbed.sh"), "start"],
                       capture_output=True, check=True)
    wait_for("the account once slurmdbd is back", lambda: grant_of(w, site, alloc)["status"] == "ok",
             timeout=90)
    rows = [r for r in associations(site) if r[0] == f"acc-{alloc}"]
    assert sorted(rows) == sorted([[f"acc-{alloc}", "", "acc-pj-faults", "gres/gpu=60", "", ""],
                                   [f"acc-{alloc}", "jz-ada", "", "", "", ""]]), rows
    assert status(w, site)["last_sync"]["state"] == "ok"
