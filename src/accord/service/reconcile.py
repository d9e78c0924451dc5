"""Reconcile a period: each site's own accounting against Accord's usage and ledger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from accord.domain.errors import Unavailable
from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import Entry, next_period, parse_period
from accord.domain.ledger.reconcile import SiteReconciliation, reconcile_site
from accord.domain.ledger.usage import UsageRecord
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
    by_account: Callable[[str, list[UsageRecord], list[Entry]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Per site: site, usage and ledger GPU-seconds for the period, and the jobs that differ.

    A site whose accounting cannot be read is reported with the reason, not skipped. With
    ``by_account`` (site enforcement), also each agent site's Slurm totals per allocation
    account against the usage and the ledger (``allocations``; they count towards ``ok``).

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
            if source is None or not hasattr(source, "accounting"):   # an agent site: the hub cannot sacct
                raise Unavailable("no accounting source for this site (an agent site reports its "
                                  "per-account totals: see allocations)")
            site_usage = source.accounting(start, end)
        except Unavailable as exc:
            sites[site.id] = {"ok": False, "error": str(exc)}
            continue
        sites[site.id] = _as_dict(reconcile_site(site.id, period, site_usage, records, entries))
    report = {"period": period, "ok": all(s["ok"] for s in sites.values()), "sites": sites}
    if by_account is not None:
        checks = by_account(period, list(records), list(entries))
        report.update(allocations=checks, ok=report["ok"] and all(c["ok"] for c in checks))
    return report


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
