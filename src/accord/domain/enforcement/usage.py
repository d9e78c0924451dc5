"""Usage back by account (pure): Slurm's own per-account totals at a site against Accord's
usage records and ledger, per allocation (``docs/design/site-enforcement.md``).

A usage record at an enforcing site names the Slurm account its job ran under (from the
usage the host signed), and each allocation has its own account, so each allocation is
compared alone: Slurm's GPU-seconds in the account, Accord's records naming it, and the
ledger entries that charge those records. Records at the site that name no allocation's
account (jobs that ran before the site enforced, or at a site that does not) are one more
row per project and agreement, ``allocation`` None, checked only against the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from accord.domain.enforcement.grants import SiteGrant
from accord.domain.enforcement.planner import allocation_account
from accord.domain.ledger.entries import Entry, EntryKind
from accord.domain.ledger.usage import UsageRecord, split_by_month

TOLERANCE_S = 60.0   # Slurm's times are whole seconds; a minute per allocation absorbs the edges


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
    """One allocation at one site (or, ``allocation`` None, the site's usage of a project
    under an agreement that names no allocation's account): Slurm's, Accord's and the
    ledger's GPU-seconds for the period, and the local users Slurm saw."""

    site: str
    allocation: str | None
    project: str
    agreement: str
    account: str
    slurm_gpu_seconds: float
    usage_gpu_seconds: float
    ledger_gpu_seconds: float
    users: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Slurm and Accord's usage agree (the ledger holds only cross-border usage, so it may
        be less, never more); without an allocation, only the ledger is checked."""
        ledger_ok = self.ledger_gpu_seconds <= self.usage_gpu_seconds + TOLERANCE_S
        if self.allocation is None:
            return ledger_ok
        return abs(self.slurm_gpu_seconds - self.usage_gpu_seconds) <= TOLERANCE_S and ledger_ok


def compare_allocations(site: str, period: str, grants: Sequence[SiteGrant],
                        slurm: Iterable[AccountUsage], records: Iterable[UsageRecord],
                        entries: Iterable[Entry]) -> list[AllocationCheck]:
    """One check per allocation at ``site``, then one per (project, agreement) whose usage
    there names no allocation's account."""
    accounts = {allocation_account(g.allocation): g for g in grants}
    in_slurm: dict[str, float] = {}
    users: dict[str, set[str]] = {}
    for u in slurm:
        if u.period == period:
            in_slurm[u.account] = in_slurm.get(u.account, 0.0) + u.gpu_seconds
            users.setdefault(u.account, set()).add(u.user)
    usage, owner = _usage(site, period, records, accounts)
    ledger = _ledger(site, period, entries, owner)
    checks = [AllocationCheck(site, g.allocation, g.project, g.agreement, a, in_slurm.get(a, 0.0),
                              usage.get(a, 0.0), ledger.get(a, 0.0), tuple(sorted(users.get(a, ()))))
              for a, g in sorted(accounts.items(), key=lambda kv: kv[1].allocation)]
    loose = sorted(k for k in set(usage) | set(ledger) if isinstance(k, tuple))
    return checks + [AllocationCheck(site, None, k[0], k[1], "", 0.0, usage.get(k, 0.0), ledger.get(k, 0.0))
                     for k in loose]


Key = str | tuple[str, str]   # an allocation's account, or (project, agreement) for the rest


def _key(r: UsageRecord, accounts: Mapping[str, SiteGrant]) -> Key:
    if r.account and r.account in accounts:
        return r.account
    return (r.project, r.agreement or "")


def _usage(site: str, period: str, records: Iterable[UsageRecord], accounts: Mapping[str, SiteGrant]
           ) -> tuple[dict[Key, float], dict[str, Key]]:
    """GPU-seconds in ``period`` by key, and each record's key by record id."""
    out: dict[Key, float] = {}
    owner: dict[str, Key] = {}
    for r in records:
        if r.site == site and r.agreement:
            key = owner[r.id] = _key(r, accounts)
            share = sum(s.gpu_seconds for s in split_by_month(r) if s.period == period)
            out[key] = out.get(key, 0.0) + share
    return out, owner


def _ledger(site: str, period: str, entries: Iterable[Entry], owner: Mapping[str, Key]) -> dict[Key, float]:
    """The ledger's GPU-seconds in ``period`` by the key of the usage record each entry charges."""
    out: dict[Key, float] = {}
    for e in entries:
        if e.site == site and e.period == period and e.kind is EntryKind.USAGE:
            key = owner.get(e.usage_id or "", (e.project, e.agreement))
            out[key] = out.get(key, 0.0) + float(e.gpu_seconds or Decimal(0))
    return out
