"""The hub's record of each site's enforcement state in the SQL store (``site_links``; see
:class:`accord.ports.enforcement.SiteLinkStore` and ``docs/design/site-enforcement.md``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from accord.adapters.sql.schema import site_links
from accord.adapters.sql.store import SqlStore
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.enforcement.wire import LinkKind, LinkRecord, SiteReport


class SqlSiteLinks:
    """The ``site_links`` table of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def save_report(self, site: str, report: SiteReport, at: datetime) -> None:
        """Keep one sync's report in one transaction (the drift lines only when it found drift)."""
        rows = [_row(site, LinkKind.IDENTITY, x.user, x.state.value, x.local_user, x.reason, at)
                for x in report.links]
        rows += [_row(site, LinkKind.GRANT, g.allocation, g.status.value, g.account, g.reason, at)
                 for g in report.grants]
        rows.append(_row(site, LinkKind.SYNC, "", "error" if report.error else "ok", "", report.error, at))
        rows += [_row(site, LinkKind.USAGE, f"{u.period}|{u.account}|{u.user}", str(u.jobs),
                      f"{u.gpu_seconds:.3f}", "", at) for u in report.usage]
        if report.drift:   # kept until the next sync that finds drift: repaired drift stays visible
            rows.append(_row(site, LinkKind.DRIFT, "", "drift", str(len(report.drift)),
                             "\n".join(report.drift), at))
        with self.store.transaction() as conn:
            for r in rows:
                _upsert(conn, r)

    def site_links(self, site: str) -> list[LinkRecord]:
        """Everything the site's agent last said."""
        q = select(site_links).where(site_links.c.site == site).order_by(site_links.c.kind,
                                                                         site_links.c.subject)
        with self.store.transaction() as conn:
            return [_record(r._mapping) for r in conn.execute(q).all()]

    def site_usage(self, site: str, period: str) -> list[AccountUsage]:
        """Slurm's per-account totals the site's agent last reported for ``period``."""
        q = select(site_links).where(and_(site_links.c.site == site,
                                          site_links.c.kind == LinkKind.USAGE.value,
                                          site_links.c.subject.startswith(f"{period}|")))
        with self.store.transaction() as conn:
            rows = [r._mapping for r in conn.execute(q).all()]
        out = []
        for r in rows:
            _, account, user = [*r["subject"].split("|"), "", ""][:3]
            out.append(AccountUsage(period, account, user, float(r["value"]), int(r["state"])))
        return out

    def user_links(self, user: str) -> list[LinkRecord]:
        """The user's local identities at every site."""
        q = select(site_links).where(and_(site_links.c.kind == LinkKind.IDENTITY.value,
                                          site_links.c.subject == user)).order_by(site_links.c.site)
        with self.store.transaction() as conn:
            return [_record(r._mapping) for r in conn.execute(q).all()]


def _row(site: str, kind: LinkKind, subject: str, state: str, value: str, reason: str,
         at: datetime) -> dict[str, Any]:
    return {"site": site, "kind": kind.value, "subject": subject[:120], "state": state[:20],
            "value": value[:120], "reason": reason[:20_000], "updated_at": at}


def _upsert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(delete(site_links).where(and_(site_links.c.site == row["site"],
                                               site_links.c.kind == row["kind"],
                                               site_links.c.subject == row["subject"])))
    conn.execute(insert(site_links), [row])


def _record(m: Any) -> LinkRecord:
    return LinkRecord(m["site"], LinkKind(m["kind"]), m["subject"], m["state"], m["value"], m["reason"],
                      m["updated_at"])
