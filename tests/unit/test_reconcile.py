"""Reconciliation of a site's accounting with Accord's usage and ledger (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import usage_entries
from accord.domain.ledger.reconcile import SiteUsage, reconcile_site
from accord.domain.ledger.usage import UsageRecord


def _record(ref: str, start: datetime, end: datetime, gpus: int = 2) -> UsageRecord:
    seconds = (end - start).total_seconds() * gpus
    return UsageRecord(f"paris:{ref}", f"j{ref}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                       "p", start, end, gpus, seconds, "completed", 0)


def test_agreeing_books_reconcile_including_a_job_across_the_month_edge(
    small_federation: Federation,
) -> None:
    inside = _record("1", datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 5, 2, tzinfo=UTC))
    edge = _record("2", datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC))
    entries = [e for r in (inside, edge)
               for e in usage_entries(r, small_federation, datetime(2026, 11, 2, tzinfo=UTC))]
    site = [SiteUsage("1", "j1", 2, 14400.0), SiteUsage("2", "j2", 2, 7200.0)]  # --truncate
    r = reconcile_site("paris", "2026-10", site, [inside, edge], entries)
    assert r.ok, r
    assert (r.site_gpu_seconds, r.usage_gpu_seconds, r.ledger_gpu_seconds) == (21600, 21600, 21600)


def test_each_kind_of_disagreement_is_named(small_federation: Federation) -> None:
    a = _record("1", datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 5, 1, tzinfo=UTC))
    b = _record("2", datetime(2026, 10, 6, tzinfo=UTC), datetime(2026, 10, 6, 1, tzinfo=UTC))
    site = [SiteUsage("2", "j2", 2, 9000.0), SiteUsage("3", "j3", 1, 60.0)]
    r = reconcile_site("paris", "2026-10", site, [a, b], [])
    notes = {d.ref: d.note for d in r.differences}
    assert notes == {"1": "Accord has usage the site did not account for",
                     "2": "GPU-seconds differ",
                     "3": "the site accounted for a job Accord has no usage of"}
    assert not r.ok
