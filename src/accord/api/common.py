"""What every route module of the API shares: the services and the caller as FastAPI
dependencies, a JSON object body for a domain parser, problem documents, the audit note a
route leaves for the audit middleware, and finding a job the caller may see."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from accord.domain.access.rules import (
    Access,
    JobFacts,
    Principal,
    TokenScope,
    can_read_job,
    token_scope,
)
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem, Unauthenticated
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job
from accord.service.services import Services

PROBLEM = "application/problem+json"


class ProblemField(BaseModel):
    """One field's problem."""

    field: str
    message: str
    got: str | None = None
    allowed: str | None = None


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    problems: list[ProblemField] | None = None


def _doc(text: str) -> dict[str, Any]:
    return {"model": ProblemDoc, "description": text, "content": {PROBLEM: {}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _doc("no valid credentials"), 403: _doc("not allowed (or not visible)"),
    404: _doc("no such object"), 409: _doc("conflicts with stored state"),
    413: _doc("the request body is over its size limit (named)"),
    422: _doc("invalid input, every problem listed"), 429: _doc("rate-limited; see Retry-After"),
    503: _doc("a dependency is unavailable"),
}


def problem(status: int, title: str, detail: str, problems: list[Problem] | None = None) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if problems:
        body["problems"] = [
            {"field": p.where, "message": p.message, "got": p.got, "allowed": p.allowed}
            for p in problems
        ]
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def utc_instant(value: datetime, field: str) -> datetime:
    """``value``, checked that it can be expressed in UTC, as the store will.

    Raises:
        InvalidInput: it cannot (e.g. year 1 with a positive offset).
    """
    try:
        value.astimezone(UTC)
        return value
    except OverflowError:
        raise InvalidInput([Problem(field, "is out of range", value.isoformat(),
                                    "a time between years 1 and 9999 in UTC")]) from None


def note_audit(request: Request, action: str, target: str, partners: tuple[str, ...] = (),
               detail: str = "") -> None:
    """What the audit middleware records for this request."""
    request.state.audit = (action, target, partners, detail)


def job_facts(job: Job, fed: Federation) -> JobFacts:
    """What the access rules need to know about a job."""
    site = job.placement.site if job.placement else None
    host = next((s.partner for s in fed.sites if s.id == site), None)
    return JobFacts(job.id, job.owner, job.spec.project, job.spec.partner, site, host)


def hidden_job(p: Principal, job_id: str, exc: NotFound | None = None) -> Exception:
    """The error for a job the caller may not see: 404 for an admin (who may see all),
    else 403 with the same words whether or not it exists."""
    if p.is_admin and exc is not None:
        return exc
    return Forbidden(f"job {job_id} does not exist or you may not see it")


# ---------------------------------------------------------------- dependencies
def services_of(request: Request) -> Services:
    """The app's services (:func:`accord.api.app.create_app` keeps them on the app)."""
    return cast(Services, request.app.state.services)


async def services(request: Request) -> Services:
    """The app's services, as a dependency (async: it blocks on nothing, so FastAPI runs it
    in the event loop instead of sending every request through a worker thread for it)."""
    return services_of(request)


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The authenticated caller (also kept on the request for the audit record).

    Raises:
        Unauthenticated: no valid credentials (each failure spends the client address's
            allowance).
        RateLimited: too many failed authentications from the client address.
    """
    s = services_of(request)
    try:
        p = s.access.authenticate(authorization)
    except Unauthenticated:
        s.auth_failures.take(source(request), "failed authentication")
        raise
    request.state.principal = p
    return p


_UNREAD = object()


async def json_object(request: Request) -> dict[str, object]:
    """The request's body, which must be a JSON object, as a plain mapping for a domain
    parser to validate (the route documents its schema itself, e.g. with ``openapi_extra``).

    Raises:
        InvalidInput: at ``body``: missing, not JSON (or not in UTF-8), sent as another
            media type, or not an object.
    """
    allowed = "a JSON object"
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and not (media == "application/json" or (media.startswith("application/")
                                                      and media.endswith("+json"))):
        raise InvalidInput([Problem("body", "must be sent as application/json", media, allowed)])
    raw = await request.body()
    if not raw:
        raise InvalidInput([Problem("body", "is required", None, allowed)])
    doc = getattr(request.state, "json_body", _UNREAD)   # the app's NUL check parsed it already
    if doc is _UNREAD:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):   # ValueError: not JSON, not UTF-8, an int too long
            raise InvalidInput([Problem("body", "is not valid JSON", None, allowed)]) from None
    if not isinstance(doc, dict):
        raise InvalidInput([Problem("body", "must be a JSON object", type(doc).__name__, allowed)])
    return doc


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(caller)]
JsonObject = Annotated[dict[str, object], Depends(json_object)]


def source(request: Request) -> str:
    """The client's address, as far as it is known."""
    return request.client.host if request.client else "?"


# ---------------------------------------------------------------- jobs
def job_for(s: Services, p: Principal, job_id: str,
            rule: Callable[[Principal, JobFacts], Access] = can_read_job) -> Job:
    """The job, if ``p`` may see it and ``rule`` allows; a job they may not see is
    refused in the same words whether or not it exists."""
    if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
        refusal.require()    # says which scope is missing: it depends on no job
    try:
        job = s.broker.store.get_job(job_id)
    except NotFound as exc:
        raise hidden_job(p, job_id, exc) from None
    facts = job_facts(job, s.broker.federation)
    if not can_read_job(p, facts).allowed:
        raise hidden_job(p, job_id)
    rule(p, facts).require()
    return job


def partners_of(job: Job, fed: Federation) -> tuple[str, ...]:
    """The job's requester and host partners, for its audit records."""
    facts = job_facts(job, fed)
    return tuple(sorted({x for x in (facts.requester, facts.host) if x}))
