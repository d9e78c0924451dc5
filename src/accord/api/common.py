"""What every route module of the API shares: problem documents, the caller, and the
audit note a route leaves for the audit middleware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from accord.domain.access.rules import JobFacts, Principal
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job

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
