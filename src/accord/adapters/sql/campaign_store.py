"""Campaigns in the SQL store (see :class:`accord.ports.CampaignStore`).

Every write is insert-once: a pair's run, a log (per job and file name) and a
partner's approval are keyed so that doing it again — after a crash, or by two
dispatchers — stores nothing new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from accord.adapters.sql.schema import campaign_approvals, campaign_logs, campaign_runs, campaigns
from accord.adapters.sql.store import SqlStore
from accord.domain.campaigns.campaign import CollectedLog, Run
from accord.domain.errors import Conflict


class SqlCampaigns:
    """The campaign tables of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def add_campaign(self, doc: str, campaign_id: str, by: str, at: datetime) -> None:
        """Raises:
            Conflict: the id is taken."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(campaigns), [{"id": campaign_id, "doc": doc, "created_by": by,
                                                  "created_at": at}])
        except IntegrityError:
            raise Conflict(f"campaign {campaign_id} already exists; choose another id") from None

    def campaign(self, campaign_id: str) -> tuple[str, str, datetime] | None:
        """(document, created_by, created_at), or None."""
        with self.store.transaction() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        return None if row is None else (row.doc, row.created_by, row.created_at)

    def campaign_ids(self) -> list[str]:
        """Every campaign id, oldest first."""
        with self.store.transaction() as conn:
            return [r.id for r in conn.execute(select(campaigns.c.id).order_by(campaigns.c.created_at,
                                                                                  campaigns.c.id))]

    def add_run(self, run: Run) -> Run:
        """Store a pair's job once; the stored run if the pair already has one."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(campaign_runs), [{
                    "campaign": run.campaign, "task": run.task, "model": run.model, "job_id": run.job_id,
                    "submitted_by": run.submitted_by, "submitted_at": run.submitted_at,
                    "collected_at": run.collected_at}])
            return run
        except IntegrityError:
            found = [r for r in self.runs(run.campaign) if (r.task, r.model) == (run.task, run.model)]
            if not found:
                raise
            return found[0]

    def runs(self, campaign_id: str | None = None, *, uncollected: bool = False) -> list[Run]:
        """Runs of one campaign (or all), optionally only those not collected yet."""
        q = select(campaign_runs).order_by(campaign_runs.c.submitted_at, campaign_runs.c.task,
                                           campaign_runs.c.model)
        if campaign_id is not None:
            q = q.where(campaign_runs.c.campaign == campaign_id)
        if uncollected:
            q = q.where(campaign_runs.c.collected_at.is_(None))
        with self.store.transaction() as conn:
            return [Run(r.campaign, r.task, r.model, r.job_id, r.submitted_by, r.submitted_at,
                        r.collected_at) for r in conn.execute(q)]

    def add_log(self, log: CollectedLog) -> bool:
        """Store a log once per (job, file name); True if new."""
        assert log.content is not None
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(campaign_logs), [{
                    "campaign": log.campaign, "task": log.task, "model": log.model, "job_id": log.job_id,
                    "name": log.name, "sha256": log.sha256, "size": log.size, "content": log.content,
                    "summary": log.summary, "collected_at": log.collected_at}])
            return True
        except IntegrityError:
            return False

    def mark_collected(self, campaign_id: str, task: str, model: str, at: datetime) -> None:
        """Note that a pair's logs are stored (the first time only)."""
        with self.store.transaction() as conn:
            conn.execute(update(campaign_runs).where(and_(
                campaign_runs.c.campaign == campaign_id, campaign_runs.c.task == task,
                campaign_runs.c.model == model, campaign_runs.c.collected_at.is_(None)))
                .values(collected_at=at))

    def logs(self, campaign_id: str, *, content: bool = False) -> list[CollectedLog]:
        """The campaign's collected logs, in collection order (bytes only if ``content``)."""
        cols = [c for c in campaign_logs.c if content or c.name != "content"]
        q = select(*cols).where(campaign_logs.c.campaign == campaign_id).order_by(campaign_logs.c.id)
        with self.store.transaction() as conn:
            return [_log(r._mapping) for r in conn.execute(q)]

    def approve(self, campaign_id: str, partner: str, by: str, at: datetime) -> bool:
        """Record a partner's release approval once; True if new."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(campaign_approvals), [{"campaign": campaign_id, "partner": partner,
                                                           "by": by, "at": at}])
            return True
        except IntegrityError:
            return False

    def approvals(self, campaign_id: str) -> list[tuple[str, str, datetime]]:
        """(partner, by, at) of each approval, by partner."""
        q = (select(campaign_approvals).where(campaign_approvals.c.campaign == campaign_id)
             .order_by(campaign_approvals.c.partner))
        with self.store.transaction() as conn:
            return [(r.partner, r.by, r.at) for r in conn.execute(q)]


def _log(r: Any) -> CollectedLog:
    return CollectedLog(r["campaign"], r["task"], r["model"], r["job_id"], r["name"], r["sha256"],
                        r["size"], r["summary"], r["collected_at"], r.get("content"))
