"""Usage back by account (pure): Slurm's own per-account totals at a site against Accord's
usage records and ledger, per allocation (``docs/design/site-enforcement.md``).

Accord's records name a job's project and agreement, not its allocation, so allocations of
one project under one agreement at one site are compared together (their accounts' totals
summed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from accord.domain.enforcement.grants import SiteGrant
from accord.domain.enforcement.planner import allocation_account
from accord.domain.ledger.entries import Entry, EntryKind
from accord.domain.ledger.usage import UsageRecord, split_by_month

TOLERANCE_S = 60.0   # Slurm's times are whole seconds; a minute per group absorbs the edges


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """What Slurm accounted to one user in one of Accord's accounts over a period."""

    period: str
    account: str
    user: str
    gpu_seconds: float
    jobs: int


@dataclass(frozen=True, slots=True)
class AllocationCheck:
    """One site's allocations of a project under an agreement: Slurm's, Accord's and the
    ledger's GPU-seconds for the period."""

    site: str
    project: str
    agreement: str
    accounts: tuple[str, ...]
    slurm_gpu_seconds: float
    usage_gpu_seconds: float
    ledger_gpu_seconds: float

    @property
    def ok(self) -> bool:
        """Slurm and Accord's usage agree (the ledger holds only cross-border usage, so it may
        be less, never more)."""
        return abs(self.slurm_gpu_seconds - self.usage_gpu_seconds) <= TOLERANCE_S and \
            self.ledger_gpu_seconds <= self.usage_gpu_seconds + TOLERANCE_S


def compare_allocations(site: str, period: str, grants: Sequence[SiteGrant],
                        slurm: Iterable[AccountUsage], records: Iterable[UsageRecord],
                        entries: Iterable[Entry]) -> list[AllocationCheck]:
    """One check per (project, agreement) with allocations at ``site``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for g in grants:
        groups.setdefault((g.project, g.agreement), []).append(allocation_account(g.allocation))
    by_account: dict[str, float] = {}
    for u in slurm:
        if u.period == period:
            by_account[u.account] = by_account.get(u.account, 0.0) + u.gpu_seconds
    usage = _usage(site, period, records)
    ledger = _ledger(site, period, entries)
    return [AllocationCheck(site, project, agreement, tuple(accounts),
                            sum(by_account.get(a, 0.0) for a in accounts),
                            usage.get((project, agreement), 0.0), ledger.get((project, agreement), 0.0))
            for (project, agreement), accounts in sorted(groups.items())]


def _usage(site: str, period: str, records: Iterable[UsageRecord]) -> Mapping[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for r in records:
        if r.site == site and r.agreement:
            share = sum(s.gpu_seconds for s in split_by_month(r) if s.period == period)
            out[(r.project, r.agreement)] = out.get((r.project, r.agreement), 0.0) + share
    return out


def _ledger(site: str, period: str, entries: Iterable[Entry]) -> Mapping[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for e in entries:
        if e.site == site and e.period == period and e.kind is EntryKind.USAGE:
            key = (e.project, e.agreement)
            out[key] = out.get(key, 0.0) + float(e.gpu_seconds or Decimal(0))
    return out
