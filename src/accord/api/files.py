"""Files that travel with jobs (``docs/design/site-agent.md``, "Files"): people upload a job's
inputs (``POST /api/v1/files``, raw bytes) and read its outputs; a site's agent fetches the
inputs of its own jobs and uploads the outputs they declared (signed requests, as every
``/api/agent`` route)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from accord.api.agent import Signed
from accord.api.common import Caller, Svc, job_for, note_audit
from accord.domain.access.rules import TokenScope, can_read_logs, token_scope
from accord.service.files import names

router = APIRouter()
RAW = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
SHA = Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="SHA-256 (hex)")]


@router.post("/api/v1/files", status_code=201, tags=["jobs"], openapi_extra=RAW)
async def upload(request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Upload a job's input file (at most 64 MiB); name it in a job's ``inputs`` as
    ``NAME=sha256:HEX`` with the SHA-256 answered. The same bytes again: the same answer."""
    note_audit(request, "file.upload", "file (new)")
    if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
        refusal.require()
    got = s.files.upload(p.user, await request.body())
    note_audit(request, "file.upload", f"file sha256:{got['sha256']}")
    return got


@router.get("/api/v1/jobs/{job_id}/outputs", tags=["jobs"])
def list_outputs(job_id: str, s: Svc, p: Caller) -> dict[str, Any]:
    """The job's declared output files the site's agent brought home."""
    job_for(s, p, job_id, can_read_logs)
    return {"outputs": names(s.files.outputs(job_id))}


@router.get(
    "/api/v1/jobs/{job_id}/outputs/{name:path}",
    tags=["jobs"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_output(job_id: str, name: str, s: Svc, p: Caller) -> Response:
    """One output file's bytes (its SHA-256 in ``Digest``-style header ``X-Content-SHA256``)."""
    job_for(s, p, job_id, can_read_logs)
    o, data = s.files.output(job_id, name)
    return Response(data, media_type="application/octet-stream", headers={"X-Content-SHA256": o.sha256})


@router.get("/api/agent/v1/inputs/{sha256}", tags=["site agents"], response_class=Response)
def agent_input(sha256: str, s: Svc, a: Signed, ref: Annotated[str, Query(max_length=120)]) -> Response:
    """An input file of one of the agent's own site's jobs."""
    return Response(s.files.agent_input(a.site, ref, sha256), media_type="application/octet-stream")


@router.post("/api/agent/v1/outputs", tags=["site agents"], openapi_extra=RAW)
def agent_output(
    request: Request,
    s: Svc,
    a: Signed,
    ref: Annotated[str, Query(max_length=120)],
    name: Annotated[str, Query(max_length=200)],
    sha256: SHA,
) -> dict[str, Any]:
    """A declared output file of one of the agent's own site's jobs, when it ended."""
    note_audit(request, "agent.output", f"site {a.site} job {ref} file {name[:80]}")
    return {"new": s.files.agent_output(a.site, ref, name, sha256, request.state.agent_body)}
