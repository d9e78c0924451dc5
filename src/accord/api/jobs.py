"""Job routes: submit (through the gate and the group committer), preview, list, show,
cancel and logs; each checks what the caller may do with the job."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, job_facts, job_for, note_audit, partners_of
from accord.api.preview import preview_doc
from accord.domain.access.rules import Principal, TokenScope, can_change_job, can_read_job, can_read_logs
from accord.domain.jobs import codec
from accord.domain.jobs.model import Job, JobState
from accord.service.services import Services

LIST_PAGES = 20   # a filtered job list reads at most this many pages of the store

router = APIRouter(tags=["jobs"])


class JobSubmission(BaseModel):
    """A job as submitted; semantic checks against the federation follow."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128)
    command: list[str] | None = Field(None, min_length=1, max_length=1000)
    script: str | None = Field(None, max_length=1_000_000)
    gpus: int = Field(1, ge=1, le=1_000_000)
    gpu_model: str | None = Field(None, max_length=64)
    time_limit: int | str = Field(3600, description="seconds, or '30m', '2h', 'HH:MM:SS'")
    project: str | None = Field(None, max_length=63)
    partner: str | None = Field(None, max_length=63)
    theme: str | None = Field(None, max_length=63)
    earliest_start: str | None = Field(None, max_length=64)
    deadline: str | None = Field(None, max_length=64)
    data_residency: list[str] | None = Field(None, max_length=300)
    site: str | None = Field(None, max_length=63)


@router.post("/api/v1/jobs", status_code=201, responses={
    200: {"description": "the job an earlier request with this Idempotency-Key and spec made"}})
async def submit(
    body: JobSubmission, request: Request, response: Response, s: Svc, p: Caller,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    note_audit(request, "job.submit", "job (new)")
    shaped = s.gate.shape(p, body.model_dump(exclude_none=True))
    new, spec_hash = s.broker.new_submission(shaped.doc, p.user, idempotency_key,
                                             sector=shaped.sector, notes=shaped.notes)
    job = await asyncio.wrap_future(s.committer.submit(new, spec_hash))
    note_audit(request, "job.submit", f"job {job.id}", partners_of(job, s.broker.federation))
    if job.id != new.id:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return codec.encode_job(job)


@router.post("/api/v1/jobs/preview")
def preview(body: JobSubmission, s: Svc, p: Caller) -> dict[str, Any]:
    """What a job would cost, where and when it would run, and which rules would apply
    (nothing is stored)."""
    shaped = s.gate.shape(p, body.model_dump(exclude_none=True))
    job, _ = s.broker.new_submission(shaped.doc, p.user, sector=shaped.sector, notes=shaped.notes)
    return preview_doc(s.broker, s.gate, job, list(shaped.notes))


@router.get("/api/v1/jobs")
def list_jobs(
    s: Svc, p: Caller,
    state: Annotated[list[JobState] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    return {"jobs": [codec.encode_job(j, with_story=False)
                     for j in _visible_jobs(s, p, state, limit, before)]}


@router.get("/api/v1/jobs/{job_id}")
def show(job_id: str, s: Svc, p: Caller) -> dict[str, Any]:
    return codec.encode_job(job_for(s, p, job_id))


@router.post("/api/v1/jobs/{job_id}/cancel")
def cancel(job_id: str, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "job.cancel", f"job {job_id}")
    job = job_for(s, p, job_id, can_change_job)
    note_audit(request, "job.cancel", f"job {job_id}", partners_of(job, s.broker.federation))
    return codec.encode_job(s.broker.cancel(job_id, f"cancelled by {p.user}"))


@router.get("/api/v1/jobs/{job_id}/logs")
def logs(job_id: str, s: Svc, p: Caller) -> dict[str, str]:
    job_for(s, p, job_id, can_read_logs)
    out = s.broker.logs(job_id)
    return {"stdout": out.stdout, "stderr": out.stderr}


def _visible_jobs(s: Services, p: Principal, state: list[JobState] | None, limit: int,
                  before: str | None) -> list[Job]:
    """Newest first, the jobs ``p`` may see, reading the store page by page."""
    broker = s.broker
    if not p.allows(TokenScope.JOBS_READ):
        return []     # a token without jobs:read lists no job, the admin's neither
    if p.is_admin:
        return broker.store.list_jobs(state, limit=limit, before=before)
    out: list[Job] = []
    for _ in range(LIST_PAGES):
        page = broker.store.list_jobs(state, limit=limit, before=before)
        out.extend(j for j in page if can_read_job(p, job_facts(j, broker.federation)).allowed)
        if len(page) < limit or len(out) >= limit:
            break
        before = page[-1].id
    return out[:limit]
