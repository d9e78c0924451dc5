"""Reconciliation: a site's own accounting against Accord's usage records and ledger (pure).

For one period and one site, three figures of GPU-seconds must agree:

* **site**: what the site's scheduler accounted for Accord's jobs in the period
  (for Slurm, ``sacct --truncate`` over the period, so jobs at its edges count
  only their part inside it);
* **usage**: Accord's usage records of that site, attributed to the period by the
  month rule (``split_by_month``);
* **ledger**: the GPU-seconds of the site's usage entries in the period (only
  cross-border jobs are in the ledger, so this is compared with the cross-border
  part of *usage*).

Every job whose site and usage figures differ (by more than a second per GPU, the
rounding of Slurm's times), or that only one side knows, is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from accord.domain.ledger.entries import Entry, EntryKind
from accord.domain.ledger.usage import UsageRecord, split_by_month


@dataclass(frozen=True, slots=True)
class SiteUsage:
    """One job as the site's own accounting sees it, within the period."""

    ref: str
    job_id: str | None
    gpus: int
    gpu_seconds: float


@dataclass(frozen=True, slots=True)
class Difference:
    """One job the sides disagree on."""

    site: str
    ref: str
    job_id: str | None
    site_gpu_seconds: float | None
    accord_gpu_seconds: float | None
    note: str


@dataclass(frozen=True, slots=True)
class SiteReconciliation:
    """The three totals of one site for the period, and the jobs that differ."""

    site: str
    site_gpu_seconds: float
    usage_gpu_seconds: float
    cross_border_gpu_seconds: float
    ledger_gpu_seconds: float
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        """Whether the site, the usage records and the ledger agree."""
        return not self.differences and \
            abs(self.cross_border_gpu_seconds - self.ledger_gpu_seconds) < 1.0


def reconcile_site(
    site: str,
    period: str,
    site_usage: Sequence[SiteUsage],
    records: Iterable[UsageRecord],
    entries: Iterable[Entry],
) -> SiteReconciliation:
    """Compare one site's accounting, usage records and ledger entries for ``period``."""
    ours: dict[str, tuple[UsageRecord, float]] = {}
    for r in records:
        if r.site != site:
            continue
        share = sum(s.gpu_seconds for s in split_by_month(r) if s.period == period)
        if share > 0:
            ours[r.id.split(":", 1)[1]] = (r, share)
    theirs = {u.ref: u for u in site_usage}
    diffs = [d for d in (_compare(site, ref, theirs.get(ref), ours.get(ref))
                         for ref in sorted(set(ours) | set(theirs), key=_ref_key)) if d]
    cross = sum(share for r, share in ours.values()
                if r.agreement and r.requester_partner not in (None, r.host_partner))
    ledger = sum((e.gpu_seconds or Decimal(0) for e in entries
                  if e.site == site and e.period == period and e.kind is EntryKind.USAGE),
                 Decimal(0))
    return SiteReconciliation(site, sum(u.gpu_seconds for u in site_usage),
                              sum(share for _, share in ours.values()), cross, float(ledger),
                              tuple(diffs))


def _compare(site: str, ref: str, theirs: SiteUsage | None,
             ours: tuple[UsageRecord, float] | None) -> Difference | None:
    if theirs is None and ours is not None:
        return Difference(site, ref, ours[0].job_id, None, ours[1],
                          "Accord has usage the site did not account for")
    if ours is None and theirs is not None:
        return Difference(site, ref, theirs.job_id, theirs.gpu_seconds, None,
                          "the site accounted for a job Accord has no usage of")
    assert theirs is not None and ours is not None
    if abs(theirs.gpu_seconds - ours[1]) > max(1.0, float(theirs.gpus)):
        return Difference(site, ref, ours[0].job_id, theirs.gpu_seconds, ours[1],
                          "GPU-seconds differ")
    return None


def _ref_key(ref: str) -> tuple[int, str]:
    return (int(ref), "") if ref.isdigit() else (0, ref)


def totals(report: Mapping[str, SiteReconciliation]) -> dict[str, float]:
    """Sums over sites, for a one-line summary."""
    return {k: sum(getattr(r, k) for r in report.values())
            for k in ("site_gpu_seconds", "usage_gpu_seconds", "cross_border_gpu_seconds",
                      "ledger_gpu_seconds")}
