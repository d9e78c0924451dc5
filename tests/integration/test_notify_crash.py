"""``kill -9`` of a real ``accord up`` while it delivers notifications, to a real SMTP server
(aiosmtpd) and a real, slow webhook receiver on loopback: no notification is lost, and none
reaches a receiver twice *by idempotency key*.

What "exactly once" means here: delivery is at least once, with a key that is the same on
every try (the email's ``X-Accord-Idempotency-Key`` and ``Message-ID``, the webhook's
``X-Accord-Idempotency-Key``). A hub killed after a receiver took a message but before the
hub recorded it sends that message again on restart, with the same key; a receiver that
drops a key it has seen sees each notification exactly once. The test checks that every
expected key arrived, that every webhook is correctly signed, and that repeats are bounded
by the crashes (at most one delivery is in flight at any moment, so at most one repeat per
crash).

And a webhook that hangs never delays the broker: every job ends while the hub's first call
to it is still waiting, and the call then times out with the reason shown.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from accord.domain.notify.rules import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import SMALL_FEDERATION
from tests.integration.in_force import write_in_force
from tests.integration.server import AccordProcess
from tests.notify_receivers import HookSink, SmtpSink, smtp_server, webhook_server

JOBS = 10
CRASHES = 4
PATH = "/api/v1/me/notifications"


def _configure(server: AccordProcess, hook: HookSink) -> tuple[str, list[str]]:
    """Email and a webhook for the admin; JOBS quick jobs; their ids."""
    with server.client() as client:
        r = client.put(PATH, json={"email": "ops@example.org", "webhook_url": hook.url,
                                   "events": ["job.ended", "job.failed"]})
        assert r.status_code == 200, r.text
        secret = r.json()["webhook_secret"]
        ids = [client.post("/api/v1/jobs", json={"command": ["true"], "gpus": 1},
                           headers={"Idempotency-Key": f"n-{i}"}).json()["id"] for i in range(JOBS)]
    return secret, ids


def _all_sent(server: AccordProcess, expected: int, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            got = client.get(f"{PATH}/deliveries", params={"limit": 1000}).json()["deliveries"]
            if len(got) == expected and all(d["state"] == "sent" for d in got):
                return list(got)
            if time.monotonic() > deadline:
                raise AssertionError(f"not all sent: {[(d['id'], d['state'], d['last_error']) for d in got]}")
            time.sleep(0.3)


def _crash_while_delivering(server: AccordProcess, smtp: SmtpSink, hook: HookSink, rng: random.Random) -> int:
    """Kill the hub CRASHES times, each at a random moment once deliveries have begun arriving."""
    kills = 0
    for _ in range(CRASHES):
        before = len(hook.received) + len(smtp.messages)
        deadline = time.monotonic() + 20
        while len(hook.received) + len(smtp.messages) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        server.kill9()
        kills += 1
        server.start()
    return kills


def test_kill_9_during_delivery_loses_none_and_repeats_none_by_key(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(1)
    fed = write_in_force(tmp_path / "f.toml", SMALL_FEDERATION)
    with smtp_server() as smtp, webhook_server() as hook:
        hook.mode, hook.hang_s = "slow", 0.25            # each webhook takes a while: kills land mid-call
        server = AccordProcess(tmp_path / "data", fed, db_url)
        server.env.update(ACCORD_SMTP_HOST="127.0.0.1", ACCORD_SMTP_PORT=str(smtp.port))
        server.start()
        try:
            secret, ids = _configure(server, hook)
            kills = _crash_while_delivering(server, smtp, hook, rng)
            sent = _all_sent(server, 2 * JOBS, timeout=120)
        finally:
            server.stop()
    expected = {d["id"] for d in sent}
    assert {k.split("/")[0].split(":")[1] for k in expected} == set(ids), "a job's notice is missing"
    email_keys, hook_keys = smtp.keys(), hook.keys()
    assert set(email_keys) | set(hook_keys) == expected, "lost or unexpected keys"
    repeats = sum(n - 1 for n in (*email_keys.values(), *hook_keys.values()))
    assert repeats <= kills, f"{repeats} repeats for {kills} crashes: {email_keys}, {hook_keys}"
    for headers, body in hook.received:
        assert verify(secret, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()])
        assert json.loads(body)["kind"] == "job.ended"
    print(f"{len(expected)} notifications, {kills} kill -9, {repeats} repeated deliveries (same key)")


def test_a_hanging_webhook_never_delays_the_broker(tmp_path: Path) -> None:
    fed = write_in_force(tmp_path / "f.toml", SMALL_FEDERATION)
    with webhook_server() as hook:
        hook.mode, hook.hang_s = "hang", 30.0             # answers (a 500) only after 30 s
        server = AccordProcess(tmp_path / "data", fed)
        server.env.update(ACCORD_NOTIFY_TIMEOUT="15")
        server.start()
        try:
            _, ids = _configure(server, hook)
            began = time.monotonic()
            with server.client() as client:
                while True:                               # every job ends while the first webhook hangs
                    jobs = [client.get(f"/api/v1/jobs/{i}").json() for i in ids]
                    if all(j["state"] == "completed" for j in jobs):
                        break
                    assert time.monotonic() - began < 14, [j["state"] for j in jobs]
                    time.sleep(0.2)
                deadline = time.monotonic() + 40
                while True:                               # then the hung call times out, and says so
                    got = client.get(f"{PATH}/deliveries").json()["deliveries"]
                    hooks = [d for d in got if d["channel"] == "webhook" and d["last_error"]]
                    if hooks:
                        break
                    assert time.monotonic() < deadline, got
                    time.sleep(0.5)
        finally:
            server.stop()
    assert "timed out" in hooks[0]["last_error"] and hooks[0]["state"] == "pending"
