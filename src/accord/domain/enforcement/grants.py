"""Allocations as a site enforces them (pure): GPU-minutes through the exchange rate of the
site's GPU model, the last day, and whether the account is open to new jobs.

>>> gpu_minutes(10.0, 2.0)
300
>>> gpu_minutes(0.01, 2.0)
0
"""

from __future__ import annotations

import calendar
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from accord.domain.access.projects import Allocation, AllocationState, Project
from accord.domain.errors import NotFound, Problem
from accord.domain.federation.model import Federation

MAX_GRANTS = 2_000        # allocations in one site's desired state
MAX_MEMBERS = 500         # members of one project sent to a site
MAX_GPU_MINUTES = 10**12  # what Slurm's GrpTRESMins takes comfortably


class GrantState(enum.Enum):
    """Whether the allocation's account takes new jobs."""

    OPEN = "open"        # approved, in its months
    CLOSED = "closed"    # revoked, ended or not yet started: no new jobs; never deleted


@dataclass(frozen=True, slots=True)
class SiteGrant:
    """One allocation as one site must enforce it."""

    allocation: str
    project: str
    partner: str              # the project's (visiting) partner
    agreement: str
    members: tuple[str, ...]  # hub user ids, sorted
    gpu_minutes: int
    end: date                 # last day (the end month's last day)
    state: GrantState
    reason: str = ""          # why it is closed


@dataclass(frozen=True, slots=True)
class Unexpressible:
    """An allocation the site cannot express, and why (shown at the hub, retried each sync)."""

    allocation: str
    problem: Problem


def gpu_minutes(units: float, units_per_gpu_hour: float) -> int:
    """Whole GPU-minutes that ``units`` buy at ``units_per_gpu_hour`` (rounded down: a site
    never grants more than the agreement)."""
    if units_per_gpu_hour <= 0:
        return 0
    return min(MAX_GPU_MINUTES, math.floor(units / units_per_gpu_hour * 60 + 1e-9))


def last_day(month: str) -> date:
    """The last day of ``YYYY-MM``.

    >>> last_day("2024-02")
    datetime.date(2024, 2, 29)
    """
    year, mon = int(month[:4]), int(month[5:7])
    return date(year, mon, calendar.monthrange(year, mon)[1])


def site_rate(fed: Federation, site_id: str, day: date) -> tuple[float | None, str]:
    """The exchange rate the site's limits use: the highest rate among its pools' GPU models
    (so GPU-minutes on any of its GPUs never exceed the units), and the model it is of; None
    and the reason when a pool's model has no rate."""
    best: tuple[float | None, str] = (None, "")
    for pool in fed.site(site_id).pools:
        try:
            rate = fed.rate(pool.gpu_model, _noon(day)).units_per_gpu_hour
        except NotFound:
            return None, pool.gpu_model
        if best[0] is None or rate > best[0]:
            best = (rate, pool.gpu_model)
    return best


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def at_site(a: Allocation, fed: Federation, site_id: str) -> bool:
    """Whether the allocation is one the site enforces (approved or revoked, host's, its sites)."""
    if a.state not in (AllocationState.APPROVED, AllocationState.REVOKED):
        return False
    if fed.site(site_id).partner != a.host:
        return False
    return not a.sites or site_id in a.sites


def state_of(a: Allocation, today: date) -> tuple[GrantState, str]:
    """Open or closed on ``today``, with why."""
    if a.state is AllocationState.REVOKED:
        return GrantState.CLOSED, f"revoked: {a.reason or 'no reason given'}"
    if today > last_day(a.end):
        return GrantState.CLOSED, f"ended on {last_day(a.end).isoformat()}"
    if f"{today.year:04d}-{today.month:02d}" < a.start:
        return GrantState.CLOSED, f"starts in {a.start}"
    return GrantState.OPEN, ""


def site_grants(fed: Federation, site_id: str, allocations: Sequence[Allocation],
                projects: Mapping[str, Project], today: date
                ) -> tuple[list[SiteGrant], list[Unexpressible]]:
    """The site's desired state: every allocation it enforces, and those it cannot express
    (an unknown GPU model, units that buy less than one GPU-minute, an unknown project).

    Raises:
        NotFound: ``site_id`` is not in the federation.
    """
    rate, model = site_rate(fed, site_id, today)
    grants: list[SiteGrant] = []
    bad: list[Unexpressible] = []
    for a in [x for x in allocations if at_site(x, fed, site_id)][:MAX_GRANTS]:
        grant = _grant(a, projects.get(a.project), rate, model, today, site_share(fed, a, site_id))
        if isinstance(grant, SiteGrant):
            grants.append(grant)
        else:
            bad.append(grant)
    return grants, bad


def site_share(fed: Federation, a: Allocation, site_id: str) -> float:
    """The part of an allocation's units a site enforces: all of them at its only site; over
    several sites (those it names, or all of the host's), each site's part of their GPUs, so
    the sites' limits together never buy more than the units.
    """
    sites = [s for s in fed.sites if s.partner == a.host and (not a.sites or s.id in a.sites)]
    total = sum(s.total_gpus for s in sites)
    if len(sites) <= 1 or total <= 0:
        return 1.0
    return fed.site(site_id).total_gpus / total


def _grant(a: Allocation, project: Project | None, rate: float | None, model: str,
           today: date, share: float = 1.0) -> SiteGrant | Unexpressible:
    if project is None:
        return Unexpressible(a.id, Problem("project", "is not known at the hub", a.project))
    if rate is None:
        return Unexpressible(a.id, Problem("gpu_model", "has no exchange rate in the federation, "
                                           "so the site cannot turn units into GPU-minutes", model,
                                           "a GPU model with an exchange rate"))
    minutes = gpu_minutes(a.units * share, rate)
    if minutes < 1:
        part = "" if share == 1.0 else f" (this site's {share:.1%} share of them, by GPUs)"
        return Unexpressible(a.id, Problem("units", f"buy less than one GPU-minute of {model}{part} "
                                           f"({rate:g} units per GPU-hour)", f"{a.units:g}",
                                           f"at least {rate / 60 / share:.6g} units"))
    state, reason = state_of(a, today)
    members = tuple(sorted(project.members))[:MAX_MEMBERS]
    return SiteGrant(a.id, a.project, project.partner, a.agreement, members, minutes,
                     last_day(a.end), state, reason)
