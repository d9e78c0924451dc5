"""The outbox worker against real receivers on loopback: a real SMTP server (aiosmtpd, with
AUTH, and with STARTTLS required under a private CA) and a real HTTP webhook receiver.
Email carries a stable Message-ID and idempotency key; webhooks are signed (HMAC-SHA256 over
timestamp and body); a refusing SMTP server, a 500 and a hanging webhook are tried again
later with back-off and the reason shown, then given up; a hanging receiver holds a pass no
longer than the timeout; a notice is written once per key; malformed settings are refused,
naming the field."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.notify_channels import EmailSender, SmtpSettings, WebhookSender, message_id
from accord.adapters.sql.access_store import SqlAccess
from accord.adapters.sql.notify_store import SqlNotifications
from accord.adapters.sql.store import SqlStore
from accord.domain.access.projects import User
from accord.domain.access.rules import Principal
from accord.domain.errors import InvalidInput
from accord.domain.notify.rules import (
    KEY_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Channel,
    DeliveryState,
    Notice,
    NoticeKind,
    verify,
)
from accord.ports import Sender
from accord.service.notify import NotifyService
from tests.notify_receivers import HookSink, SmtpSink, self_signed, smtp_server, webhook_server

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'n.db'}")
    access = SqlAccess(s)
    for uid in ("ada", "bo"):
        access.add_user(User(uid, uid.title(), f"{uid}@example.org", "bristol"), T0)
    yield s
    s.close()


def service(store: SqlStore, smtp: SmtpSink | None, timeout: float = 2.0,
            user: str | None = None, password: str | None = None) -> tuple[NotifyService, FakeClock]:
    clock = FakeClock(T0)
    settings = SmtpSettings("127.0.0.1" if smtp else None, smtp.port if smtp else 25, user=user,
                            password=password, sender="hub@example.org", timeout_s=timeout)
    senders: dict[Channel, Sender] = {Channel.EMAIL: EmailSender(settings),
                                      Channel.WEBHOOK: WebhookSender(timeout)}
    return NotifyService(SqlNotifications(store), senders, clock), clock


def me(user: str) -> Principal:
    return Principal(user, user.title())


def notice(key: str = "job:j1:5", *who: str) -> Notice:
    return Notice(key, NoticeKind.JOB_ENDED, who or ("ada",), "job j1 completed", "exit 0", {"job": "j1"})


def test_email_reaches_a_real_smtp_server_with_auth_and_a_stable_key(store: SqlStore) -> None:
    with smtp_server("hub", "s3cret") as smtp:
        svc, _ = service(store, smtp, user="hub", password="s3cret")
        svc.store.add_notices([notice()], T0)
        assert svc.step() == 1
        assert smtp.logins == ["hub"]
        [msg] = smtp.messages
        assert msg["To"] == "ada@example.org" and "job j1 completed" in str(msg["Subject"])
        assert msg[KEY_HEADER] == "job:j1:5/ada/email"
        [d] = svc.store.deliveries("ada")
        assert msg["Message-ID"] == message_id(d) and d.state is DeliveryState.SENT
        assert svc.step() == 0, "a sent delivery is not sent again"


def test_starttls_with_login_is_used_when_configured_and_required_by_the_server(
        store: SqlStore, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with smtp_server("hub", "s3cret", tls=(cert, key)) as smtp:
        plain, _ = service(store, smtp)
        plain.store.add_notices([notice()], T0)
        plain.step()
        [d] = plain.store.deliveries("ada")
        assert d.state is DeliveryState.PENDING and "refused: 530" in (d.last_error or ""), d.last_error
        assert "STARTTLS" in (d.last_error or "")
        settings = SmtpSettings("127.0.0.1", smtp.port, starttls=True, user="hub", password="s3cret",
                                sender="hub@example.org", timeout_s=2.0, ca_file=str(cert))
        later = FakeClock(T0)
        later.advance(5)       # past the first try's back-off
        tls = NotifyService(SqlNotifications(store), {Channel.EMAIL: EmailSender(settings)}, later)
        assert tls.step() == 1
        assert smtp.logins == ["hub"] and smtp.keys() == {"job:j1:5/ada/email": 1}


def test_smtp_settings_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    s = SmtpSettings.from_env({"ACCORD_SMTP_HOST": "mail.example.org", "ACCORD_SMTP_PORT": "587",
                               "ACCORD_SMTP_STARTTLS": "1", "ACCORD_SMTP_USER": "hub",
                               "ACCORD_SMTP_PASSWORD_FILE": str(tmp_path / "pw"),
                               "ACCORD_SMTP_FROM": "a@b.org"})
    assert (s.host, s.port, s.starttls, s.user, s.password, s.sender) == (
        "mail.example.org", 587, True, "hub", "s3cret", "a@b.org")
    for name, value in (("ACCORD_SMTP_PORT", "smtp"), ("ACCORD_SMTP_PORT", "70000"),
                        ("ACCORD_NOTIFY_TIMEOUT", "-1"),
                        ("ACCORD_SMTP_PASSWORD_FILE", str(tmp_path / "none"))):
        with pytest.raises(InvalidInput) as exc:
            SmtpSettings.from_env({name: value})
        assert exc.value.problems[0].where == name


def test_a_notice_is_stored_once_per_key(store: SqlStore) -> None:
    svc, _ = service(store, None)
    assert svc.store.add_notices([notice(), notice()], T0) == 1
    assert svc.store.add_notices([notice()], T0) == 0
    svc.fan_out()
    svc.store.add_notices([notice()], T0)
    assert svc.fan_out() == 0, "a notice already fanned out is not fanned out again"


def test_a_refusing_smtp_server_is_retried_with_back_off_and_the_reason_shown(store: SqlStore) -> None:
    with smtp_server() as smtp:
        smtp.refuse = True
        svc, clock = service(store, smtp)
        svc.store.add_notices([notice()], T0)
        assert svc.step() == 0
        [d] = svc.store.deliveries("ada")
        assert d.state is DeliveryState.PENDING and d.attempts == 1
        assert "refused: 550" in (d.last_error or "")
        assert svc.step() == 0 and svc.store.deliveries("ada")[0].attempts == 1, "not due before its back-off"
        smtp.refuse = False
        clock.advance(5)
        assert svc.step() == 1
        assert smtp.keys() == {"job:j1:5/ada/email": 1}


def test_webhooks_are_signed_over_timestamp_and_body(store: SqlStore) -> None:
    with webhook_server() as hook:
        svc, _ = service(store, None)
        _, secret = svc.set_preferences(me("ada"), {"webhook_url": hook.url, "email_on": False})
        assert secret
        svc.store.add_notices([notice()], T0)
        assert svc.step() == 1
        [(headers, body)] = hook.received
        assert verify(secret, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()])
        assert not verify("another secret", headers[TIMESTAMP_HEADER.lower()], body,
                          headers[SIGNATURE_HEADER.lower()])
        doc = json.loads(body)
        assert doc["id"] == headers[KEY_HEADER.lower()] == "job:j1:5/ada/webhook"
        assert doc["kind"] == "job.ended" and doc["data"] == {"job": "j1"}


def _hooked(store: SqlStore, hook: HookSink, timeout: float = 2.0) -> tuple[NotifyService, FakeClock]:
    svc, clock = service(store, None, timeout)
    svc.set_preferences(me("ada"), {"webhook_url": hook.url, "email_on": False})
    svc.store.add_notices([notice()], T0)
    return svc, clock


def test_a_500_is_retried_with_exponential_back_off_then_given_up_with_the_reason(store: SqlStore) -> None:
    with webhook_server() as hook:
        hook.mode = "500"
        svc, clock = _hooked(store, hook)
        waits = []
        for n in range(1, MAX_ATTEMPTS + 1):
            svc.step()
            d = svc.store.deliveries("ada")[0]
            assert d.attempts == n and "HTTP 500" in (d.last_error or "")
            waits.append((d.next_at - clock.now()).total_seconds())
            clock.advance(waits[-1])
        assert waits[:4] == [5.0, 10.0, 20.0, 40.0]
        assert d.state is DeliveryState.GIVEN_UP
        assert f"gave up after {MAX_ATTEMPTS} tries" in (d.last_error or "")
        hook.mode = "ok"
        clock.advance(7200)
        assert svc.step() == 0 and hook.received == [], "a given-up delivery is not tried again"


def test_a_hanging_webhook_holds_a_pass_no_longer_than_the_timeout(store: SqlStore) -> None:
    with webhook_server() as hook:
        hook.mode, hook.hang_s = "hang", 5.0
        svc, clock = _hooked(store, hook, timeout=0.5)
        began = time.monotonic()
        assert svc.step() == 0
        assert time.monotonic() - began < 3.0
        d = svc.store.deliveries("ada")[0]
        assert d.state is DeliveryState.PENDING and "timed out" in (d.last_error or "")
        hook.mode = "ok"
        clock.advance(5)
        assert svc.step() == 1 and hook.keys() == {"job:j1:5/ada/webhook": 1}


def test_email_without_a_server_waits_and_says_why(store: SqlStore) -> None:
    svc, _ = service(store, None)
    svc.store.add_notices([notice()], T0)
    svc.step()
    d = svc.store.deliveries("ada")[0]
    assert d.state is DeliveryState.PENDING and "ACCORD_SMTP_HOST" in (d.last_error or "")


@pytest.mark.parametrize(("changes", "where", "got"), [
    ({"email": "not-an-address"}, "email", "not-an-address"),
    ({"email": "a@b"}, "email", "a@b"),
    ({"webhook_url": "ftp://example.org/x"}, "webhook_url", "ftp://example.org/x"),
    ({"webhook_url": "http://user:pw@example.org/"}, "webhook_url", "http://user:pw@example.org/"),
    ({"webhook_url": "http:///nohost"}, "webhook_url", "http:///nohost"),
    ({"events": ["job.ended", "job.exploded"]}, "events", "job.exploded"),
])
def test_malformed_settings_are_refused_naming_field_value_and_what_is_allowed(
        store: SqlStore, changes: dict[str, object], where: str, got: str) -> None:
    svc, _ = service(store, None)
    with pytest.raises(InvalidInput) as exc:
        svc.set_preferences(me("ada"), changes)
    [p] = exc.value.problems
    assert (p.where, p.got) == (where, got) and p.allowed
    assert svc.store.prefs("ada") is None, "nothing stored"


def test_people_get_only_the_kinds_they_chose(store: SqlStore) -> None:
    with smtp_server() as smtp:
        svc, _ = service(store, smtp)
        svc.set_preferences(me("bo"), {"events": ["job.failed"]})
        svc.store.add_notices([notice("job:j1:5", "ada", "bo")], T0)
        svc.step()
        assert [m["To"] for m in smtp.messages] == ["ada@example.org"]
