"""The lifecycle machine's sub-states as typed columns, and the stimulus behind each event.

``jobs.substate`` holds the sub-states (dispatch, deferral, hold, priority, a pending cancel,
the kept window, a release at the chosen start) as JSON; ``jobs.recheck_at`` is when placement
looks again at a job it deferred (indexed: the broker asks for the due ones);
``job_events.stimulus`` is the id of what caused the event.

Jobs written before this revision kept those facts only in their stories: the upgrade reads
each unfinished job's story once, by the rules the broker used to read it, and writes its
sub-states, so a job mid-dispatch is still looked up before it is sent again.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
UNFINISHED = ("submitted", "held", "deferred", "placed", "dispatched", "running")
REPLAN_S = 600


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("substate", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("recheck_at", UTCDateTime, nullable=True))
    op.create_index("ix_jobs_recheck", "jobs", ["recheck_at"])
    with op.batch_alter_table("job_events") as batch:
        batch.add_column(sa.Column("stimulus", sa.String(200), nullable=False, server_default=""))
    _read_stories(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("stimulus")
    op.drop_index("ix_jobs_recheck", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("recheck_at")
        batch.drop_column("substate")


def _read_stories(bind: sa.Connection) -> None:
    jobs = sa.table("jobs", sa.column("id"), sa.column("state"), sa.column("not_before", UTCDateTime),
                    sa.column("substate"), sa.column("recheck_at", UTCDateTime))
    events = sa.table("job_events", sa.column("job_id"), sa.column("seq"), sa.column("kind"),
                      sa.column("at", UTCDateTime), sa.column("reason"), sa.column("data"))
    rows = bind.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.not_before)
                        .where(jobs.c.state.in_(UNFINISHED))).all()
    for job_id, state, not_before in rows:
        story = [(kind, at, reason, json.loads(data)) for kind, at, reason, data in bind.execute(
            sa.select(events.c.kind, events.c.at, events.c.reason, events.c.data)
            .where(events.c.job_id == job_id).order_by(events.c.seq))]
        sub, recheck = _substate(state, not_before, story)
        bind.execute(sa.update(jobs).where(jobs.c.id == job_id)
                     .values(substate=json.dumps(sub), recheck_at=recheck))


Story = list[tuple[str, datetime, str, dict[str, str]]]


def _substate(state: str, not_before: datetime | None,
              story: Story) -> tuple[dict[str, Any], datetime | None]:
    """The sub-states the broker used to find in a story (its old rules, read once)."""
    sub: dict[str, Any] = {"dispatch": "none", "priority": "normal", "start_came": False}
    window = next((d["window_end"] for k, _, _, d in story if k == "defer" and d.get("window_end")), None)
    sub["window_end"] = window
    if any(d.get("priority") == "low" for _, _, _, d in story):
        sub["priority"] = "low"
    last = story[-1] if story else None
    sub["start_came"] = bool(last and last[0] == "release" and last[3].get("released") == "start")
    recheck = None
    if state == "placed":
        for kind, _, _, data in reversed(story):
            if kind == "place":
                break
            if kind == "note" and data.get("intent") == "dispatch":
                sub["dispatch"] = "sent"
                break
    elif state == "deferred" and not_before is not None:
        defer = next(((at, d) for k, at, _, d in reversed(story) if k == "defer"), None)
        if defer is not None and defer[1].get("site"):
            recheck = defer[0] + timedelta(seconds=REPLAN_S)
            sub["deferral"] = {"kind": "placement", "until": not_before.isoformat(), "site": defer[1]["site"],
                               "recheck_at": recheck.isoformat()}
        else:
            sub["deferral"] = {"kind": "earliest_start", "until": not_before.isoformat()}
    elif state == "held":
        hold = next((d for k, _, _, d in reversed(story) if k == "hold"), {})
        kind = "allocation" if hold.get("allocation") else "compliance"
        sub["hold"] = {"kind": kind, "rule": hold.get("compliance_rule", ""), "site": hold.get("site"),
                       "pool": hold.get("pool"), "allocations": hold.get("allocation")}
    elif state in ("dispatched", "running"):
        asked = "cancel requested: "
        cancel = next((r for k, _, r, _ in reversed(story) if k == "note" and r.startswith(asked)), None)
        sub["cancel_requested"] = cancel.removeprefix(asked) if cancel else None
    return sub, recheck
