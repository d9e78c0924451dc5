"""Access routes: the caller, API tokens, users and roles, projects, allocations,
compliance holds and the audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, note_audit, source, utc_instant
from accord.domain.access.audit import AuditRecord
from accord.domain.access.projects import Allocation, AllocationState, Project, User
from accord.domain.access.rules import (
    Affiliation,
    AffiliationKind,
    Grant,
    Principal,
    Role,
    ScopeKind,
    can_decide_compliance,
    can_read_compliance,
)
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, Hold, HoldKind, Job, JobState
from accord.ports import StoredToken
from accord.service.broker import Broker

ID = r"^[a-z0-9][a-z0-9._-]{0,62}$"
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"

router = APIRouter()


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenRequest(_Body):
    """A new API token: a name, scopes and a lifetime in days."""

    name: str = Field(..., min_length=1, max_length=200)
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(..., min_length=1, max_length=20)
    days: int = Field(30, ge=1, le=366)
    for_user: str | None = Field(None, max_length=64, description="admins: mint it for this user")


class UserRequest(_Body):
    """A user to enrol."""

    id: str = Field(..., pattern=ID)
    name: str = Field(..., min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    institution: str = Field(..., min_length=1, max_length=64)
    oidc_issuer: str | None = Field(None, max_length=500)
    oidc_subject: str | None = Field(None, max_length=500)


class AffiliationRequest(_Body):
    """A secondment or placement."""

    institution: str = Field(..., min_length=1, max_length=64)
    kind: AffiliationKind
    start: date
    end: date


class GrantRequest(_Body):
    """A role for a user, scoped."""

    role: Role
    scope: ScopeKind
    target: str = Field("", max_length=64)


class ProjectRequest(_Body):
    """A new project, led by the caller."""

    id: str = Field(..., pattern=ID)
    name: str = Field(..., min_length=1, max_length=200)
    partner: str = Field(..., min_length=1, max_length=64)
    theme: str | None = Field(None, max_length=64)


class MemberRequest(_Body):
    """A user to add to a project."""

    user: str = Field(..., min_length=1, max_length=64)


class AllocationRequest(_Body):
    """An application for an allocation under an agreement."""

    agreement: str = Field(..., min_length=1, max_length=64)
    host: str = Field(..., min_length=1, max_length=64)
    units: float = Field(..., gt=0, le=1e12)
    start: str = Field(..., pattern=MONTH)
    end: str = Field(..., pattern=MONTH)
    sites: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=100)


class Revocation(_Body):
    """Withdraw an approved allocation, with a reason."""

    reason: str = Field(..., min_length=1, max_length=2000)


class Increase(_Body):
    """Add units to an approved allocation."""

    units: float = Field(..., gt=0, le=1e12)
    reason: str = Field("", max_length=2000)


class Decision(_Body):
    """Approve or refuse, with a reason (required to refuse)."""

    approve: bool
    reason: str = Field("", max_length=2000)


@router.get("/api/v1/me", tags=["access"])
def me(s: Svc, p: Caller) -> dict[str, Any]:
    today = s.access.clock.now().date()
    return {"user": p.user, "name": p.name, "via": p.via,
            "partners": sorted(p.partners(today)),
            "affiliations": [_affiliation(a) for a in p.affiliations],
            "roles": [{"role": g.role.value, "scope": g.scope.value, "target": g.target}
                      for g in p.grants],
            "projects": sorted(p.member_of), "pi_of": sorted(p.pi_of),
            "scopes": None if p.scopes is None else sorted(x.value for x in p.scopes)}


# ---------------------------------------------------------------- tokens
@router.post("/api/v1/tokens", status_code=201, tags=["access"])
def create_token(body: TokenRequest, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "token.create", f"user {p.user}", (), body.name)
    new = s.access.create_token(p, body.name, body.scopes, body.days, source(request), body.for_user)
    note_audit(request, "token.create", f"token {new.token.id}", (), body.name)
    return {**_token(new.token), "token": new.secret,
            "note": "shown once: Accord keeps only a hash of it"}


@router.get("/api/v1/tokens", tags=["access"])
def list_tokens(request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    return {"tokens": [_token(t) for t in s.access.tokens(p, source(request))]}


@router.delete("/api/v1/tokens/{token_id}", tags=["access"])
def revoke_token(token_id: str, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "token.revoke", f"token {token_id[:40]}")
    return _token(s.access.revoke_token(p, token_id, source(request)))


# ---------------------------------------------------------------- users
@router.post("/api/v1/users", status_code=201, tags=["access"])
def enrol(body: UserRequest, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "user.enrol", f"user {body.id}")
    return _user(s.access.enrol(p, User(body.id, body.name, body.email, body.institution,
                                      body.oidc_issuer, body.oidc_subject)))


@router.get("/api/v1/users/{user_id}", tags=["access"])
def user(user_id: str, s: Svc, p: Caller) -> dict[str, Any]:
    return _user(s.access.user(p, user_id))


@router.post("/api/v1/users/{user_id}/affiliations", status_code=201, tags=["access"])
def affiliate(user_id: str, body: AffiliationRequest, request: Request,
              s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "user.affiliate", f"user {user_id}", (), f"{body.kind.value} {body.institution}")
    return _user(s.access.add_affiliation(p, user_id, Affiliation(body.institution, "", body.kind,
                                                                body.start, body.end)))


@router.post("/api/v1/users/{user_id}/grants", status_code=201, tags=["access"])
def grant(user_id: str, body: GrantRequest, request: Request,
          s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "user.grant", f"user {user_id}", (),
               f"{body.role.value} {body.scope.value} {body.target}")
    return _user(s.access.grant(p, user_id, Grant(body.role, body.scope, body.target)))


# ---------------------------------------------------------------- projects
@router.post("/api/v1/projects", status_code=201, tags=["projects"])
def create_project(body: ProjectRequest, request: Request,
                   s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "project.create", f"project {body.id}", (body.partner[:64],))
    return _project(s.access.create_project(p, body.id, body.name, body.partner, body.theme))


@router.get("/api/v1/projects", tags=["projects"])
def projects(s: Svc, p: Caller) -> dict[str, Any]:
    return {"projects": [_project(x) for x in s.access.projects(p)]}


@router.get("/api/v1/projects/{project_id}", tags=["projects"])
def project(project_id: str, s: Svc, p: Caller) -> dict[str, Any]:
    found = s.access.project(p, project_id)
    return {**_project(found), "allocations": [_allocation(a) for a in s.access.allocations(p, project_id)]}


@router.post("/api/v1/projects/{project_id}/members", status_code=201, tags=["projects"])
def add_member(project_id: str, body: MemberRequest, request: Request,
               s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "project.member", f"project {project_id}", (), f"add {body.user}")
    return _project(s.access.add_member(p, project_id, body.user))


@router.delete("/api/v1/projects/{project_id}/members/{user_id}", tags=["projects"])
def remove_member(project_id: str, user_id: str, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "project.member", f"project {project_id}", (), f"remove {user_id[:64]}")
    return _project(s.access.remove_member(p, project_id, user_id))


@router.post("/api/v1/projects/{project_id}/allocations", status_code=201, tags=["projects"])
def apply(project_id: str, body: AllocationRequest, request: Request,
          s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "allocation.apply", f"project {project_id}", (body.host[:64],))
    a = s.access.apply(p, project_id, body.agreement, body.host, body.units, body.start, body.end,
                     tuple(body.sites))
    note_audit(request, "allocation.apply", f"allocation {a.id}", (a.host,),
               f"{a.units:g} units under {a.agreement}")
    return _allocation(a)


@router.get("/api/v1/allocations", tags=["projects"])
def allocations(s: Svc, p: Caller,
                project: Annotated[str | None, Query(max_length=64)] = None,
                state: AllocationState | None = None) -> dict[str, Any]:
    found = s.access.allocations(p, project)
    return {"allocations": [_allocation(a) for a in found if state is None or a.state is state]}


@router.post("/api/v1/allocations/{allocation_id}/decision", tags=["projects"])
def decide(allocation_id: str, body: Decision, request: Request,
           s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "allocation.decide", f"allocation {allocation_id[:40]}", (),
               f"{'approve' if body.approve else 'refuse'}: {body.reason}"[:500])
    a = s.access.decide(p, allocation_id, body.approve, body.reason)
    note_audit(request, "allocation.decide", f"allocation {a.id}", (a.host,),
               f"{a.state.value}: {body.reason}"[:500])
    if a.state is AllocationState.APPROVED:
        s.broker.allocation_approved(a.id, a.project, a.units, a.agreement)
    return _allocation(a)


@router.post("/api/v1/allocations/{allocation_id}/revoke", tags=["projects"])
def revoke(allocation_id: str, body: Revocation, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Withdraw an approved allocation: its sites close its account to new jobs."""
    note_audit(request, "allocation.revoke", f"allocation {allocation_id[:40]}", (), body.reason[:500])
    a = s.access.revoke(p, allocation_id, body.reason)
    note_audit(request, "allocation.revoke", f"allocation {a.id}", (a.host,), f"revoked: {body.reason}"[:500])
    return _allocation(a)


@router.post("/api/v1/allocations/{allocation_id}/increase", tags=["projects"])
def increase(allocation_id: str, body: Increase, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Add units to an approved allocation: its sites raise its limit at their next sync."""
    note_audit(request, "allocation.increase", f"allocation {allocation_id[:40]}", (),
               f"+{body.units:g} units: {body.reason}"[:500])
    a = s.access.increase(p, allocation_id, body.units, body.reason)
    note_audit(request, "allocation.increase", f"allocation {a.id}", (a.host,),
               f"+{body.units:g} units, now {a.units:g}: {body.reason}"[:500])
    s.broker.allocation_approved(a.id, a.project, a.units, a.agreement)
    return _allocation(a)


# ---------------------------------------------------------------- compliance
@router.get("/api/v1/compliance", tags=["compliance"])
def compliance(s: Svc, p: Caller) -> dict[str, Any]:
    can_read_compliance(p).require()
    held = s.broker.store.list_jobs([JobState.HELD], limit=1000)
    return {"held": [_held(j, h) for j in held
                     if (h := _hold(j)) is not None and _sees_hold(p, j, h.site or "", s.broker)]}


@router.post("/api/v1/compliance/{job_id}/decision", tags=["compliance"])
def decide_compliance(job_id: str, body: Decision, request: Request,
                      s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "compliance.decide", f"job {job_id[:40]}", (),
               f"{'approve' if body.approve else 'refuse'}: {body.reason}"[:500])
    hidden = f"job {job_id} is not held for compliance review, or not at a site you operate"
    try:
        job = s.broker.store.get_job(job_id)
    except NotFound:
        raise Forbidden(hidden) from None
    hold = _hold(job)
    if hold is None:
        raise Forbidden(hidden) if not p.is_admin else InvalidInput(
            [Problem("job", "is not held for compliance review", job_id, "a held job")])
    site, rule = hold.site or "", hold.rule
    can_decide_compliance(p, site).require(hidden)
    if not body.approve and not body.reason.strip():
        raise InvalidInput([Problem("reason", "a refusal needs a reason", body.reason, "a sentence")])
    s.access.store.decide_compliance(job_id, site, rule, body.approve, p.user, s.access.clock.now(),
                                   body.reason.strip() or "approved")
    host = s.broker.federation.site(site).partner
    note_audit(request, "compliance.decide", f"job {job_id}",
               tuple(sorted({host, job.spec.partner or host})),
               f"{'approved' if body.approve else 'refused'} at {site} under {rule}: {body.reason}"[:500])
    released = s.broker.compliance_decided(job_id, body.approve, p.user, site,
                                           body.reason.strip() or "approved")
    return codec.encode_job(released)


# ---------------------------------------------------------------- audit
@router.get("/api/v1/audit", tags=["audit"])
def audit(s: Svc, p: Caller, actor: Annotated[str | None, Query(max_length=64)] = None,
          action: Annotated[str | None, Query(max_length=100)] = None,
          since: datetime | None = None, after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
          limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> dict[str, Any]:
    """Audit records the caller may read, oldest first; ``spooled``: how many records the
    database has not taken yet (kept in the server's spool file, retried until it does)."""
    s.audit.flush()
    since = utc_instant(since, "since") if since is not None else None
    return {"records": [_audit(r) for r in s.access.audit(p, actor=actor, action=action, since=since,
                                                        limit=limit, after=after)],
            "spooled": s.audit.spooled}


def _last_hold(job: Job) -> Event | None:
    """The story's line that put the job on hold most recently (its words and time), if any."""
    return next((e.event for e in reversed(job.story) if e.event.kind is EventKind.HOLD), None)


def _hold(job: Job) -> Hold | None:
    """The job's compliance hold, if it is held for a compliance review."""
    h = job.hold if job.state is JobState.HELD else None
    return h if h is not None and h.kind is HoldKind.COMPLIANCE else None


def _sees_hold(p: Principal, job: Job, site: str, broker: Broker) -> bool:
    host = broker.federation.site(site).partner
    if p.is_admin or any(g.role is Role.AUDITOR and (g.scope is ScopeKind.GLOBAL or g.target in
                                                     (host, job.spec.partner)) for g in p.grants):
        return True
    return p.holds(Role.SITE_OPERATOR, site) or p.holds(Role.PROGRAMME_OFFICER, host)


def _held(job: Job, hold: Hold) -> dict[str, Any]:
    last = _last_hold(job)
    assert last is not None
    return {"job": job.id, "owner": job.owner, "project": job.spec.project, "requester": job.spec.partner,
            "site": hold.site, "rule": hold.rule, "reason": last.reason, "held_at": last.at.isoformat(),
            "gpus": job.spec.gpus, "time_limit_s": job.spec.time_limit_s}


def _affiliation(a: Affiliation) -> dict[str, Any]:
    return {"institution": a.institution, "partner": a.partner, "kind": a.kind.value,
            "start": a.start.isoformat() if a.start else None, "end": a.end.isoformat() if a.end else None}


def _token(t: StoredToken) -> dict[str, Any]:
    return {"id": t.id, "user": t.user, "name": t.name, "scopes": sorted(s.value for s in t.scopes),
            "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}


def _user(u: User) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "email": u.email, "institution": u.institution,
            "oidc_issuer": u.oidc_issuer, "oidc_subject": u.oidc_subject,
            "affiliations": [_affiliation(a) for a in u.affiliations],
            "roles": [{"role": g.role.value, "scope": g.scope.value, "target": g.target} for g in u.grants]}


def _project(x: Project) -> dict[str, Any]:
    return {"id": x.id, "name": x.name, "pi": x.pi, "partner": x.partner, "theme": x.theme,
            "members": sorted(x.members), "created_at": x.created_at.isoformat()}


def _allocation(a: Allocation) -> dict[str, Any]:
    return {"id": a.id, "project": a.project, "agreement": a.agreement, "host": a.host, "units": a.units,
            "start": a.start, "end": a.end, "sites": list(a.sites), "state": a.state.value,
            "requested_by": a.requested_by, "requested_at": a.requested_at.isoformat(),
            "decided_by": a.decided_by, "decided_at": a.decided_at.isoformat() if a.decided_at else None,
            "reason": a.reason}


def _audit(r: AuditRecord) -> dict[str, Any]:
    return {"seq": r.seq, "at": r.at.isoformat(), "actor": r.actor, "via": r.via, "action": r.action,
            "target": r.target, "partners": list(r.partners), "outcome": r.outcome.value,
            "status": r.status, "source": r.source, "detail": r.detail}

