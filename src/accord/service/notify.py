"""Notifications: each person's channels, and the outbox worker that turns notices into
deliveries and sends them (``docs/design/notifications.md``).

Notices enter the outbox two ways, both keyed so a notice is stored once: a job's
transition writes its notice in the same transaction (the job store), and :meth:`derive`
looks at allocations (use, end, decision) and campaigns (results released) on every pass.
:meth:`fan_out` makes one delivery per person and channel, in one transaction with marking
the notice done; :meth:`deliver` sends what is due, each try within a timeout, and on a
failure records the reason and the next try (exponential back-off), giving up after
:data:`~accord.domain.notify.rules.MAX_ATTEMPTS`. A crash between sending and recording sends
that delivery again, with the same idempotency key: delivery is at least once, and a
receiver that drops repeated keys sees each message once.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from accord.domain.access.rules import Principal
from accord.domain.errors import InvalidInput, LeaseLost, Problem, Unavailable
from accord.domain.notify.rules import (
    Channel,
    Delivery,
    Notice,
    Preferences,
    allocation_notices,
    backoff_s,
    check_email,
    check_webhook_url,
    decision_notice,
    gives_up,
    parse_kinds,
)
from accord.ports import Clock, NotifyStore, Sender
from accord.service.leadership import Leadership

log = logging.getLogger("accord.notify")
UsedUnits = Callable[[str, str, str, str, str], Decimal]   # project, agreement, host, first, last
Releases = Callable[[], list[Notice]]
DECISION_WINDOW = timedelta(days=7)    # decisions older than this when first seen are not announced
DERIVE_EVERY = timedelta(seconds=30)   # allocations and campaigns are looked at this often


class NotifyService:
    """Preferences, the outbox, and its worker (run by the replica holding the dispatch lease)."""

    def __init__(self, store: NotifyStore, senders: Mapping[Channel, Sender], clock: Clock, *,
                 used: UsedUnits | None = None, releases: Releases | None = None, batch: int = 50) -> None:
        self.store = store
        self.senders = dict(senders)
        self.clock = clock
        self.used = used
        self.releases = releases
        self.batch = batch
        self._derived: datetime | None = None

    # ------------------------------------------------------------ preferences
    def preferences(self, p: Principal) -> Preferences:
        """The caller's preferences (defaults if never set: every kind, by the enrolled address)."""
        return self.store.prefs(p.user) or Preferences(p.user)

    def set_preferences(self, p: Principal, changes: Mapping[str, Any]) -> tuple[Preferences, str | None]:
        """Change the caller's preferences: ``email`` (None: the enrolled address),
        ``email_on``, ``webhook_url`` (None: none), ``events`` (kind names),
        ``rotate_secret``. Returns them and the webhook's new secret (shown once: a first
        URL, or ``rotate_secret``), else None.

        Raises:
            InvalidInput: a malformed address or URL, an unknown kind (each named).
        """
        old = self.preferences(p)
        email = changes.get("email", old.email)
        url = changes.get("webhook_url", old.webhook_url)
        events = changes.get("events")
        kinds, problems = parse_kinds(events) if events is not None else (old.kinds, [])
        problems += check_email(email) if email else []
        problems += check_webhook_url(url) if url else []
        if problems:
            raise InvalidInput(problems)
        fresh = bool(url) and (not old.webhook_secret or bool(changes.get("rotate_secret")))
        secret = secrets.token_urlsafe(32) if fresh else (old.webhook_secret if url else None)
        on = changes.get("email_on")
        new = Preferences(p.user, email or None, old.email_on if on is None else bool(on), url or None,
                          secret, kinds)
        self.store.save_prefs(new, self.clock.now())
        return new, secret if fresh else None

    def deliveries(self, p: Principal, limit: int = 100) -> list[Delivery]:
        """The caller's deliveries, newest first: sent, waiting (and why), given up (and why).

        Raises:
            InvalidInput: ``limit`` is not 1..1000.
        """
        if not 0 < limit <= 1000:
            raise InvalidInput([Problem("limit", "is out of range", str(limit), "1..1000")])
        return self.store.deliveries(p.user, limit)

    def enrolled_email(self, p: Principal) -> str | None:
        """The address the caller was enrolled with."""
        return self.store.user_email(p.user)

    # ------------------------------------------------------------ the worker
    def step(self) -> int:
        """One pass: derive notices (at most every :data:`DERIVE_EVERY`), fan them out, send
        what is due; how many were sent."""
        now = self.clock.now()
        if self._derived is None or now - self._derived >= DERIVE_EVERY:
            self.derive()
            self._derived = now
        self.fan_out()
        return self.deliver()

    def derive(self) -> int:
        """Write the notices allocations and campaigns owe now (known keys are skipped)."""
        now = self.clock.now()
        notices: list[Notice] = []
        for a in self.store.allocation_facts():
            notices += self._allocation(a, now)
        if self.releases is not None:
            notices += self.releases()
        return self.store.add_notices(notices, now) if notices else 0

    def _allocation(self, a: Mapping[str, Any], now: datetime) -> list[Notice]:
        out: list[Notice] = []
        decided = a.get("decided_at")
        if a["state"] in ("approved", "refused") and decided is not None and now - decided <= DECISION_WINDOW:
            out.append(decision_notice(a))
        if a["state"] == "approved" and self.used is not None:
            used = self.used(a["project"], a["agreement"], a["host"], a["start"], a["end"])
            out += allocation_notices(a, float(used), now.date())
        return out

    def fan_out(self) -> int:
        """Make the deliveries of every notice not yet fanned out (up to 200 a call, in one
        transaction; each person's preferences read once a call); how many notices."""
        notices = self.store.unfanned()
        prefs: dict[str, tuple[Preferences, str | None]] = {}
        operators: dict[str, list[str]] = {}
        fans: dict[str, list[tuple[str, Channel, str]]] = {}
        for n in notices:
            people = set(n.recipients)
            if n.operators_of:
                if n.operators_of not in operators:   # once a call per site, like the preferences
                    operators[n.operators_of] = self.store.operators(n.operators_of)
                people |= set(operators[n.operators_of])
            fans[n.key] = [(u, c, t) for u in sorted(people) for c, t in self._channels(u, n, prefs)]
        self.store.fan_out(fans, self.clock.now())
        return len(notices)

    def _channels(self, user: str, n: Notice, known: dict[str, tuple[Preferences, str | None]]
                  ) -> list[tuple[Channel, str]]:
        if user not in known:
            known[user] = (self.store.prefs(user) or Preferences(user), self.store.user_email(user))
        prefs, email = known[user]
        return prefs.channels(n.kind, email)

    def deliver(self) -> int:
        """Send the deliveries that are due; how many were sent."""
        sent = 0
        for d in self.store.due(self.clock.now(), self.batch):
            sent += self._try(d)
        return sent

    def _try(self, d: Delivery) -> int:
        secret = None
        if d.channel is Channel.WEBHOOK:
            prefs = self.store.prefs(d.user)
            secret = prefs.webhook_secret if prefs else None
        try:
            self.senders[d.channel].send(d, secret)
        except Unavailable as exc:
            self._failed(d, str(exc))
            return 0
        except Exception as exc:   # a sender's bug must not stop the others; it is logged and shown
            log.exception("delivery %s failed", d.id)
            self._failed(d, f"{type(exc).__name__}: {exc}")
            return 0
        self.store.sent(d.id, self.clock.now())
        return 1

    def _failed(self, d: Delivery, reason: str) -> None:
        attempts = d.attempts + 1
        give_up = gives_up(attempts)
        shown = f"gave up after {attempts} tries: {reason}" if give_up else reason
        later = self.clock.now() + timedelta(seconds=backoff_s(attempts))
        self.store.failed(d.id, attempts, shown, later, give_up)
        log.warning("notification %s: %s", d.id, shown)

    def run(self, stopping: threading.Event, leadership: Leadership, interval_s: float = 1.0) -> None:
        """Run :meth:`step` every ``interval_s`` while this replica leads, fenced by the lease,
        until ``stopping`` is set (the loop of its own thread: a slow receiver never delays
        the broker)."""
        while not stopping.is_set():
            if leadership.leading():
                try:
                    with leadership.fenced():
                        self.step()
                except LeaseLost as exc:
                    log.warning("notification pass stopped: %s", exc)
                except Exception:   # the loop must outlive any one failure; it is logged
                    log.exception("notification pass failed; retrying")
            stopping.wait(interval_s)
