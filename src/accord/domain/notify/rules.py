"""Notifications, pure: what happened (a :class:`Notice`, keyed so it is made once), who
wants it by which channel (:class:`Preferences`), how a webhook is signed, when a failed
delivery is tried again. No I/O, clock or environment: the service brings the time.

See ``docs/design/notifications.md``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from accord.domain.errors import Problem

USE_MARKS = (80, 95, 100)          # per cent of an allocation used
END_MARKS = (30, 7)                # days before an allocation's last day
MAX_ATTEMPTS = 8                   # deliveries given up after this many failed tries
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 3600.0
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
SIGNATURE_HEADER = "X-Accord-Signature"
TIMESTAMP_HEADER = "X-Accord-Timestamp"
KEY_HEADER = "X-Accord-Idempotency-Key"


class NoticeKind(enum.Enum):
    """What a notification is about."""

    JOB_ENDED = "job.ended"
    JOB_FAILED = "job.failed"
    JOB_HELD = "job.held"
    COMPLIANCE_NEEDED = "compliance.needed"
    ALLOCATION_USE = "allocation.use"
    ALLOCATION_ENDING = "allocation.ending"
    APPLICATION_DECIDED = "application.decided"
    RESULTS_RELEASED = "campaign.released"


class Channel(enum.Enum):
    """Where a notification goes."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(enum.Enum):
    """Where one delivery is: waiting (maybe after failures), sent, or given up."""

    PENDING = "pending"
    SENT = "sent"
    GIVEN_UP = "given_up"


ALL_KINDS = frozenset(NoticeKind)


@dataclass(frozen=True, slots=True)
class Notice:
    """One event worth telling people: ``key`` is stable (made twice, stored once), and is
    the idempotency key every message of it carries."""

    key: str
    kind: NoticeKind
    recipients: tuple[str, ...]                     # user ids
    subject: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
    operators_of: str | None = None                 # also every operator of this site


@dataclass(frozen=True, slots=True)
class Preferences:
    """A person's channels: an email address, a webhook URL (with a secret the hub keeps),
    and which kinds of notice they want (all by default)."""

    user: str
    email: str | None = None
    email_on: bool = True
    webhook_url: str | None = None
    webhook_secret: str | None = None
    kinds: frozenset[NoticeKind] = ALL_KINDS

    def channels(self, kind: NoticeKind, fallback_email: str | None) -> list[tuple[Channel, str]]:
        """The (channel, target) pairs a notice of ``kind`` goes to; the enrolled address
        ``fallback_email`` serves when no address is set."""
        if kind not in self.kinds:
            return []
        out: list[tuple[Channel, str]] = []
        address = self.email or fallback_email
        if self.email_on and address:
            out.append((Channel.EMAIL, address))
        if self.webhook_url:
            out.append((Channel.WEBHOOK, self.webhook_url))
        return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notice to one person by one channel, and how its delivery went."""

    id: str                          # notice key / user / channel
    notice: Notice
    user: str
    channel: Channel
    target: str
    state: DeliveryState
    attempts: int
    next_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None


def delivery_id(notice_key: str, user: str, channel: Channel) -> str:
    """The id of the delivery of a notice to a person by a channel (unique, stable)."""
    return f"{notice_key}/{user}/{channel.value}"


def check_email(value: str, name: str = "email") -> list[Problem]:
    """Problems with an email address (none if it is well formed)."""
    if len(value) <= 320 and EMAIL.match(value):
        return []
    return [Problem(name, "is not an email address", value, "local@domain.example (one @, a dotted domain)")]


def check_webhook_url(value: str, name: str = "webhook_url") -> list[Problem]:
    """Problems with a webhook URL: http(s) with a host, no credentials, at most 2000 characters."""
    allowed = "an http:// or https:// URL with a host, no user:password@, at most 2000 characters"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return [Problem(name, "is not a URL", value, allowed)]
    if (len(value) > 2000 or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.username or parts.password or not port_ok or any(c.isspace() for c in value)):
        return [Problem(name, "is not a webhook URL", value, allowed)]
    return []


def parse_kinds(values: Sequence[str], name: str = "events") -> tuple[frozenset[NoticeKind], list[Problem]]:
    """The kinds named by ``values`` and a problem per unknown name."""
    known = {k.value: k for k in NoticeKind}
    bad = [Problem(name, "is not a kind of notification", v, ", ".join(sorted(known))) for v in values
           if v not in known]
    return frozenset(known[v] for v in values if v in known), bad


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``timestamp``, a dot, and ``body``, keyed
    by ``secret`` (what a receiver recomputes; see ``docs/security.md``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is :func:`sign`'s for these bytes (constant time)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try: 5 s, doubling, at most an hour.

    >>> [backoff_s(n) for n in (1, 2, 3)]
    [5.0, 10.0, 20.0]
    """
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, attempts - 1))


def gives_up(attempts: int) -> bool:
    """Whether a delivery that failed ``attempts`` times is given up."""
    return attempts >= MAX_ATTEMPTS


def job_notice(job_id: str, seq: int, after: str, reason: str, owner: str,
               hold: Mapping[str, Any] | None = None) -> Notice | None:
    """The notice of a job's transition into ``after`` (story entry ``seq``), or None if
    that state is not worth one. A compliance hold also tells the site's operators."""
    key = f"job:{job_id}:{seq}"
    data = {"job": job_id, "state": after, "reason": reason}
    if after == "completed":
        return Notice(key, NoticeKind.JOB_ENDED, (owner,), f"job {job_id} completed", reason, data)
    if after in ("failed", "timed_out", "cancelled"):
        return Notice(key, NoticeKind.JOB_FAILED, (owner,), f"job {job_id} {after.replace('_', ' ')}",
                      reason, data)
    if after != "held":
        return None
    if hold and hold.get("kind") == "compliance" and hold.get("site"):
        site = str(hold["site"])
        return Notice(key, NoticeKind.COMPLIANCE_NEEDED, (owner,),
                      f"job {job_id} held: a decision of site {site} is needed", reason,
                      {**data, "site": site, "rule": hold.get("rule", "")}, operators_of=site)
    return Notice(key, NoticeKind.JOB_HELD, (owner,), f"job {job_id} held", reason, data)


def use_marks(used: float, units: float) -> list[int]:
    """The marks of :data:`USE_MARKS` that ``used`` of ``units`` reached.

    >>> use_marks(96, 100)
    [80, 95]
    """
    return [m for m in USE_MARKS if units > 0 and used * 100 >= units * m]


def last_day(month: str) -> date:
    """The last day of ``month`` (YYYY-MM)."""
    y, m = (int(x) for x in month.split("-"))
    return date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)


def end_marks(today: date, end_month: str) -> list[int]:
    """The marks of :data:`END_MARKS` (days before the allocation's last day) reached on
    ``today``, while it has not ended."""
    left = (last_day(end_month) - today).days
    return [m for m in END_MARKS if 0 <= left <= m]


def allocation_notices(alloc: Mapping[str, Any], used: float, today: date) -> list[Notice]:
    """The notices an approved allocation owes on ``today`` given ``used`` units: a mark of
    use reached, a mark of days before its end reached (each once, by its key)."""
    aid, units, who = str(alloc["id"]), float(alloc["units"]), tuple(alloc["recipients"])
    base = {"allocation": aid, "project": alloc["project"], "units": units, "used": used}
    out = [Notice(f"alloc:{aid}:use:{m}", NoticeKind.ALLOCATION_USE, who,
                  f"allocation {aid} of {alloc['project']} is {m}% used",
                  f"{used:g} of {units:g} units used", {**base, "mark": m}) for m in use_marks(used, units)]
    out += [Notice(f"alloc:{aid}:ends:{m}", NoticeKind.ALLOCATION_ENDING, who,
                   f"allocation {aid} of {alloc['project']} ends within {m} days",
                   f"its last month is {alloc['end']}", {**base, "mark": m, "end": alloc["end"]})
            for m in end_marks(today, str(alloc["end"]))]
    return out


def decision_notice(alloc: Mapping[str, Any]) -> Notice:
    """The notice of an application's decision (approved or refused, and why)."""
    aid, state = str(alloc["id"]), str(alloc["state"])
    return Notice(f"alloc:{aid}:decided", NoticeKind.APPLICATION_DECIDED, tuple(alloc["recipients"]),
                  f"application {aid} of {alloc['project']} {state}", str(alloc.get("reason") or ""),
                  {"allocation": aid, "project": alloc["project"], "state": state})


def release_notice(campaign: str, recipients: Sequence[str], rule: str) -> Notice:
    """The notice that a campaign's results were released."""
    return Notice(f"campaign:{campaign}:released", NoticeKind.RESULTS_RELEASED, tuple(recipients),
                  f"results of campaign {campaign} released", rule, {"campaign": campaign})


def message_body(notice_key: str, kind: str, subject: str, text: str,
                 data: Mapping[str, Any]) -> dict[str, Any]:
    """What a webhook receives (and an email's JSON part): the key, kind, subject, text, data."""
    return {"id": notice_key, "kind": kind, "subject": subject, "text": text, "data": dict(data)}
