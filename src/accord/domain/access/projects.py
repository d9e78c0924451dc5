"""Users, projects and allocations: the records and their rules (pure).

A project has a PI, members, a theme and a home partner. It applies for an
allocation under an agreement: an amount in normalised units at a granting (host)
partner, for a period of months, optionally limited to some of the host's sites. A
programme officer of the granting partner approves or refuses it, with a reason.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import date, datetime

from accord.domain.access.rules import Affiliation, Grant
from accord.domain.errors import Conflict, InvalidInput, Problem
from accord.domain.federation.model import Federation

IDENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
IDENT_ALLOWED = ("1–63 characters: lower-case letters, digits, '.', '_' or '-', "
                 "starting with a letter or digit")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class User:
    """An enrolled person (or service account)."""

    id: str
    name: str
    email: str | None
    institution: str           # primary
    oidc_issuer: str | None = None
    oidc_subject: str | None = None
    affiliations: tuple[Affiliation, ...] = ()   # extra ones: secondments, placements
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True, slots=True)
class Project:
    """A research project."""

    id: str
    name: str
    pi: str
    partner: str
    theme: str | None
    members: frozenset[str]
    created_at: datetime


class AllocationState(enum.Enum):
    """Where an application stands."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"
    REVOKED = "revoked"     # was approved; withdrawn by the granting partner (no new jobs)


@dataclass(frozen=True, slots=True)
class Allocation:
    """An amount of a host partner's compute granted (or asked for) under an agreement."""

    id: str
    project: str
    agreement: str
    host: str
    units: float
    start: str           # YYYY-MM, first month
    end: str             # YYYY-MM, last month
    sites: tuple[str, ...]
    state: AllocationState
    requested_by: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None

    def covers(self, day: date) -> bool:
        """Approved, and ``day`` falls in its months."""
        month = f"{day.year:04d}-{day.month:02d}"
        return self.state is AllocationState.APPROVED and self.start <= month <= self.end


def check_ident(value: str, where: str) -> None:
    """Raises:
        InvalidInput: ``value`` is not a valid id."""
    if not IDENT.match(value):
        raise InvalidInput([Problem(where, "is not a valid id", value[:80], IDENT_ALLOWED)])


def validate_application(fed: Federation, project: Project, agreement: str, host: str, units: float,
                         start: str, end: str, sites: tuple[str, ...]) -> None:
    """Check an application against the federation.

    Raises:
        InvalidInput: every problem (unknown agreement, one that does not cover the
            project's theme, a host not party to it, the project's own partner as host,
            months outside the agreement, sites not the host's).
    """
    problems: list[Problem] = []
    agreement_ids = [a.id for a in fed.agreements]
    if agreement not in agreement_ids:
        raise InvalidInput([Problem("agreement", "names an unknown agreement", agreement,
                                    ", ".join(agreement_ids))])
    a = fed.agreement(agreement)
    if project.partner not in a.parties:
        problems.append(Problem("agreement", f"project {project.id}'s partner is not a party to it",
                                agreement, ", ".join(a.parties)))
    if a.themes and project.theme not in a.themes:
        problems.append(Problem("agreement", f"covers themes {', '.join(a.themes)}, not the project's theme",
                                project.theme or "(no theme)", ", ".join(a.themes)))
    if host not in a.parties or host == project.partner:
        problems.append(Problem("host", "must be another party to the agreement", host,
                                ", ".join(p for p in a.parties if p != project.partner)))
    if not 0 < units <= 1e12:
        problems.append(Problem("units", "must be positive", str(units), "a number of normalised units > 0"))
    for name, month in (("start", start), ("end", end)):
        if not MONTH.match(month):
            problems.append(Problem(name, "is not a month", month, "YYYY-MM"))
    first, last = a.start.isoformat()[:7], a.end.isoformat()[:7]
    if MONTH.match(start) and MONTH.match(end) and not first <= start <= end <= last:
        problems.append(Problem("end", "the months must run forward within the agreement",
                                f"{start}..{end}", f"{first}..{last}"))
    host_sites = [s.id for s in fed.sites if s.partner == host]
    problems.extend(Problem(f"sites[{i}]", "is not a site of the host", s, ", ".join(host_sites))
                    for i, s in enumerate(sites) if s not in host_sites)
    if problems:
        raise InvalidInput(problems)


def decide(allocation: Allocation, approve: bool, by: str, at: datetime, reason: str) -> Allocation:
    """The allocation approved or refused.

    Raises:
        Conflict: it was decided already.
        InvalidInput: a refusal without a reason.
    """
    if allocation.state is not AllocationState.REQUESTED:
        raise Conflict(f"allocation {allocation.id} was already {allocation.state.value}")
    if not approve and not reason.strip():
        raise InvalidInput([Problem("reason", "a refusal needs a reason", reason, "a sentence")])
    state = AllocationState.APPROVED if approve else AllocationState.REFUSED
    return Allocation(allocation.id, allocation.project, allocation.agreement, allocation.host,
                      allocation.units, allocation.start, allocation.end, allocation.sites, state,
                      allocation.requested_by, allocation.requested_at, by, at, reason.strip() or None)


MAX_UNITS = 1e12


def revoke(allocation: Allocation, by: str, at: datetime, reason: str) -> Allocation:
    """The approved allocation withdrawn: no new jobs under it, here or at its sites.

    Raises:
        Conflict: it is not approved.
        InvalidInput: no reason.
    """
    if allocation.state is not AllocationState.APPROVED:
        raise Conflict(f"allocation {allocation.id} is {allocation.state.value}; only an approved one "
                       "can be revoked")
    if not reason.strip():
        raise InvalidInput([Problem("reason", "a revocation needs a reason", reason, "a sentence")])
    return replace(allocation, state=AllocationState.REVOKED, decided_by=by, decided_at=at,
                   reason=reason.strip()[:500])


def increase(allocation: Allocation, more: float, by: str, at: datetime, reason: str) -> Allocation:
    """The approved allocation with ``more`` units.

    Raises:
        Conflict: it is not approved.
        InvalidInput: ``more`` is not positive, or the total would exceed the bound.
    """
    if allocation.state is not AllocationState.APPROVED:
        raise Conflict(f"allocation {allocation.id} is {allocation.state.value}; only an approved one "
                       "can be increased")
    if not 0 < more <= MAX_UNITS or allocation.units + more > MAX_UNITS:
        raise InvalidInput([Problem("units", "must be a positive increase", str(more),
                                    f"a number > 0, the total at most {MAX_UNITS:g}")])
    return replace(allocation, units=allocation.units + float(more), decided_by=by, decided_at=at,
                   reason=reason.strip()[:500] or allocation.reason)
