"""Writing notices into the outbox (``notify_notices``) inside a caller's transaction, once
per key whatever the number of tries: the job store calls :func:`job_notices` in the very
transaction that records a job's transition, so the fact and its notice commit together."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from accord.adapters.sql.schema import notify_notices
from accord.adapters.sql.upsert import insert_ignore
from accord.domain.notify.rules import Notice, job_notice


def notice_row(n: Notice, at: datetime) -> dict[str, Any]:
    """The outbox row of ``n``, not yet fanned out."""
    return {"key": n.key, "kind": n.kind.value, "recipients": json.dumps(list(n.recipients)),
            "operators_of": n.operators_of, "subject": n.subject[:1000], "text": n.text[:4000],
            "data": json.dumps(dict(n.data), sort_keys=True, default=str), "created_at": at,
            "fanned_out": 0}


def add_notices(conn: Connection, notices: Iterable[Notice], at: datetime) -> int:
    """Insert each notice whose key is new (a known key is left as it is); how many were new."""
    rows = list({n.key: notice_row(n, at) for n in notices}.values())
    if not rows:
        return 0
    return len(insert_ignore(conn, notify_notices, rows, "key"))


def job_notices(conn: Connection, job_id: str, owner: str, hold: Mapping[str, Any] | None,
                events: Sequence[Mapping[str, Any]]) -> None:
    """Write the notices of a job's new story rows (``job_events`` rows) in ``conn``'s transaction."""
    notices = [n for e in events
               if (n := job_notice(job_id, int(e["seq"]), str(e["after"]), str(e["reason"]), owner, hold))]
    if notices:
        add_notices(conn, notices, max(e["at"] for e in events))
