"""Reconcile a period: each site's own accounting against Accord's usage and ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from accord.domain.errors import Unavailable
from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import next_period, parse_period
from accord.domain.ledger.reconcile import SiteReconciliation, reconcile_site
from accord.ports import AccountingSource, JobStore
from accord.service.ledger import LedgerService


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a ``YYYY-MM`` period, UTC."""
    start = datetime.strptime(parse_period(period), "%Y-%m").replace(tzinfo=UTC)
    end = datetime.strptime(next_period(period), "%Y-%m").replace(tzinfo=UTC)
    return start, end


def reconcile_period(
    period: str,
    federation: Federation,
    store: JobStore,
    ledger: LedgerService,
    sources: Mapping[str, AccountingSource],
) -> dict[str, Any]:
    """Per site: site, usage and ledger GPU-seconds for the period, and the jobs that differ.

    A site whose accounting cannot be read is reported with the reason, not skipped.

    Raises:
        InvalidInput: not a YYYY-MM period.
    """
    start, end = period_bounds(period)
    entries = ledger.ledger.entries(period=period)
    records = store.usage()
    sites: dict[str, Any] = {}
    for site in federation.sites:
        source = sources.get(site.id)
        try:
            if source is None:
                raise Unavailable("no accounting source for this site")
            site_usage = source.accounting(start, end)
        except Unavailable as exc:
            sites[site.id] = {"ok": False, "error": str(exc)}
            continue
        sites[site.id] = _as_dict(reconcile_site(site.id, period, site_usage, records, entries))
    return {"period": period, "ok": all(s["ok"] for s in sites.values()), "sites": sites}


def _as_dict(r: SiteReconciliation) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "site_gpu_seconds": round(r.site_gpu_seconds, 3),
        "usage_gpu_seconds": round(r.usage_gpu_seconds, 3),
        "cross_border_gpu_seconds": round(r.cross_border_gpu_seconds, 3),
        "ledger_gpu_seconds": round(r.ledger_gpu_seconds, 3),
        "differences": [{"ref": d.ref, "job": d.job_id, "site_gpu_seconds": d.site_gpu_seconds,
                         "accord_gpu_seconds": d.accord_gpu_seconds, "note": d.note}
                        for d in r.differences],
    }
