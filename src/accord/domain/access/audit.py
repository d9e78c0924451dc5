"""The audit log's record: who did what to what, when, from where, and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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
