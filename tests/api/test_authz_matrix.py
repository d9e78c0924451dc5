"""The authorisation matrix: every route of the app that needs a token × every person of
the world (researchers of the project, of another project and of the other partner, the
site operator, the programme officers of the host and of the other partner, an auditor,
the admin) × a token that lacks the scope the route needs.

Each :class:`Case` is keyed by the route's method and path template exactly as the app
declares them (``test_authz_routes.py`` fails for a route that is in neither
:data:`MATRIX` nor its public list). For each case: without a token, 401; everyone not
allowed, 403; each allowed person with a token lacking the needed scope, 403; each
allowed person, 2xx. Refusals come first and changes that cannot be repeated get a
fresh object per caller, so no check depends on the order the cases run in. Refusals
of something the caller may not see read the same whether or not it exists
(:data:`HIDDEN`)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import FakeClock
from accord.adapters.sql.agent_store import SqlAgents
from accord.adapters.sql.campaign_store import SqlCampaigns
from accord.adapters.sql.file_store import SqlFiles
from accord.domain.agent import attest
from accord.domain.agent.protocol import CheckedReport, Order, OrderKind, Report, order_id
from accord.domain.campaigns.campaign import CollectedLog
from accord.domain.jobs.files import OutputFile
from accord.domain.jobs.site import RemoteState
from accord.domain.ledger.usage import UsageRecord
from tests.api.access_world import ALL_SCOPES, MONTH0, MONTH1, T0, World, make_world

# alice: researcher (uk, Bristol), PI of climate-a (the project of the jobs, allocation and
# campaigns below); bob: researcher of the same partner, PI of another project (climate-b);
# claire: researcher of the other partner (fr), PI of fr-proj; opfr: operator of site paris
# (fr); pofr: programme officer of fr, the host of climate-a's allocation; pouk: programme
# officer of uk; audfr: auditor of fr; root: admin (enrolled at Bristol, so also a uk researcher).
USERS = ("alice", "bob", "claire", "opfr", "pofr", "pouk", "audfr", "root")
EVERYONE = frozenset(USERS)
UK_PEOPLE = frozenset({"alice", "bob", "pouk", "root"})      # affiliated with uk, or its officer
FR_PEOPLE = frozenset({"claire", "opfr", "pofr", "audfr"})
UF_BOOKS = frozenset({"pofr", "pouk", "audfr", "root"})      # may read agreement uk-fr's books
NO_SUCH = {"job": "jnosuchjob0000", "entry": "usage:nosuch:1", "token": "0123456789abcdef",
           "alloc": "alnosuchalloc00000", "project": "no-such-project", "user": "nobody",
           "camp": "no-such-campaign", "sha": "0" * 64}

Names = dict[str, str]
Fresh = Callable[[World], Names]


@dataclass(frozen=True)
class Case:
    """Who may call ``method route`` (requested as ``path``, whose ``{names}`` are the
    world's ids, the fresh object's and ``{user}``, the caller)."""

    method: str
    route: str                       # the path template, exactly as the app declares it
    allowed: frozenset[str]
    path: str = ""                   # default: the route (its {names} filled from the world)
    body: Any = None                 # JSON body (its strings filled like the path)
    lacks: tuple[str, ...] = ()      # a token without these scopes (nor admin) is refused
    scoped: frozenset[str] | None = None   # who needs the scope (default: everyone allowed)
    fresh: Fresh | None = None       # a new object per caller (and one for all refusals)
    label: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.route

    @property
    def id(self) -> str:
        return f"{self.method} {self.path or self.route}" + (f" ({self.label})" if self.label else "")


# ------------------------------------------------------------------ fresh objects
_serial = itertools.count()


def fresh_job(user: str, project: str, site: str) -> Fresh:
    """A job of ``user`` placed (and running) at ``site``."""
    def make(w: World) -> Names:
        job = w.submit(user, project=project, site=site)["id"]
        w.broker.step()
        assert w.job(job)["site"] == site, w.job(job)
        return {"job": job}
    return make


def fresh_token(w: World) -> Names:
    """A token of alice's."""
    t = w.ok("admin", "POST", "/api/v1/tokens", json={"name": f"spare-{next(_serial)}",
                                                     "scopes": ["jobs:read"], "for_user": "alice"})
    return {"tok": t["id"]}


def fresh_allocation(user: str, project: str, host: str) -> Fresh:
    """A pending allocation of ``project`` (applied for by its PI ``user``) from ``host``."""
    def make(w: World) -> Names:
        a = w.ok(user, "POST", f"/api/v1/projects/{project}/allocations",
                 json={"agreement": "uk-fr", "host": host, "units": 1, "start": MONTH0, "end": MONTH1})
        return {"alloc": a["id"]}
    return make


def fresh_member(pi: str, project: str, user: str) -> Fresh:
    """``user`` (again) a member of ``project``, to be removed."""
    def make(w: World) -> Names:
        w.ok(pi, "POST", f"/api/v1/projects/{project}/members", json={"user": user})
        return {}
    return make


def fresh_approved(user: str, project: str, host: str, officer: str) -> Fresh:
    """An approved allocation of ``project`` from ``host`` (to revoke or increase)."""
    def make(w: World) -> Names:
        names = fresh_allocation(user, project, host)(w)
        w.ok(officer, "POST", f"/api/v1/allocations/{names['alloc']}/decision", json=DECIDE)
        return names
    return make


def campaign_doc(cid: str, project: str = "climate-a", partners: tuple[str, ...] = ("uk", "fr"),
                 sites: tuple[str, ...] = ("paris",), **results: Any) -> dict[str, Any]:
    """A one-pair campaign (a shipped task, a model that is never reached)."""
    return {"id": cid, "project": project, "partners": list(partners), "sites": list(sites),
            "tasks": [{"name": "arithmetic", "version": 1}],
            "models": [{"name": "calc", "base_url": "http://127.0.0.1:9/v1", "model": "calc"}],
            "results": results or {"embargo": "approval"}}


def fresh_campaign(w: World) -> Names:
    """A uk-fr campaign of climate-a whose results wait for both partners' approval."""
    cid = f"fresh-{next(_serial)}"
    w.ok("admin", "POST", "/api/v1/campaigns", json=campaign_doc(cid))
    return {"camp": cid}


# ------------------------------------------------------------------ the world
@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("matrix")) as world:
        build(world)
        yield world


def build(w: World) -> None:
    """Projects (fr-asks: for allocations from uk, which let uk's officer see it),
    allocations, jobs (one held for compliance review), ledger entries both
    ways under uk-fr, campaigns and a collected log; their ids in ``w.ids``."""
    w.enrol("zed", "bristol")
    for user, pid, partner in (("alice", "climate-a", "uk"), ("bob", "climate-b", "uk"),
                               ("claire", "fr-proj", "fr"), ("claire", "fr-asks", "fr")):
        w.ok(user, "POST", "/api/v1/projects", json={"id": pid, "name": pid, "partner": partner,
                                                     "theme": "climate"})
    a1 = w.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
              json={"agreement": "uk-fr", "host": "fr", "units": 1000, "start": MONTH0, "end": MONTH1})
    w.ok("pofr", "POST", f"/api/v1/allocations/{a1['id']}/decision", json={"approve": True})
    a2 = w.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
              json={"agreement": "uk-fr", "host": "fr", "units": 5, "start": MONTH1, "end": MONTH1})
    w.ids.update(a1=a1["id"], a2=a2["id"],
                 J_A=w.submit("alice", project="climate-a", site="paris")["id"],
                 J_B=w.submit("bob", project="climate-b")["id"],
                 J_C=w.submit("claire", project="fr-proj")["id"])
    w.broker.step()
    assert w.job(w.ids["J_A"])["site"] == "paris"
    assert w.job(w.ids["J_B"])["site"] == "bristol"
    assert w.job(w.ids["J_C"])["site"] == "paris"
    big = w.submit("alice", project="climate-a", site="paris", gpus=4, time_limit="26h")   # 104 GPU-h
    w.broker.step()
    assert w.job(big["id"])["state"] == "held"                # rule foreign-training: paris decides
    w.ids["BIG"] = big["id"]

    # usage posted to the ledger: climate-a (uk) at paris (host fr), fr-proj (fr) at bristol (host uk)
    start = T0 - timedelta(hours=6)
    for rid, site, pool, model, host, requester, project in (
            ("paris:m1", "paris", "a100", "A100", "fr", "uk", "climate-a"),
            ("bristol:m1", "bristol", "h100", "H100", "uk", "fr", "fr-proj")):
        w.store.add_usage(UsageRecord(rid, f"j-{rid}", site, pool, model, host, requester, "uk-fr", project,
                                      start, start + timedelta(hours=2), 2, 4 * 3600.0, "completed", 0))
    w.ledger.post_pending()
    entries = w.ok("admin", "GET", "/api/v1/ledger/entries", params={"agreement": "uk-fr"})["entries"]
    w.ids["E_FR"] = next(e["id"] for e in entries if e["host"] == "fr")     # fr's account pays
    w.ids["E_UK"] = next(e["id"] for e in entries if e["host"] == "uk")

    w.ids["ATT"] = signed_usage(w)
    job_output(w, w.ids["J_A"])

    w.ids["T_ALICE"] = fresh_token(w)["tok"]
    w.ids["PEM"] = w.client.get("/api/v1/ledger/public-key").text

    # campaigns: seen by uk people only, by fr people only (no embargo), by both (results
    # shared with uk only, no embargo; one log collected), and one whose results wait for approvals
    w.ok("alice", "POST", "/api/v1/campaigns",
         json=campaign_doc("c-uk", partners=("uk",), sites=("bristol",)))
    w.ok("claire", "POST", "/api/v1/campaigns", json=campaign_doc("c-fr", "fr-proj", ("fr",), embargo="none"))
    w.ok("alice", "POST", "/api/v1/campaigns",
         json=campaign_doc("c-joint", embargo="none", shares=[{"partner": "uk"}]))
    w.ok("alice", "POST", "/api/v1/campaigns", json=campaign_doc("c-embargo"))
    run = w.ok("alice", "POST", "/api/v1/campaigns/c-joint/submit")["runs"][0]
    w.broker.cancel(run["job"], "the matrix runs no evaluation")
    data = json.dumps({"eval": "a log"}).encode()
    sha = hashlib.sha256(data).hexdigest()
    store = SqlCampaigns(w.store)
    store.add_log(CollectedLog("c-joint", run["task"], run["model"], run["job"], "log.json", sha, len(data),
                               json.dumps({"status": "success", "scores": []}), T0, data))
    store.mark_collected("c-joint", run["task"], run["model"], T0)
    w.ids["LOG"] = sha


def signed_usage(w: World) -> str:
    """A usage signed by a site's agent key, as the hub keeps it (paris runs no agent in this
    world: the store takes it as it would from one); its digest."""
    start = T0 - timedelta(hours=3)
    u = attest.Usage("paris", "j-att.1", "j-att", "9", "paris", "completed", start,
                     start + timedelta(hours=1), 1, 3600.0, 0, None)
    signed = attest.sign(u, bytes(range(32)))
    store = SqlAgents(w.store)
    kind = OrderKind.DISPATCH
    store.add_order(Order(order_id(u.ref, kind), "paris", kind, u.ref, u.job_id, start))
    report = Report(u.ref, RemoteState.COMPLETED, u.local_id, u.start, u.end, 0, 1, 3600.0, usage=signed)
    digest = attest.digest(signed.body)
    store.report("paris", [CheckedReport(report, digest)], T0)
    return digest


def job_output(w: World, job_id: str) -> None:
    """An output file of the job at the hub, as a site's agent would send it home."""
    data = b"{}"
    digest = hashlib.sha256(data).hexdigest()
    o = OutputFile("paris", f"{job_id}.1", job_id, "results.json", digest, len(data))
    SqlFiles(w.store).add_output(o, data, (10, 1000), T0)


def fill(text: str, names: Names) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], text)


def fill_body(body: Any, names: Names) -> Any:
    if isinstance(body, str):
        return fill(body, names)
    if isinstance(body, dict):
        return {k: fill_body(v, names) for k, v in body.items()}
    if isinstance(body, list):
        return [fill_body(v, names) for v in body]
    return body


def narrowed(w: World, user: str, lacks: tuple[str, ...]) -> dict[str, str]:
    """The header of a token of ``user`` with every scope but ``lacks`` (and admin)."""
    key = f"{user} without {','.join(lacks)}"
    if key not in w.tokens:
        scopes = [s for s in ALL_SCOPES if s not in {*lacks, "admin"}]
        w.tokens[key] = w.ok("admin", "POST", "/api/v1/tokens",
                             json={"name": key, "scopes": scopes, "for_user": user})["token"]
    return {"Authorization": f"Bearer {w.tokens[key]}"}


# ------------------------------------------------------------------ the matrix
JOB = {"command": ["sleep", "30"], "project": "climate-a", "gpus": 1, "time_limit": 3600}
DECIDE = {"approve": True, "reason": "matrix"}
REFUND = {"kind": "refund", "units": "0.1", "reason": "node fault"}
ALLOCATION = {"agreement": "uk-fr", "host": "fr", "units": 1, "start": MONTH0, "end": MONTH1}
AUDITORS = ("audit:read", "ledger:read")     # either lets an auditor (or the admin) verify the books

MATRIX: list[Case] = [
    # ---------------------------------------------------------------- anyone with a token
    Case("GET", "/api/v1/federation", EVERYONE),
    Case("GET", "/api/v1/federation/load", EVERYONE),
    Case("GET", "/api/v1/me", EVERYONE),
    Case("GET", "/api/v1/me/identities", EVERYONE),
    # one's own notification settings and deliveries only: the path names no one else
    Case("GET", "/api/v1/me/notifications", EVERYONE),
    Case("PUT", "/api/v1/me/notifications", EVERYONE, body={"events": ["job.ended", "job.failed"]}),
    Case("GET", "/api/v1/me/notifications/deliveries", EVERYONE),
    Case("POST", "/api/v1/statements/verify", EVERYONE,     # reads nothing stored
         body={"statement": {"period": MONTH0}, "public_key_pem": "{PEM}"}),
    # lists: everyone, each seeing only what they may (test_lists_show_only_what_each_may_see)
    Case("GET", "/api/v1/jobs", EVERYONE),
    Case("GET", "/api/v1/projects", EVERYONE),
    Case("GET", "/api/v1/allocations", EVERYONE),
    Case("GET", "/api/v1/campaigns", EVERYONE, lacks=("jobs:read",)),
    Case("GET", "/api/v1/emissions", EVERYONE, lacks=("jobs:read",)),
    Case("GET", "/api/v1/emissions/savings", EVERYONE),

    # ---------------------------------------------------------------- jobs
    Case("POST", "/api/v1/jobs", frozenset({"alice"}), body=JOB, lacks=("jobs:write",),
         label="members of its project only, not even the admin user"),
    Case("POST", "/api/v1/jobs/preview", frozenset({"alice"}), body=JOB, lacks=("jobs:write",)),
    Case("GET", "/api/v1/jobs/{job_id}", EVERYONE - {"bob", "claire"}, "/api/v1/jobs/{J_A}",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}", frozenset({"bob", "pouk", "root"}), "/api/v1/jobs/{J_B}",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}", FR_PEOPLE | {"root"}, "/api/v1/jobs/{J_C}", lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}/logs", frozenset({"alice", "root"}), "/api/v1/jobs/{J_A}/logs",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}/logs", frozenset({"claire", "root"}), "/api/v1/jobs/{J_C}/logs",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}/outputs", frozenset({"alice", "root"}), "/api/v1/jobs/{J_A}/outputs",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/jobs/{job_id}/outputs/{name:path}", frozenset({"alice", "root"}),
         "/api/v1/jobs/{J_A}/outputs/results.json", lacks=("jobs:read",)),
    Case("POST", "/api/v1/files", EVERYONE, body={"an": "input file"}, lacks=("jobs:write",),
         label="any signed-in person may upload an input (it is kept by its SHA-256; a job names it)"),
    Case("GET", "/api/v1/jobs/{job_id}/footprint", EVERYONE - {"bob", "claire"},
         "/api/v1/jobs/{J_A}/footprint", lacks=("jobs:read",)),
    Case("POST", "/api/v1/jobs/{job_id}/cancel", frozenset({"alice", "opfr", "root"}),
         "/api/v1/jobs/{job}/cancel", lacks=("jobs:write",), fresh=fresh_job("alice", "climate-a", "paris"),
         label="owner, site operator, admin; not the officers who may read it"),
    Case("POST", "/api/v1/jobs/{job_id}/cancel", frozenset({"bob", "root"}), "/api/v1/jobs/{job}/cancel",
         lacks=("jobs:write",), fresh=fresh_job("bob", "climate-b", "bristol"), label="at bristol"),

    # ---------------------------------------------------------------- ledger
    Case("GET", "/api/v1/ledger/balances", UF_BOOKS, "/api/v1/ledger/balances?agreement=uk-fr",
         lacks=("ledger:read",)),
    Case("GET", "/api/v1/ledger/balances", frozenset({"root"}), lacks=("ledger:read",),
         label="every agreement"),
    Case("GET", "/api/v1/ledger/entries", UF_BOOKS, "/api/v1/ledger/entries?agreement=uk-fr",
         lacks=("ledger:read",)),
    Case("GET", "/api/v1/ledger/entries", frozenset({"bob", "pouk", "root"}),
         "/api/v1/ledger/entries?job={J_B}", lacks=("jobs:read",)),
    Case("GET", "/api/v1/ledger/entries", frozenset({"root"}), lacks=("ledger:read",),
         label="every agreement"),
    # a correction takes units from the host's account: its programme officer or the admin;
    # not the requester's officer, the site operator, an auditor or a researcher, though each
    # holds a token with ledger:write
    Case("POST", "/api/v1/ledger/entries/{entry_id}/corrections", frozenset({"pofr", "root"}),
         "/api/v1/ledger/entries/{E_FR}/corrections", body=REFUND, lacks=("ledger:write",),
         label="host fr"),
    Case("POST", "/api/v1/ledger/entries/{entry_id}/corrections", frozenset({"pouk", "root"}),
         "/api/v1/ledger/entries/{E_UK}/corrections", body=REFUND, lacks=("ledger:write",),
         label="host uk"),
    Case("POST", "/api/v1/ledger/periods/{period}/close", frozenset({"root"}),
         "/api/v1/ledger/periods/2025-01/close", lacks=("ledger:write",)),
    Case("GET", "/api/v1/ledger/verify", frozenset({"audfr", "root"}), lacks=AUDITORS),
    Case("GET", "/api/v1/ledger/reconcile", frozenset({"opfr", "audfr", "root"}),
         f"/api/v1/ledger/reconcile?period={MONTH0}", lacks=AUDITORS),
    Case("GET", "/api/v1/statements/{agreement}/{period}", UF_BOOKS, f"/api/v1/statements/uk-fr/{MONTH0}",
         lacks=("ledger:read",)),
    # a host's signed usage, by the digest a ledger entry names: whoever may verify the whole ledger
    Case("GET", "/api/v1/usage/attestations/{digest}", frozenset({"audfr", "root"}),
         "/api/v1/usage/attestations/{ATT}", lacks=AUDITORS),
    Case("GET", "/api/v1/agreements/{agreement}/quotas", UF_BOOKS, "/api/v1/agreements/uk-fr/quotas",
         lacks=("ledger:read",)),
    Case("GET", "/api/v1/agreements/{agreement}/cosigners", UF_BOOKS, "/api/v1/agreements/uk-fr/cosigners",
         lacks=("ledger:read",)),

    # ---------------------------------------------------------------- tokens
    Case("POST", "/api/v1/tokens", EVERYONE, body={"name": "mine", "scopes": ["jobs:read"]},
         label="for oneself"),
    Case("POST", "/api/v1/tokens", frozenset({"root"}),
         body={"name": "for zed", "scopes": ["jobs:read"], "for_user": "zed"}, lacks=("admin",),
         label="for another user"),
    Case("GET", "/api/v1/tokens", EVERYONE),     # one's own only (test_lists_show_only_what_each_may_see)
    Case("DELETE", "/api/v1/tokens/{token_id}", frozenset({"alice", "root"}), "/api/v1/tokens/{tok}",
         lacks=("admin",), scoped=frozenset({"root"}), fresh=fresh_token, label="alice's"),

    # ---------------------------------------------------------------- users and roles
    Case("POST", "/api/v1/users", frozenset({"root"}),
         body={"id": "new-{user}", "name": "N", "institution": "bristol"}, lacks=("admin",)),
    Case("GET", "/api/v1/users/{user_id}", frozenset({"alice", "root"}), "/api/v1/users/alice",
         lacks=("admin",), scoped=frozenset({"root"})),
    Case("POST", "/api/v1/users/{user_id}/affiliations", frozenset({"root"}),
         "/api/v1/users/zed/affiliations", lacks=("admin",),
         body={"institution": "sorbonne", "kind": "placement", "start": f"{MONTH1}-05",
               "end": f"{MONTH1}-20"}),
    Case("POST", "/api/v1/users/{user_id}/grants", frozenset({"root"}), "/api/v1/users/zed/grants",
         body={"role": "auditor", "scope": "partner", "target": "uk"}, lacks=("admin",)),

    # ---------------------------------------------------------------- projects and allocations
    Case("POST", "/api/v1/projects", UK_PEOPLE,     # affiliated with its home partner (or admin)
         body={"id": "p-{user}", "name": "P", "partner": "uk", "theme": "climate"},
         lacks=("projects:write",)),
    Case("GET", "/api/v1/projects/{project_id}", EVERYONE - {"bob", "claire", "opfr"},
         "/api/v1/projects/climate-a", lacks=("projects:read",)),
    Case("GET", "/api/v1/projects/{project_id}", frozenset({"bob", "pouk", "root"}),
         "/api/v1/projects/climate-b", lacks=("projects:read",)),
    Case("GET", "/api/v1/projects/{project_id}", frozenset({"claire", "pofr", "audfr", "root"}),
         "/api/v1/projects/fr-proj", lacks=("projects:read",)),
    Case("POST", "/api/v1/projects/{project_id}/members", frozenset({"alice", "root"}),
         "/api/v1/projects/climate-a/members", body={"user": "zed"}, lacks=("projects:write",)),
    Case("POST", "/api/v1/projects/{project_id}/allocations", frozenset({"alice", "root"}),
         "/api/v1/projects/climate-a/allocations", body=ALLOCATION, lacks=("projects:write",)),
    Case("DELETE", "/api/v1/projects/{project_id}/members/{user_id}", frozenset({"alice", "root"}),
         "/api/v1/projects/climate-a/members/zed", lacks=("projects:write",),
         fresh=fresh_member("alice", "climate-a", "zed")),
    # decided by a programme officer of the granting (host) partner: not the admin
    Case("POST", "/api/v1/allocations/{allocation_id}/decision", frozenset({"pofr"}),
         "/api/v1/allocations/{alloc}/decision", body=DECIDE, lacks=("projects:write",),
         fresh=fresh_allocation("alice", "climate-a", "fr"), label="granted by fr"),
    Case("POST", "/api/v1/allocations/{allocation_id}/decision", frozenset({"pouk"}),
         "/api/v1/allocations/{alloc}/decision", body=DECIDE, lacks=("projects:write",),
         fresh=fresh_allocation("claire", "fr-asks", "uk"), label="granted by uk"),

    # revoked or increased by a programme officer of the granting partner, like a decision
    Case("POST", "/api/v1/allocations/{allocation_id}/revoke", frozenset({"pofr"}),
         "/api/v1/allocations/{alloc}/revoke", body={"reason": "matrix"}, lacks=("projects:write",),
         fresh=fresh_approved("alice", "climate-a", "fr", "pofr")),
    Case("POST", "/api/v1/allocations/{allocation_id}/increase", frozenset({"pofr"}),
         "/api/v1/allocations/{alloc}/increase", body={"units": 1}, lacks=("projects:write",),
         fresh=fresh_approved("alice", "climate-a", "fr", "pofr")),
    # a site's enforcement state: its operators, the host partner's officers and auditors
    Case("GET", "/api/v1/sites/{site}/enforcement", frozenset({"opfr", "pofr", "audfr", "root"}),
         "/api/v1/sites/paris/enforcement", lacks=("projects:read",)),

    # ---------------------------------------------------------------- compliance and audit
    Case("GET", "/api/v1/compliance", frozenset({"opfr", "pofr", "pouk", "audfr", "root"}),
         lacks=("compliance",)),
    # only the operator of the site the held run would use decides (refusing: no job runs)
    Case("POST", "/api/v1/compliance/{job_id}/decision", frozenset({"opfr"}),
         "/api/v1/compliance/{BIG}/decision", body={"approve": False, "reason": "matrix"},
         lacks=("compliance",)),
    # the audit log needs audit:read: a token with ledger:read (and every other scope) is refused
    Case("GET", "/api/v1/audit", frozenset({"audfr", "root"}), lacks=("audit:read",)),

    # ---------------------------------------------------------------- campaigns
    # create and submit need jobs:write; reading a campaign, its results and logs jobs:read (its
    # runs are jobs); approving release is an officer's decision, like an allocation's: projects:write
    Case("POST", "/api/v1/campaigns", frozenset({"alice", "root"}),     # members of its project, admin
         body=campaign_doc("new-{user}"), lacks=("jobs:write",)),
    Case("GET", "/api/v1/campaigns/{campaign_id}", UK_PEOPLE, "/api/v1/campaigns/c-uk", label="uk only",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/campaigns/{campaign_id}", FR_PEOPLE | {"root"}, "/api/v1/campaigns/c-fr",
         label="fr only", lacks=("jobs:read",)),
    Case("GET", "/api/v1/campaigns/{campaign_id}", EVERYONE, "/api/v1/campaigns/c-joint", label="uk and fr",
         lacks=("jobs:read",)),
    # every uk and fr person sees it; only members of the project submit (not the admin)
    Case("POST", "/api/v1/campaigns/{campaign_id}/submit", frozenset({"alice"}),
         "/api/v1/campaigns/{camp}/submit", lacks=("jobs:write",), fresh=fresh_campaign),
    # results shared with uk only: fr people (its officer, auditor and operator too) are refused;
    # root reads them as a researcher at Bristol: being admin gives no results (c-fr)
    Case("GET", "/api/v1/campaigns/{campaign_id}/results", UK_PEOPLE, "/api/v1/campaigns/c-joint/results",
         lacks=("jobs:read",)),
    Case("GET", "/api/v1/campaigns/{campaign_id}/results", FR_PEOPLE, "/api/v1/campaigns/c-fr/results",
         label="the admin is no partner", lacks=("jobs:read",)),
    Case("GET", "/api/v1/campaigns/{campaign_id}/results", frozenset(), "/api/v1/campaigns/c-embargo/results",
         label="embargoed until both partners approve"),
    Case("GET", "/api/v1/campaigns/{campaign_id}/logs/{sha256}", UK_PEOPLE,
         "/api/v1/campaigns/c-joint/logs/{LOG}", lacks=("jobs:read",)),
    Case("POST", "/api/v1/campaigns/{campaign_id}/release", frozenset({"pofr"}),
         "/api/v1/campaigns/{camp}/release", body={"partner": "fr"}, fresh=fresh_campaign, label="for fr",
         lacks=("projects:write",)),
    Case("POST", "/api/v1/campaigns/{campaign_id}/release", frozenset({"pouk"}),
         "/api/v1/campaigns/{camp}/release", body={"partner": "uk"}, fresh=fresh_campaign, label="for uk",
         lacks=("projects:write",)),
    Case("POST", "/api/v1/campaigns/{campaign_id}/release", frozenset(), "/api/v1/campaigns/c-joint/release",
         body={"partner": "uk"}, label="no embargo to lift"),
]


def job_ids(w: World) -> set[str]:
    return {j.id for j in w.broker.store.list_jobs(limit=1000)}


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_matrix(w: World, case: Case) -> None:
    before = job_ids(w)
    try:
        check(w, case)
    finally:       # jobs the case made must not run on (or hold GPUs) for the other cases
        for job in job_ids(w) - before:
            if not w.broker.store.get_job(job).state.is_final:
                w.broker.cancel(job, "matrix case over")


def check(w: World, case: Case) -> None:
    def call(user: str, names: Names, headers: dict[str, str] | None = None) -> Any:
        names = {**w.ids, **names, "user": user}
        return w.client.request(case.method, fill(case.path or case.route, names),
                                headers=w.auth(user) if headers is None else headers,
                                json=fill_body(case.body, names))

    def says(r: Any) -> str:
        return f"{r.status_code} {r.text[:160]}"

    shared = case.fresh(w) if case.fresh else {}
    # a client of its own: failed authentications are rate-limited per source
    anonymous = TestClient(w.client.app, raise_server_exceptions=False, client=(f"anon-{next(_serial)}", 1))
    names = {**w.ids, **shared, "user": "nobody"}
    r = anonymous.request(case.method, fill(case.path or case.route, names), json=fill_body(case.body, names))
    wrong = [] if r.status_code == 401 else [f"without a token: {says(r)}"]
    for user in USERS:
        if user not in case.allowed:
            r = call(user, shared)
            if r.status_code != 403:
                wrong.append(f"{user} (may not): {says(r)}")
    if case.lacks:
        for user in sorted(case.allowed if case.scoped is None else case.scoped):
            r = call(user, shared, narrowed(w, user, case.lacks))
            if r.status_code != 403:
                wrong.append(f"{user} with a token without {'/'.join(case.lacks)}: {says(r)}")
    for user in sorted(case.allowed):
        r = call(user, case.fresh(w) if case.fresh else shared)
        if r.status_code not in (200, 201):
            wrong.append(f"{user} (may): {says(r)}")
    assert not wrong, f"{case.id}:\n" + "\n".join(wrong)


# ------------------------------------------------------------------ refusals that hide
# (caller, method, path, the placeholder that names the object, body): the caller may not
# see the object; the refusal reads the same for a path naming one that does not exist
HIDDEN: list[tuple[str, str, str, str, Any]] = [
    ("bob", "GET", "/api/v1/jobs/{J_A}", "J_A", None),
    ("bob", "GET", "/api/v1/jobs/{J_A}/logs", "J_A", None),
    ("bob", "GET", "/api/v1/jobs/{J_A}/footprint", "J_A", None),
    ("bob", "GET", "/api/v1/jobs/{J_A}/outputs", "J_A", None),
    ("bob", "POST", "/api/v1/jobs/{J_A}/cancel", "J_A", None),
    ("bob", "GET", "/api/v1/ledger/entries?job={J_A}", "J_A", None),
    ("bob", "POST", "/api/v1/ledger/entries/{E_FR}/corrections", "E_FR", REFUND),
    ("claire", "POST", "/api/v1/ledger/entries/{E_UK}/corrections", "E_UK", REFUND),
    ("bob", "DELETE", "/api/v1/tokens/{T_ALICE}", "T_ALICE", None),
    ("bob", "GET", "/api/v1/users/{U}", "U", None),
    ("bob", "GET", "/api/v1/projects/{P}", "P", None),
    ("bob", "POST", "/api/v1/projects/{P}/members", "P", {"user": "zed"}),
    ("bob", "DELETE", "/api/v1/projects/{P}/members/zed", "P", None),
    ("bob", "POST", "/api/v1/projects/{P}/allocations", "P", ALLOCATION),
    ("bob", "POST", "/api/v1/allocations/{a2}/decision", "a2", DECIDE),
    ("root", "POST", "/api/v1/allocations/{a2}/decision", "a2", DECIDE),
    ("pofr", "POST", "/api/v1/compliance/{BIG}/decision", "BIG", DECIDE),
    ("claire", "GET", "/api/v1/campaigns/{C}", "C", None),
    ("claire", "POST", "/api/v1/campaigns/{C}/submit", "C", None),
    ("claire", "GET", "/api/v1/campaigns/{C}/results", "C", None),
    ("claire", "GET", "/api/v1/campaigns/{C}/logs/{LOG}", "C", None),
    ("claire", "POST", "/api/v1/campaigns/{C}/release", "C", {"partner": "uk"}),
    ("claire", "GET", "/api/v1/campaigns/c-joint/logs/{LOG}", "LOG", None),
    ("pofr", "GET", "/api/v1/usage/attestations/{ATT}", "ATT", None),
]
MISSING = {"J_A": NO_SUCH["job"], "E_FR": NO_SUCH["entry"], "E_UK": NO_SUCH["entry"],
           "T_ALICE": NO_SUCH["token"], "U": NO_SUCH["user"], "P": NO_SUCH["project"],
           "a2": NO_SUCH["alloc"], "BIG": NO_SUCH["job"], "C": NO_SUCH["camp"], "LOG": NO_SUCH["sha"],
           "ATT": NO_SUCH["sha"]}


@pytest.mark.parametrize(("user", "method", "path", "name", "body"), HIDDEN,
                         ids=[f"{h[0]} {h[1]} {h[2]}" for h in HIDDEN])
def test_refusals_do_not_tell_whether_the_object_exists(w: World, user: str, method: str, path: str,
                                                         name: str, body: Any) -> None:
    known = {**w.ids, "U": "alice", "P": "climate-a", "C": "c-uk"}
    real, missing = known[name], MISSING[name]
    a = w.call(user, method, fill(path, known), json=body)
    b = w.call(user, method, fill(path, {**known, name: missing}), json=body)
    assert a.status_code == b.status_code == 403, (a.text, b.text)
    assert a.json()["detail"].replace(real, "<id>") == b.json()["detail"].replace(missing, "<id>")


def test_the_admin_may_know_what_does_not_exist(w: World) -> None:
    for path in ("/api/v1/jobs/jnosuchjob0000", "/api/v1/users/nobody", "/api/v1/projects/no-such-project"):
        assert w.call("root", "GET", path).status_code in (403, 404)


# ------------------------------------------------------------------ lists
def test_lists_show_only_what_each_may_see(w: World) -> None:
    def seen(user: str, path: str, key: str, known: dict[str, str],
             headers: dict[str, str] | None = None) -> set[str]:
        r = w.client.get(path, headers=headers or w.auth(user))
        assert r.status_code == 200, r.text
        ids = {x["id"] for x in r.json()[key]}
        return {k for k, v in known.items() if v in ids}

    jobs = {k: w.ids[k] for k in ("J_A", "J_B", "J_C", "BIG")}
    expect_jobs = {"alice": {"J_A", "BIG"}, "bob": {"J_B"}, "claire": {"J_C"}, "opfr": {"J_A", "J_C"},
                   "pofr": {"J_A", "J_C"}, "pouk": {"J_A", "J_B", "BIG"}, "audfr": {"J_A", "J_C"},
                   "root": set(jobs)}
    for user, expected in expect_jobs.items():
        assert seen(user, "/api/v1/jobs", "jobs", jobs) == expected, user

    projects = {x: x for x in ("climate-a", "climate-b", "fr-proj")}
    expect_projects = {"alice": {"climate-a"}, "bob": {"climate-b"}, "claire": {"fr-proj"}, "opfr": set(),
                       "pofr": {"climate-a", "fr-proj"}, "pouk": {"climate-a", "climate-b"},
                       "audfr": {"climate-a", "fr-proj"}, "root": set(projects)}
    for user, expected in expect_projects.items():
        assert seen(user, "/api/v1/projects", "projects", projects) == expected, user

    allocations = {k: w.ids[k] for k in ("a1", "a2")}
    for user in USERS:
        expected = set() if user in ("bob", "claire", "opfr") else {"a1", "a2"}
        assert seen(user, "/api/v1/allocations", "allocations", allocations) == expected, user

    campaigns = {c: c for c in ("c-uk", "c-fr", "c-joint", "c-embargo")}
    for user in USERS:
        expected = {"c-joint", "c-embargo"} | ({"c-uk"} if user in UK_PEOPLE else set()) \
            | ({"c-fr"} if user in FR_PEOPLE | {"root"} else set())
        assert seen(user, "/api/v1/campaigns", "campaigns", campaigns) == expected, user

    for user in USERS:
        mine = w.ok(user, "GET", "/api/v1/tokens")["tokens"]
        assert mine and {t["user"] for t in mine} == {user}, user

    # usage records each may count (cancelled jobs of the matrix may add some: count them too)
    counts: dict[str, Callable[[UsageRecord], bool]] = {
        "alice": lambda u: u.project == "climate-a", "bob": lambda u: u.project == "climate-b",
        "claire": lambda u: u.project == "fr-proj", "opfr": lambda u: u.site == "paris",
        "pofr": lambda u: "fr" in (u.host_partner, u.requester_partner),
        "audfr": lambda u: "fr" in (u.host_partner, u.requester_partner),
        "pouk": lambda u: "uk" in (u.host_partner, u.requester_partner), "root": lambda u: True}
    usage = w.store.usage()
    assert {u.project for u in usage} >= {"climate-a", "fr-proj"}
    for user, counted in counts.items():
        total = w.ok(user, "GET", "/api/v1/emissions")["total"]["jobs"]
        assert total == sum(1 for u in usage if counted(u)), user


def test_narrowed_tokens_list_nothing_they_lack_the_scope_for(w: World) -> None:
    """A token narrows whoever uses it, the admin included: its lists hold nothing the
    scope it lacks would show."""
    def listed(user: str, path: str, key: str, lacks: str) -> list[Any]:
        r = w.client.get(path, headers=narrowed(w, user, (lacks,)))
        assert r.status_code in (200, 403), r.text
        return list(r.json()[key]) if r.status_code == 200 else []

    for user in ("alice", "pouk", "root"):
        assert listed(user, "/api/v1/jobs", "jobs", "jobs:read") == [], user
        assert listed(user, "/api/v1/projects", "projects", "projects:read") == [], user
    for user in ("alice", "pofr", "audfr", "root"):
        assert listed(user, "/api/v1/allocations", "allocations", "projects:read") == [], user


def test_the_world_keeps_its_own_time(w: World) -> None:
    """Nothing here reads the machine's clock: every part of the app shares the world's
    fake one, inside the agreement and the allocations the matrix uses, whatever today is."""
    assert isinstance(w.clock, FakeClock) and w.clock.now() == T0
    assert w.broker.clock is w.clock and w.access.clock is w.clock and w.ledger.clock is w.clock
    assert w.broker.federation.agreement("uk-fr").in_force(T0.date())
    a1 = next(a for a in w.ok("alice", "GET", "/api/v1/allocations")["allocations"] if a["id"] == w.ids["a1"])
    assert (a1["state"], a1["start"], a1["end"]) == ("approved", MONTH0, MONTH1)
