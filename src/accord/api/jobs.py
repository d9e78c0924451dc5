"""Job routes: submit and preview (through :class:`~accord.service.submissions.Submissions`,
the one path of a submission), list, show, cancel and logs; each checks what the caller may
do with the job."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from accord.api.common import Caller, JsonObject, Svc, job_facts, job_for, note_audit, partners_of
from accord.api.preview import preview_doc
from accord.domain.access.rules import Principal, TokenScope, can_change_job, can_read_job, can_read_logs
from accord.domain.jobs import codec
from accord.domain.jobs.fields import request_schema
from accord.domain.jobs.model import Job, JobState
from accord.service.services import Services

LIST_PAGES = 20   # a filtered job list reads at most this many pages of the store

router = APIRouter(tags=["jobs"])


#: The request body of submit and preview, documented with the schema derived from the
#: job's declared fields; the body is validated once, by the domain's parser.
JOB_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": request_schema()}}}}


@router.post("/api/v1/jobs", status_code=201, openapi_extra=JOB_BODY, response_model=dict[str, Any],
             responses={200: {"description": "the job an earlier request with this Idempotency-Key and "
                                             "spec made"}})
async def submit(
    request: Request, s: Svc, p: Caller, body: JsonObject,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Submit a job (:meth:`accord.service.submissions.Submissions.submit_async`): 201 and the
    new job, or 200 and the job an earlier request with the same key made."""
    note_audit(request, "job.submit", "job (new)")
    if body.get("inputs"):
        await run_in_threadpool(s.files.check_inputs, body["inputs"])
    job, created = await s.submissions.submit_async(p, body, idempotency_key,
                                                    getattr(request.state, "request_id", None))
    note_audit(request, "job.submit", f"job {job.id}", partners_of(job, s.broker.federation))
    # The hot path: the job's plain-data form goes out as JSON directly (orjson), not through
    # FastAPI's generic encoder, which walks the whole document again.
    return Response(orjson.dumps(codec.encode_job(job)), status_code=201 if created else 200,
                    media_type="application/json", headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.post("/api/v1/jobs/preview", openapi_extra=JOB_BODY)
def preview(s: Svc, p: Caller, body: JsonObject) -> dict[str, Any]:
    """What a job would cost, where and when it would run, and which rules would apply
    (nothing is stored)."""
    new = s.submissions.preview(p, body)
    return preview_doc(s.broker, s.gate, new.job, list(new.notes))


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
