"""The enforcement part of the agent protocol (pure): the desired state the hub serves an
agent (``GET /api/agent/v1/enforcement``) and what the agent reports back
(``POST /api/agent/v1/enforcement``), with their bounds. Parsers name every bad field.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from accord.domain.access.projects import IDENT, IDENT_ALLOWED
from accord.domain.enforcement.grants import MAX_GRANTS, MAX_MEMBERS, GrantState, SiteGrant, Unexpressible
from accord.domain.enforcement.identity import LinkState
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.errors import InvalidInput, Problem
from accord.domain.fieldreader import E, FieldReader

MAX_LINKS = 5_000      # identities in one report
MAX_DRIFT = 200        # drift lines in one report
MAX_TEXT = 500         # characters of a reason or a drift line
MAX_ID = 120           # characters of an id or a username
MAX_USAGE = 5_000      # per-account usage lines in one report


class GrantStatus(enum.Enum):
    """Whether an allocation's account at the site is as the hub wants it."""

    PENDING = "pending"   # not yet made (the next sync does)
    OK = "ok"             # made, with its limits
    ERROR = "error"       # the site could not make it (the reason says why); retried


@dataclass(frozen=True, slots=True)
class Link:
    """A visitor's local identity at a site, as the agent reports it."""

    user: str
    local_user: str
    state: LinkState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GrantReport:
    """An allocation's account at a site, as the agent reports it."""

    allocation: str
    status: GrantStatus
    account: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SiteReport:
    """One sync's outcome at a site."""

    links: tuple[Link, ...] = ()
    grants: tuple[GrantReport, ...] = ()
    drift: tuple[str, ...] = ()
    error: str = ""     # the sync as a whole failed (e.g. the controller is down)
    usage: tuple[AccountUsage, ...] = ()   # Slurm's own totals per account and user


def desired_doc(grants: Sequence[SiteGrant], bad: Sequence[Unexpressible]) -> dict[str, Any]:
    """The JSON the hub serves."""
    return {"grants": [{"allocation": g.allocation, "project": g.project, "partner": g.partner,
                        "agreement": g.agreement, "members": list(g.members),
                        "gpu_minutes": g.gpu_minutes, "end": g.end.isoformat(),
                        "state": g.state.value, "reason": g.reason} for g in grants],
            "unexpressible": [{"allocation": u.allocation, "field": u.problem.where,
                               "reason": str(u.problem)} for u in bad]}


def _member(d: Mapping[str, Any], key: str, kind: type[E], where: str, problems: list[Problem]) -> E | None:
    """``d[key]`` as a member of the enum ``kind`` (:meth:`FieldReader.choice`); None, and a
    problem naming the values allowed, if it is not one."""
    reader = FieldReader()
    found = reader.choice(d, key, where, kind)
    problems.extend(reader.problems)
    return found


def _text(d: Mapping[str, Any], key: str, where: str, problems: list[Problem], limit: int = MAX_ID,
          required: bool = True) -> str:
    v = d.get(key, "" if not required else None)
    if not isinstance(v, str) or (required and not v) or len(v) > limit or "\x00" in v:
        problems.append(Problem(f"{where}.{key}", "must be a string" + (" (not empty)" if required else ""),
                                str(v)[:80], f"at most {limit} characters"))
        return ""
    return v


def _list(doc: object, key: str, limit: int) -> list[Any]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key, []), list):
        raise InvalidInput([Problem(key, "must be a list in a JSON object", str(doc)[:80])])
    items = list(doc.get(key, []))
    if len(items) > limit:
        raise InvalidInput([Problem(key, "has too many items", str(len(items)), f"at most {limit}")])
    return items


def parse_desired(doc: object) -> list[SiteGrant]:
    """The agent's reading of the hub's desired state.

    Raises:
        InvalidInput: a malformed document (every bad field named).
    """
    problems: list[Problem] = []
    grants = [_grant(d, f"grants[{i}]", problems) for i, d in enumerate(_list(doc, "grants", MAX_GRANTS))]
    if problems:
        raise InvalidInput(problems[:50])
    return [g for g in grants if g is not None]


def _grant(d: object, w: str, problems: list[Problem]) -> SiteGrant | None:
    if not isinstance(d, Mapping):
        problems.append(Problem(w, "must be an object", str(d)[:80]))
        return None
    texts = [_text(d, k, w, problems) for k in ("allocation", "project", "partner", "agreement")]
    problems.extend(Problem(f"{w}.{k}", "cannot name a Slurm account", v[:80], IDENT_ALLOWED)
                    for k, v in zip(("allocation", "project", "partner"), texts, strict=False)
                    if v and not IDENT.match(v))
    members = d.get("members")
    minutes = d.get("gpu_minutes")
    if not isinstance(members, list) or len(members) > MAX_MEMBERS or \
            not all(isinstance(m, str) and 0 < len(m) <= MAX_ID for m in members):
        problems.append(Problem(f"{w}.members", "must be a list of user ids", str(members)[:80]))
        members = []
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
        problems.append(Problem(f"{w}.gpu_minutes", "must be a whole number ≥ 1", str(minutes)[:40]))
    try:
        end, state = date.fromisoformat(str(d.get("end"))), GrantState(d.get("state"))
    except ValueError:
        problems.append(Problem(f"{w}.end", "needs an ISO date and a state",
                                f"{d.get('end')}/{d.get('state')}", "YYYY-MM-DD; open or closed"))
        return None
    if problems:
        return None
    allocation, project, partner, agreement = texts
    return SiteGrant(allocation, project, partner, agreement, tuple(members), int(str(minutes)), end,
                     state, str(d.get("reason", ""))[:MAX_TEXT])


def report_doc(r: SiteReport) -> dict[str, Any]:
    """The JSON the agent sends."""
    return {"links": [{"user": x.user, "local_user": x.local_user, "state": x.state.value,
                       "reason": x.reason[:MAX_TEXT]} for x in r.links],
            "grants": [{"allocation": g.allocation, "status": g.status.value, "account": g.account,
                        "reason": g.reason[:MAX_TEXT]} for g in r.grants],
            "drift": [line[:MAX_TEXT] for line in r.drift[:MAX_DRIFT]], "error": r.error[:MAX_TEXT],
            "usage": [{"period": u.period, "account": u.account, "user": u.user,
                       "gpu_seconds": u.gpu_seconds, "jobs": u.jobs} for u in r.usage[:MAX_USAGE]]}


def parse_report(doc: object) -> SiteReport:
    """The hub's reading of an agent's report.

    Raises:
        InvalidInput: a malformed report (every bad field named).
    """
    problems: list[Problem] = []
    links = [_link(d, f"links[{i}]", problems) for i, d in enumerate(_list(doc, "links", MAX_LINKS))]
    grants = [_grant_report(d, f"grants[{i}]", problems)
              for i, d in enumerate(_list(doc, "grants", MAX_GRANTS))]
    drift = [str(x)[:MAX_TEXT] for x in _list(doc, "drift", MAX_DRIFT)]
    error = str(doc.get("error", ""))[:MAX_TEXT] if isinstance(doc, Mapping) else ""
    usage = [_usage(d, f"usage[{i}]", problems) for i, d in enumerate(_list(doc, "usage", MAX_USAGE))]
    if problems:
        raise InvalidInput(problems[:50])
    return SiteReport(tuple(x for x in links if x), tuple(g for g in grants if g), tuple(drift), error,
                      tuple(u for u in usage if u))


def _usage(d: object, w: str, problems: list[Problem]) -> AccountUsage | None:
    if not isinstance(d, Mapping):
        problems.append(Problem(w, "must be an object", str(d)[:80]))
        return None
    period, account = _text(d, "period", w, problems, 7), _text(d, "account", w, problems)
    user = _text(d, "user", w, problems)
    seconds, jobs = d.get("gpu_seconds"), d.get("jobs")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds < 1e15 \
            or not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0:
        problems.append(Problem(f"{w}.gpu_seconds", "must be numbers ≥ 0", f"{seconds}/{jobs}"[:80],
                                "gpu_seconds and jobs"))
        return None
    return AccountUsage(period, account, user, float(seconds), jobs)


def _link(d: object, w: str, problems: list[Problem]) -> Link | None:
    if not isinstance(d, Mapping):
        problems.append(Problem(w, "must be an object", str(d)[:80]))
        return None
    user, local = _text(d, "user", w, problems), _text(d, "local_user", w, problems, required=False)
    state = _member(d, "state", LinkState, w, problems)
    if state is None:
        return None
    return Link(user, local, state, _text(d, "reason", w, problems, MAX_TEXT, required=False))


def _grant_report(d: object, w: str, problems: list[Problem]) -> GrantReport | None:
    if not isinstance(d, Mapping):
        problems.append(Problem(w, "must be an object", str(d)[:80]))
        return None
    allocation = _text(d, "allocation", w, problems)
    status = _member(d, "status", GrantStatus, w, problems)
    if status is None:
        return None
    return GrantReport(allocation, status, _text(d, "account", w, problems, required=False),
                       _text(d, "reason", w, problems, MAX_TEXT, required=False))


class LinkKind(enum.Enum):
    """What a stored line of a site's enforcement state is about."""

    IDENTITY = "identity"   # subject: a hub user id; value: the local user
    GRANT = "grant"         # subject: an allocation id; value: the Slurm account
    SYNC = "sync"           # subject "": the last sync (state ok/error; reason: the error)
    DRIFT = "drift"         # subject "": the drift lines of the last sync, one a line
    USAGE = "usage"         # subject "PERIOD|ACCOUNT|USER": value GPU-seconds, state the job count


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One stored line of what a site's agent said."""

    site: str
    kind: LinkKind
    subject: str
    state: str
    value: str
    reason: str
    updated_at: datetime
