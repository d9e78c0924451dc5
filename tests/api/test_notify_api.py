"""Notification settings through the API, and the notices a live hub's facts make: a
malformed address, URL or event kind is refused (422 naming the field, the value and what is
allowed); a webhook's secret is shown once; a job held for a compliance review tells its
owner and the site's operators, in the transaction that held it; a cancelled job tells its
owner; an allocation's decision, use and end, and a campaign's released results, are
announced once each."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from accord.adapters.notify_channels import WebhookSender
from accord.adapters.sql.notify_store import SqlNotifications
from accord.domain.notify.rules import Channel, NoticeKind
from accord.service.notify import NotifyService
from tests.api.access_world import MONTH0, World, make_world
from tests.api.test_authz_matrix import campaign_doc
from tests.notify_receivers import webhook_server

PATH = "/api/v1/me/notifications"


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as world:
        world.ok("alice", "POST", "/api/v1/projects", json={"id": "climate-a", "name": "c", "partner": "uk",
                                                            "theme": "climate"})
        a = world.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
                     json={"agreement": "uk-fr", "host": "fr", "units": 1000, "start": MONTH0, "end": MONTH0})
        world.ok("pofr", "POST", f"/api/v1/allocations/{a['id']}/decision", json={"approve": True})
        world.ids["alloc"] = a["id"]
        yield world


@pytest.mark.parametrize(("body", "field", "got"), [
    ({"email": "alice-at-example.org"}, "email", "alice-at-example.org"),
    ({"webhook_url": "javascript:alert(1)"}, "webhook_url", "javascript:alert(1)"),
    ({"webhook_url": "https://u:p@hooks.example.org/x"}, "webhook_url", "https://u:p@hooks.example.org/x"),
    ({"events": ["job.ended", "lunch"]}, "events", "lunch"),
])
def test_malformed_settings_are_a_422_naming_field_value_and_what_is_allowed(
        w: World, body: dict[str, object], field: str, got: str) -> None:
    r = w.call("alice", "PUT", PATH, json=body)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    [p] = r.json()["problems"]
    assert (p["field"], p["got"]) == (field, got) and p["allowed"], p
    assert "Traceback" not in r.text


def test_the_webhook_secret_is_shown_once(w: World) -> None:
    first = w.ok("alice", "PUT", PATH, json={"webhook_url": "https://hooks.example.org/accord",
                                             "email": "alice@example.org", "events": ["job.failed"]})
    assert len(first["webhook_secret"]) >= 32
    again = w.ok("alice", "PUT", PATH, json={"email_on": False})
    assert "webhook_secret" not in again and again["webhook_secret_set"]
    shown = w.ok("alice", "GET", PATH)
    assert "webhook_secret" not in shown
    assert (shown["email"], shown["email_on"]) == ("alice@example.org", False)
    assert shown["events"] == ["job.failed"]
    rotated = w.ok("alice", "PUT", PATH, json={"rotate_secret": True})
    assert rotated["webhook_secret"] != first["webhook_secret"]
    assert w.ok("bob", "GET", PATH)["webhook_url"] is None, "each person's own"


def _worker(w: World) -> NotifyService:
    return NotifyService(SqlNotifications(w.store), {Channel.WEBHOOK: WebhookSender(2.0)}, w.clock,
                         used=lambda *_: Decimal(960))


def test_a_compliance_hold_tells_the_owner_and_the_sites_operators(w: World) -> None:
    with webhook_server() as hook:
        for user in ("alice", "opfr"):
            w.ok(user, "PUT", PATH, json={"webhook_url": hook.url, "email_on": False})
        big = w.submit("alice", project="climate-a", site="paris", gpus=4, time_limit="26h")
        w.broker.step()
        assert w.job(big["id"])["state"] == "held"
        held = [n for n in SqlNotifications(w.store).unfanned() if n.data.get("job") == big["id"]]
        assert [(n.kind, n.operators_of) for n in held] == [(NoticeKind.COMPLIANCE_NEEDED, "paris")]
        worker = _worker(w)
        worker.fan_out()
        worker.deliver()
        mine = {k.split("/")[1] for k in hook.keys() if k.startswith(held[0].key)}  # noqa: SIM118 (a Counter)
        assert mine == {"alice", "opfr"}
        w.broker.cancel(big["id"], "not needed")
        worker.step()
        kinds = [d.notice.kind for d in worker.store.deliveries("alice")]
        assert NoticeKind.JOB_FAILED in kinds
        listed = w.ok("alice", "GET", f"{PATH}/deliveries")["deliveries"]
        assert {d["state"] for d in listed} == {"sent"} and all(d["channel"] == "webhook" for d in listed)


def test_allocation_decision_use_and_end_are_announced_once_each(w: World) -> None:
    worker = _worker(w)
    worker.derive()
    aid = w.ids["alloc"]
    keys = {n.key for n in worker.store.unfanned()}
    assert {f"alloc:{aid}:decided", f"alloc:{aid}:use:80", f"alloc:{aid}:use:95"} <= keys
    assert f"alloc:{aid}:use:100" not in keys
    assert worker.derive() == 0, "derived again: nothing new"


def test_a_failing_webhook_shows_why_in_the_deliveries(w: World) -> None:
    with webhook_server() as hook:
        hook.mode = "500"
        w.ok("alice", "PUT", PATH, json={"webhook_url": hook.url, "email_on": False})
        job = w.submit("alice", project="climate-a", site="paris")
        w.broker.cancel(job["id"], "changed my mind")
        _worker(w).step()
        listed = w.ok("alice", "GET", f"{PATH}/deliveries")["deliveries"]
        [d] = [d for d in listed if d["kind"] == "job.failed"]
        assert d["state"] == "pending" and "HTTP 500" in d["last_error"] and d["next_try_at"]


def test_released_campaign_results_are_announced_once(w: World) -> None:
    services = w.client.app.state.services   # type: ignore[attr-defined]
    w.ok("alice", "POST", "/api/v1/campaigns", json=campaign_doc("c-open", embargo="none"))
    w.ok("alice", "POST", "/api/v1/campaigns", json=campaign_doc("c-wait"))
    services.notify.derive()
    released = [n for n in SqlNotifications(w.store).unfanned() if n.kind is NoticeKind.RESULTS_RELEASED]
    assert [(n.key, n.recipients) for n in released] == [("campaign:c-open:released", ("alice",))]
    services.notify.derive()
    again = [n for n in SqlNotifications(w.store).unfanned() if n.kind is NoticeKind.RESULTS_RELEASED]
    assert len(again) == 1
