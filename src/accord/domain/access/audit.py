"""The audit log's record: who did what to what, when, from where, and how it ended.

Every text field of a record is cleaned before it is stored (:meth:`AuditRecord.sanitised`):
an attacker chooses much of what a record says (the path, a name in the body), and a record
the database refuses must not take others with it. Cleaning is idempotent.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

#: The longest each text field may be (characters), as the audit table's columns allow.
LIMITS = {"actor": 64, "via": 64, "action": 100, "target": 300, "partners": 300, "source": 100,
          "detail": 4000}
CUT = "…"   # ends a field that was cut to its limit
# C0 and C1 controls and DEL (PostgreSQL refuses U+0000; the others would forge lines in a
# log or a terminal) and lone UTF-16 surrogates (no UTF-8 database can store one). A
# backslash is kept as it is, so cleaning twice changes nothing.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class Outcome(enum.Enum):
    """How a state-changing request ended."""

    OK = "ok"
    REFUSED = "refused"     # 401/403/429: not allowed
    INVALID = "invalid"     # 4xx: bad input or conflict
    FAILED = "failed"       # 5xx


def outcome_of(status: int) -> Outcome:
    """The outcome an HTTP status stands for.

    >>> [outcome_of(s).value for s in (201, 403, 422, 503)]
    ['ok', 'refused', 'invalid', 'failed']
    """
    if status < 400:
        return Outcome.OK
    if status in (401, 403, 429):
        return Outcome.REFUSED
    return Outcome.INVALID if status < 500 else Outcome.FAILED


def clean(text: str, limit: int) -> str:
    """``text`` fit for any database and any terminal: each control character as ``\\xNN``
    (``\\x00`` for NUL), each lone surrogate as U+FFFD, cut to ``limit`` characters (the
    last one then ``…``). Clean text comes back unchanged.

    >>> clean("x\\x00y\\nz", 100), clean("abcdef", 4), clean("\\ud800!", 10) == "\\ufffd!"
    ('x\\\\x00y\\\\x0az', 'abc…', True)
    """
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_escape, text)
    return text if len(text) <= limit else text[: limit - 1] + CUT


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return "\ufffd" if "\ud800" <= c <= "\udfff" else f"\\x{ord(c):02x}"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One state-changing action (``seq`` is set by the store)."""

    at: datetime
    actor: str                 # user id, "admin", or "anonymous"
    via: str                   # admin-token, oidc, api-token:<id>, cli
    action: str                # e.g. job.submit, allocation.approve
    target: str                # e.g. job j0190..., project climate-1
    partners: tuple[str, ...]  # partners the target concerns (for scoped auditors)
    outcome: Outcome
    status: int
    source: str                # client address
    detail: str = ""
    seq: int = 0

    def sanitised(self) -> AuditRecord:
        """This record with every text field :func:`clean` and within :data:`LIMITS`: each
        partner id within 64 characters (a comma in one as ``;``), as many ids as fit in
        ``,a,b,`` of 300 characters; a status outside 0..999 becomes 0."""
        partners: list[str] = []
        room = LIMITS["partners"] - 1
        for p in self.partners:
            p = clean(p, 64).replace(",", ";")
            if not p or len(p) + 1 > room:
                continue
            partners.append(p)
            room -= len(p) + 1
        return replace(self, actor=clean(self.actor, LIMITS["actor"]), via=clean(self.via, LIMITS["via"]),
                       action=clean(self.action, LIMITS["action"]),
                       target=clean(self.target, LIMITS["target"]), partners=tuple(partners),
                       source=clean(self.source, LIMITS["source"]),
                       detail=clean(self.detail, LIMITS["detail"]),
                       status=self.status if 0 <= self.status <= 999 else 0)


def to_json(rec: AuditRecord) -> dict[str, Any]:
    """A record as a JSON object (the audit spool's lines); :func:`from_json` reads it."""
    return {"at": rec.at.isoformat(), "actor": rec.actor, "via": rec.via, "action": rec.action,
            "target": rec.target, "partners": list(rec.partners), "outcome": rec.outcome.value,
            "status": rec.status, "source": rec.source, "detail": rec.detail}


def from_json(doc: Any) -> AuditRecord:
    """The record :func:`to_json` wrote.

    Raises:
        ValueError: not such an object (a field missing or of the wrong type).
    """
    try:
        return AuditRecord(datetime.fromisoformat(doc["at"]), str(doc["actor"]), str(doc["via"]),
                           str(doc["action"]), str(doc["target"]), tuple(str(p) for p in doc["partners"]),
                           Outcome(doc["outcome"]), int(doc["status"]), str(doc["source"]),
                           str(doc["detail"]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an audit record: {type(exc).__name__}: {exc}") from None
