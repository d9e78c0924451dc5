"""The routes site agents call, over the whole app (``docs/design/site-agent.md``): the happy
path from an order to a ledger entry that names the host's signed usage, and every forged,
replayed, expired, wrongly signed, foreign, oversized or garbled request refused with its
4xx and a problem document naming what is wrong, audited, and storing nothing.

The hub's time is a :class:`FakeClock`; agents sign by it, as an agent whose clock agrees
with the hub's would. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.request_signing import RequestSigner, new_private_key
from accord.adapters.sql.schema import agent_logs, agent_orders, agent_status, agent_usage, usage_records
from accord.adapters.sql.store import SqlStore
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.access.audit import AuditRecord
from accord.domain.agent import attest
from accord.domain.agent.protocol import LOG_CHUNK_BYTES, Report, SignedUsage, report_doc
from accord.domain.jobs.site import RemoteState
from accord.service.services import Services
from tests.agent_world import agent_federation_text

TOKEN = "agent-api-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PARTNER = {"isambard": "fr", "jeanzay": "uk"}  # who sends a job to each site (it crosses)
AGENT = "/api/agent/v1"


@dataclass
class Hub:
    """The app, its services, database and clock, and each site's private key (plus a stranger's)."""

    client: TestClient
    services: Services
    db: SqlStore
    clock: FakeClock
    keys: dict[str, bytes]

    def signed(
        self,
        site: str,
        method: str,
        path: str,
        doc: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
        key: bytes | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """What an agent sends: the URL, the body and its signed headers."""
        body = raw if raw is not None else b"" if doc is None else json.dumps(doc).encode()
        url = f"http://testserver{path}" + (f"?{urlencode(params)}" if params else "")
        signer = RequestSigner(site, key or self.keys[site])
        headers = signer.headers(method, url, body, now=at or self.clock.now())
        return {
            "method": method,
            "url": url,
            "content": body,
            "headers": {**headers, "Content-Type": "application/json"},
        }

    def agent(self, site: str, method: str, path: str, doc: Any = None, **kw: Any) -> Any:
        """A request of ``site``'s agent (``path`` under the agent prefix)."""
        return self.client.request(**self.signed(site, method, f"{AGENT}{path}", doc, **kw))

    def ok(self, site: str, method: str, path: str, doc: Any = None, **kw: Any) -> Any:
        r = self.agent(site, method, path, doc, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def heartbeat(self) -> None:
        for site in PARTNER:
            self.ok(site, "POST", "/heartbeat", {"loads": {"h100": {"free_gpus": 8, "queued_gpus": 0}}})

    def dispatch(self, site: str) -> dict[str, Any]:
        """A job placed at ``site`` by the broker: its dispatch order, as the agent reads it."""
        self.heartbeat()
        doc = {"command": ["true"], "gpus": 1, "site": site, "partner": PARTNER[site]}
        r = self.client.post("/api/v1/jobs", json=doc, headers=ADMIN)
        assert r.status_code == 201, r.text
        self.services.broker.step()
        orders = self.ok(site, "GET", "/orders")["orders"]
        return next(o for o in orders if o["job_id"] == r.json()["id"])

    def audit(self, after: int = 0) -> list[AuditRecord]:
        self.services.audit.flush()
        return self.services.access.store.audit_records(after=after)

    def last_seq(self) -> int:
        return max((r.seq for r in self.audit()), default=0)


@pytest.fixture
def hub(db_url: str) -> Iterator[Hub]:
    keys = {site: new_private_key() for site in (*PARTNER, "stranger")}
    public = {
        s: ["ed25519:" + base64.b64encode(pub).decode()] for s, (_, pub) in keys.items() if s in PARTNER
    }
    fed = parse_federation_text(agent_federation_text(public))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    db = SqlStore(db_url)
    services = compose(fed, db, {}, clock, TOKEN)
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            yield Hub(client, services, db, clock, {s: k for s, (k, _) in keys.items()})
    finally:
        services.close()


def stored(h: Hub) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the agents' requests may change: orders, statuses, signed usage, logs, usage."""
    with h.db.transaction() as conn:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(select(t)).all())
            for t in (agent_orders, agent_status, agent_usage, agent_logs, usage_records)
        }


def usage_of(h: Hub, order: dict[str, Any], site: str, *, key: bytes | None = None, **change: Any) -> Report:
    """A final report of ``order``'s job that ran an hour, with usage signed by ``key``
    (default: the site's), then its figures changed by ``change`` (after signing)."""
    start = h.clock.now() - timedelta(hours=1)
    end = h.clock.now()
    u = attest.Usage(
        site, order["ref"], order["job_id"], "77", site, "completed", start, end, 1, 3600.0, 0, None
    )
    rep = Report(
        order["ref"],
        RemoteState.COMPLETED,
        "77",
        start,
        end,
        0,
        1,
        3600.0,
        None,
        usage=attest.sign(u, key or h.keys[site]),
    )
    return dataclasses.replace(rep, **change)


def reports(*rs: Report) -> dict[str, Any]:
    return {"reports": [report_doc(r) for r in rs]}


def refused(h: Hub, status: int, says: str, send: Any, *, field: str | None = None) -> dict[str, Any]:
    """``send()`` is refused with ``status`` and a problem document saying ``says`` (and, for
    422, naming ``field``); it is audited with that status and changes no stored row."""
    before, seq = stored(h), h.last_seq()
    r = send()
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status and says in doc["detail"], doc
    if field is not None:
        assert field in [p["field"] for p in doc["problems"]], doc["problems"]
    records = [a for a in h.audit(seq) if a.status == status]
    assert records, f"no audit record of the {status}"
    assert records[-1].outcome.value in ("refused", "failed", "denied", "invalid"), records[-1]
    assert stored(h) == before, "a refused request changed what is stored"
    return doc


# ------------------------------------------------------------------ the happy path
def test_an_order_runs_and_its_signed_usage_reaches_the_ledger(hub: Hub) -> None:
    h = hub
    assert h.ok("isambard", "GET", "/site") == {
        "site": "isambard",
        "partner": "uk",
        "pools": [{"id": "h100", "gpu_model": "H100", "gpus": 8}],
    }
    order = h.dispatch("isambard")
    assert (order["kind"], order["id"]) == ("dispatch", f"{order['ref']}/dispatch")
    assert order["job"]["site"] == "isambard"
    assert h.ok("isambard", "POST", "/acks", {"acks": [{"order": order["id"], "local_id": "77"}]}) == {
        "new": 1
    }
    assert h.ok("isambard", "GET", "/orders", params={"wait": 0}) == {"orders": []}
    running = Report(order["ref"], RemoteState.RUNNING, "77", h.clock.now())
    assert h.ok("isambard", "POST", "/reports", reports(running)) == {"changed": 1}
    h.services.broker.step()
    assert h.client.get(f"/api/v1/jobs/{order['job_id']}", headers=ADMIN).json()["state"] == "running"
    h.clock.advance(3600)
    h.heartbeat()
    final = usage_of(h, order, "isambard")
    assert h.ok(
        "isambard",
        "POST",
        "/logs",
        raw=b"hello\n",
        params={"ref": order["ref"], "stream": "stdout", "offset": 0},
    ) == {"next_offset": 6}
    assert h.ok("isambard", "POST", "/reports", reports(final)) == {"changed": 1}
    h.services.broker.step()
    job = h.client.get(f"/api/v1/jobs/{order['job_id']}", headers=ADMIN).json()
    assert job["state"] == "completed", job
    assert h.client.get(f"/api/v1/jobs/{order['job_id']}/logs", headers=ADMIN).json()["stdout"] == "hello\n"
    assert final.usage is not None
    digest = attest.digest(final.usage.body)
    [record] = h.services.store.usage(job_id=order["job_id"])
    assert (record.attestation, record.gpu_seconds, record.site) == (digest, 3600.0, "isambard")
    h.services.ledger.post_pending()
    entries = h.client.get("/api/v1/ledger/entries", params={"job": order["job_id"]}, headers=ADMIN).json()
    assert entries["entries"] and all(e["memo"]["usage_attestation"] == digest for e in entries["entries"])
    att = h.client.get(f"/api/v1/usage/attestations/{digest}", headers=ADMIN).json()
    assert (att["site"], att["body"], att["key_id"]) == ("isambard", final.usage.body, final.usage.key_id)
    signed = SignedUsage(att["body"], att["key_id"], att["signature"])
    pub = h.services.federation.site("isambard").agent.keys  # type: ignore[union-attr]
    assert attest.verify(signed, pub).job_id == order["job_id"]
    assert h.client.get(f"/api/v1/usage/attestations/{'0' * 64}", headers=ADMIN).status_code == 404


def test_duplicates_count_once(hub: Hub) -> None:
    h = hub
    order = h.dispatch("jeanzay")
    ack = {"acks": [{"order": order["id"]}, {"order": order["id"]}]}
    assert h.ok("jeanzay", "POST", "/acks", ack) == {"new": 1}
    assert h.ok("jeanzay", "POST", "/acks", ack) == {"new": 0}
    running = Report(order["ref"], RemoteState.RUNNING, "77", h.clock.now())
    assert h.ok("jeanzay", "POST", "/reports", reports(running, running)) == {"changed": 1}
    assert h.ok("jeanzay", "POST", "/reports", reports(running)) == {"changed": 0}
    final = usage_of(h, order, "jeanzay")
    assert h.ok("jeanzay", "POST", "/reports", reports(final)) == {"changed": 1}
    before = stored(h)
    assert h.ok("jeanzay", "POST", "/reports", reports(final, running)) == {"changed": 0}
    chunk = {"ref": order["ref"], "stream": "stderr", "offset": 0}
    assert h.ok("jeanzay", "POST", "/logs", raw=b"abc", params=chunk) == {"next_offset": 3}
    assert h.ok("jeanzay", "POST", "/logs", raw=b"abc", params=chunk) == {"next_offset": 3}
    assert h.ok("jeanzay", "POST", "/logs", raw=b"bcd", params={**chunk, "offset": 1}) == {"next_offset": 4}
    assert stored(h)["agent_status"] == before["agent_status"]


def test_a_running_then_final_report_in_one_request_ends_the_job(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    running = Report(order["ref"], RemoteState.RUNNING, "77", h.clock.now() - timedelta(hours=1))
    assert h.ok("isambard", "POST", "/reports", reports(running, usage_of(h, order, "isambard"))) == {
        "changed": 2
    }
    [row] = [r for r in stored(h)["agent_status"] if r[0] == order["ref"]]
    assert "completed" in row


def test_one_exchange_acknowledges_reports_and_fetches_the_next_orders(hub: Hub) -> None:
    h = hub
    first = h.dispatch("isambard")
    second = h.dispatch("isambard")
    ack = [{"order": first["id"], "local_id": "77"}]
    running = Report(first["ref"], RemoteState.RUNNING, "77", h.clock.now())
    doc = {"acks": ack, **reports(running)}
    got = h.ok("isambard", "POST", "/exchange", doc, params={"wait": 0})
    assert (got["new"], got["changed"]) == (1, 1)
    assert [o["id"] for o in got["orders"]] == [second["id"]]  # the acknowledged one is not sent again
    assert h.ok("isambard", "POST", "/exchange", doc) == {"new": 0, "changed": 0, "orders": got["orders"]}
    h.services.broker.step()
    assert h.client.get(f"/api/v1/jobs/{first['job_id']}", headers=ADMIN).json()["state"] == "running"
    final = usage_of(h, first, "isambard")
    done = {"acks": [{"order": second["id"], "local_id": "78"}], **reports(final)}
    assert h.ok("isambard", "POST", "/exchange", done) == {"new": 1, "changed": 1, "orders": []}
    h.services.broker.step()
    assert h.client.get(f"/api/v1/jobs/{first['job_id']}", headers=ADMIN).json()["state"] == "completed"
    actions = [a.action for a in h.audit() if a.actor == "site:isambard"]
    assert actions.count("agent.exchange") == 3
    h.ok("isambard", "POST", "/exchange", {}, params={"wait": 0})  # only a poll: not audited
    assert [a.action for a in h.audit() if a.actor == "site:isambard"] == actions


def test_an_exchange_is_taken_whole_or_not_at_all(hub: Hub) -> None:
    h = hub
    mine, theirs = h.dispatch("isambard"), h.dispatch("jeanzay")
    running = Report(theirs["ref"], RemoteState.RUNNING, "1", h.clock.now())
    doc = {"acks": [{"order": mine["id"], "local_id": "5"}], **reports(running)}
    refused(h, 403, "belongs to another site", lambda: h.agent("isambard", "POST", "/exchange", doc))
    bad = {"acks": [{"order": 5}], "reports": [{"ref": "x", "state": "done"}]}
    got = refused(h, 422, "is not a state", lambda: h.agent("isambard", "POST", "/exchange", bad))
    assert {p["field"] for p in got["problems"]} == {"acks[0].order", "reports[0].state"}
    assert [o["id"] for o in h.ok("isambard", "GET", "/orders")["orders"]] == [mine["id"]]


def test_an_agent_sees_only_its_own_sites_orders(hub: Hub) -> None:
    h = hub
    mine, theirs = h.dispatch("isambard"), h.dispatch("jeanzay")
    ids = {o["id"] for o in h.ok("isambard", "GET", "/orders")["orders"]}
    assert mine["id"] in ids and theirs["id"] not in ids


# ------------------------------------------------------------------ who is asking
def test_a_request_signed_by_a_key_not_in_the_federation_is_refused(hub: Hub) -> None:
    h = hub
    h.dispatch("isambard")
    for site in ("isambard", "jeanzay", "stranger"):
        refused(
            h,
            401,
            "request signature refused",
            lambda s=site: h.agent(s, "GET", "/orders", key=h.keys["stranger"]),
        )
        refused(
            h,
            401,
            "request signature refused",
            lambda s=site: h.agent(s, "POST", "/acks", {"acks": []}, key=h.keys["stranger"]),
        )
    assert [a.actor for a in h.audit() if a.status == 401] == ["anonymous"] * 6


def test_a_keyid_of_site_b_with_site_as_key_is_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("jeanzay")
    refused(
        h,
        401,
        "request signature refused",
        lambda: h.agent(
            "jeanzay", "POST", "/acks", {"acks": [{"order": order["id"]}]}, key=h.keys["isambard"]
        ),
    )
    refused(
        h,
        401,
        "request signature refused",
        lambda: h.agent("jeanzay", "GET", "/orders", key=h.keys["isambard"]),
    )


def test_a_replayed_request_is_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    req = h.signed("isambard", "POST", f"{AGENT}/acks", {"acks": [{"order": order["id"]}]})
    assert h.client.request(**req).json() == {"new": 1}
    refused(h, 401, "replayed", lambda: h.client.request(**req))
    get = h.signed("isambard", "GET", f"{AGENT}/orders")
    assert h.client.request(**get).status_code == 200
    refused(h, 401, "replayed", lambda: h.client.request(**get))


def test_an_expired_or_future_request_is_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    ack = {"acks": [{"order": order["id"]}]}
    refused(
        h,
        401,
        "expired",
        lambda: h.agent("isambard", "POST", "/acks", ack, at=h.clock.now() - timedelta(minutes=10)),
    )
    refused(
        h,
        401,
        "created in the future",
        lambda: h.agent("isambard", "POST", "/acks", ack, at=h.clock.now() + timedelta(minutes=10)),
    )


def test_a_request_changed_after_signing_is_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    req = h.signed("isambard", "POST", f"{AGENT}/acks", {"acks": []})
    changed = {**req, "content": json.dumps({"acks": [{"order": order["id"]}]}).encode()}
    refused(h, 401, "Content-Digest does not match", lambda: h.client.request(**changed))
    moved = h.signed("isambard", "POST", f"{AGENT}/acks", {"acks": [{"order": order["id"]}]})
    moved["url"] = moved["url"].replace("/acks", "/reports")
    refused(h, 401, "does not verify", lambda: h.client.request(**moved))
    logs = h.signed(
        "isambard",
        "POST",
        f"{AGENT}/logs",
        raw=b"x",
        params={"ref": order["ref"], "stream": "stdout", "offset": 0},
    )
    logs["url"] = logs["url"].replace("offset=0", "offset=1")
    refused(h, 401, "does not verify", lambda: h.client.request(**logs))


def test_no_signature_no_entry_not_even_with_the_admin_token(hub: Hub) -> None:
    h = hub
    for method, path in (
        ("GET", "/site"),
        ("GET", "/orders"),
        ("POST", "/acks"),
        ("POST", "/reports"),
        ("POST", "/exchange"),
        ("POST", "/heartbeat"),
        ("POST", "/logs?ref=x&stream=stdout&offset=0"),
    ):
        for headers in ({}, ADMIN):
            refused(
                h,
                401,
                "needs an HTTP message signature",
                lambda m=method, p=path, hd=headers: h.client.request(m, f"{AGENT}{p}", headers=hd),
            )


# ------------------------------------------------------------------ another site's jobs
def test_an_agent_may_not_touch_another_sites_jobs(hub: Hub) -> None:
    h = hub
    theirs = h.dispatch("jeanzay")
    h.ok("jeanzay", "POST", "/acks", {"acks": [{"order": theirs["id"]}]})
    refused(
        h,
        403,
        "belongs to another site",
        lambda: h.agent("isambard", "POST", "/acks", {"acks": [{"order": theirs["id"]}]}),
    )
    running = Report(theirs["ref"], RemoteState.RUNNING, "1", h.clock.now())
    refused(
        h, 403, "belongs to another site", lambda: h.agent("isambard", "POST", "/reports", reports(running))
    )
    # usage signed by isambard's own key for jeanzay's job: still not isambard's job
    final = usage_of(h, theirs, "isambard")
    refused(
        h, 403, "belongs to another site", lambda: h.agent("isambard", "POST", "/reports", reports(final))
    )
    refused(
        h,
        403,
        "belongs to another site",
        lambda: h.agent(
            "isambard",
            "POST",
            "/logs",
            raw=b"x",
            params={"ref": theirs["ref"], "stream": "stdout", "offset": 0},
        ),
    )
    refused(
        h,
        404,
        "was never sent to site",
        lambda: h.agent("isambard", "POST", "/acks", {"acks": [{"order": "nosuch.1/dispatch"}]}),
    )
    assert {a.actor for a in h.audit() if a.status == 403} == {"site:isambard"}


# ------------------------------------------------------------------ logs
def test_log_chunks_over_their_bounds_or_past_a_gap_are_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    at = {"ref": order["ref"], "stream": "stdout"}
    refused(
        h,
        422,
        "is too large",
        lambda: h.agent(
            "isambard", "POST", "/logs", raw=b"x" * (LOG_CHUNK_BYTES + 1), params={**at, "offset": 0}
        ),
        field="body",
    )
    big = b"x" * (4 * 1024 * 1024 + 1)
    refused(
        h,
        413,
        "is too large",
        lambda: h.agent("isambard", "POST", "/logs", raw=big, params={**at, "offset": 0}),
        field="body",
    )
    assert h.ok("isambard", "POST", "/logs", raw=b"abc", params={**at, "offset": 0}) == {"next_offset": 3}
    doc = refused(
        h,
        409,
        "send from 3",
        lambda: h.agent("isambard", "POST", "/logs", raw=b"z", params={**at, "offset": 5}),
    )
    assert "offset 5" in doc["detail"]
    refused(
        h,
        422,
        "stream",
        lambda: h.agent("isambard", "POST", "/logs", raw=b"z", params={**at, "stream": "stdin", "offset": 3}),
        field="stream",
    )
    refused(
        h,
        422,
        "offset",
        lambda: h.agent("isambard", "POST", "/logs", raw=b"z", params={**at, "offset": -1}),
        field="offset",
    )


# ------------------------------------------------------------------ garbage
@pytest.mark.parametrize(
    ("path", "raw", "field", "says"),
    [
        ("/acks", b"{not json", "body", "is not valid JSON"),
        ("/acks", b"\xff\xfe", "body", "is not valid JSON"),
        ("/acks", b"[1, 2]", "body", "must be a JSON object"),
        ("/acks", b"", "body", "must be a JSON object"),
        ("/acks", b'{"acks": "all"}', "acks", "must be a list"),
        ("/acks", b'{"acks": [{"order": 5}]}', "acks[0].order", "must be a non-empty string"),
        ("/reports", b'"reports"', "body", "must be a JSON object"),
        ("/reports", b'{"reports": [{"ref": "x", "state": "done"}]}', "reports[0].state", "is not a state"),
        (
            "/reports",
            b'{"reports": [{"ref": "x", "state": "running", "gpus": "2"}]}',
            "reports[0].gpus",
            "must be a finite number",
        ),
        (
            "/heartbeat",
            b'{"loads": {"h100": {"free_gpus": "all"}}}',
            "loads.h100.free_gpus",
            "must be a finite",
        ),
        ("/heartbeat", b'{"held": [1]}', "held[0]", "is not a job reference"),
        ("/heartbeat", b"null", "body", "must be a JSON object"),
    ],
)
def test_garbage_bodies_are_refused_naming_the_field(
    hub: Hub, path: str, raw: bytes, field: str, says: str
) -> None:
    h = hub
    h.heartbeat()
    doc = refused(h, 422, says, lambda: h.agent("isambard", "POST", path, raw=raw), field=field)
    assert doc["title"] == "Invalid input"


# ------------------------------------------------------------------ final reports and their usage
def test_final_reports_without_or_against_their_signed_usage_are_refused(hub: Hub) -> None:
    h = hub
    order = h.dispatch("isambard")
    h.ok("isambard", "POST", "/acks", {"acks": [{"order": order["id"]}]})

    def send(rep: Report) -> Callable[[], Any]:
        return lambda: h.agent("isambard", "POST", "/reports", reports(rep))

    refused(
        h,
        422,
        "is required: the job ran",
        send(usage_of(h, order, "isambard", usage=None)),
        field=f"reports[{order['ref']}].usage",
    )
    refused(h, 403, "is not a key of this site", send(usage_of(h, order, "isambard", key=h.keys["jeanzay"])))
    refused(h, 403, "is not a key of this site", send(usage_of(h, order, "isambard", key=h.keys["stranger"])))
    good = usage_of(h, order, "isambard")
    assert good.usage is not None
    other = usage_of(h, order, "isambard", key=h.keys["jeanzay"]).usage
    assert other is not None
    forged = dataclasses.replace(good.usage, signature=other.signature)
    refused(h, 403, "does not verify", send(dataclasses.replace(good, usage=forged)))
    refused(
        h,
        422,
        "differs from the usage it carries",
        send(dataclasses.replace(good, gpu_seconds=36.0)),
        field=f"reports[{order['ref']}].gpu_seconds",
    )
    refused(
        h,
        422,
        "differs from the usage it carries",
        send(dataclasses.replace(good, gpus=8)),
        field=f"reports[{order['ref']}].gpus",
    )
    other_site = usage_of(h, order, "jeanzay", key=h.keys["isambard"])  # signed by isambard, says jeanzay
    refused(h, 403, "signed for site 'jeanzay'", send(other_site))
    assert h.ok("isambard", "POST", "/reports", reports(good)) == {"changed": 1}
    failed = usage_of(h, order, "isambard", state=RemoteState.FAILED)
    assert failed.usage is not None
    refused(h, 422, "differs from the usage it carries", send(failed))
    later = usage_of(h, order, "isambard")  # signed anew: another body, so another end
    h.clock.advance(60)
    refused(h, 409, "already has signed usage", send(usage_of(h, order, "isambard")))
    assert later.usage == good.usage


def test_a_report_batch_with_one_bad_report_stores_none_of_it(hub: Hub) -> None:
    h = hub
    a, b = h.dispatch("isambard"), h.dispatch("isambard")
    running = Report(a["ref"], RemoteState.RUNNING, "1", h.clock.now())
    bad = usage_of(h, b, "isambard", gpu_seconds=1.0)
    refused(h, 422, "differs", lambda: h.agent("isambard", "POST", "/reports", reports(running, bad)))


def test_a_long_poll_is_answered_by_the_order_committed_while_it_waits(hub: Hub) -> None:
    """The poll is woken by the order's commit (the bell), not by its own timeout: it
    returns the order, long before the 20 s it would wait for nothing."""
    import threading
    import time

    hub.heartbeat()
    request = hub.signed("isambard", "GET", f"{AGENT}/orders", params={"wait": 20})
    answer: list[Any] = []
    poll = threading.Thread(target=lambda: answer.append(hub.client.request(**request)))
    started = time.monotonic()
    poll.start()
    time.sleep(0.3)                       # the poll is waiting now
    doc = {"command": ["true"], "gpus": 1, "site": "isambard", "partner": PARTNER["isambard"]}
    job = hub.client.post("/api/v1/jobs", json=doc, headers=ADMIN).json()["id"]
    hub.services.broker.step()            # places and hands over: the order is committed
    poll.join(20)
    assert answer and answer[0].status_code == 200, answer
    assert [o["job_id"] for o in answer[0].json()["orders"]] == [job]
    assert time.monotonic() - started < 15
