"""The REST API: a thin shell over the broker, the ledger and access.

Errors are RFC 9457 ``application/problem+json`` documents; validation problems
list each field with the bad value and what is allowed. Every ``/api`` route but
the ledger's public key needs ``Authorization: Bearer <token>`` (the local admin
token, an Accord API token or an OIDC JWT) and checks what the caller may do
(:mod:`accord.domain.access.rules`). Every state-changing request is written to the
audit log, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord.adapters.sql.access_store import SqlAccess
from accord.api.access_routes import add_access_routes
from accord.api.campaign_routes import add_campaign_routes
from accord.api.common import ERRORS, hidden_job, job_facts, note_audit, problem
from accord.api.dashboard_routes import add_dashboard_routes
from accord.api.footprint import add_footprint_routes
from accord.api.ledger_routes import add_ledger_routes
from accord.api.preview import preview_doc
from accord.domain.access.audit import AuditRecord, outcome_of
from accord.domain.access.rules import (
    Access,
    JobFacts,
    Principal,
    TokenScope,
    can_change_job,
    can_read_job,
    can_read_logs,
    token_scope,
)
from accord.domain.errors import (
    AccordError,
    Busy,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from accord.domain.jobs import codec
from accord.domain.jobs.model import Job, JobState
from accord.service.access import AccessService, RateLimiter
from accord.service.audit import AuditWriter
from accord.service.broker import Broker
from accord.service.gate import Gate
from accord.service.group_commit import GroupCommitter
from accord.service.ledger import LedgerService
from accord.web.status import render_status

log = logging.getLogger("accord.api")
_STATUS: list[tuple[type[AccordError], int]] = [
    (InvalidInput, 422), (NotFound, 404), (Conflict, 409), (Busy, 503), (Unavailable, 503),
    (Forbidden, 403), (Unauthenticated, 401), (RateLimited, 429),
]
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_ONLY_POSTS = frozenset({"/api/v1/jobs/preview", "/api/v1/statements/verify"})  # change nothing
LIST_PAGES = 20   # a filtered job list reads at most this many pages of the store


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


def create_app(broker: Broker, token: str, *, title: str = "Accord", ledger: LedgerService | None = None,
               access: AccessService | None = None) -> FastAPI:
    """The FastAPI application for ``broker``; ``token`` is the local admin token.

    Without ``access``, one over the broker's SQL store is made (no OIDC issuer).
    """
    committer = GroupCommitter(broker.store)
    if access is None:
        access = AccessService(broker.federation, SqlAccess(broker.store), broker.clock, token)  # type: ignore[arg-type]
    gate = broker.gate or Gate(broker.federation, access,
                               ledger.project_used if ledger else _nothing_used)
    writer = AuditWriter(access.store.audit_many)
    auth_failures = RateLimiter(60, 60.0)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        committer.close()
        writer.close()

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan, responses=ERRORS,
                  dependencies=[Depends(_refuse_nul)],
                  description="Broker for international reciprocal AI compute agreements.")
    _install_error_handlers(app)

    def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
        source = request.client.host if request.client else "?"
        try:
            p = access.authenticate(authorization)
        except Unauthenticated:
            auth_failures.take(source, "failed authentication")
            raise
        request.state.principal = p
        return p

    app.add_middleware(_AuditMiddleware, writer=writer)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def status_page() -> str:
        return render_status(broker.federation, None)

    @app.get("/api/v1/federation", tags=["federation"])
    def federation(p: Principal = Depends(caller)) -> dict[str, Any]:
        fed = broker.federation
        return {
            "name": fed.name,
            "reference_unit": fed.reference_unit,
            "partners": [{"id": x.id, "name": x.name, "country": x.country} for x in fed.partners],
            "sites": [{"id": s.id, "name": s.name, "partner": s.partner, "grid_zone": s.grid_zone,
                       "backend": s.backend.value, "gpus": s.total_gpus,
                       "pools": [{"id": x.id, "gpu_model": x.gpu_model, "gpus": x.gpus}
                                 for x in s.pools]} for s in fed.sites],
            "agreements": [{"id": a.id, "name": a.name, "parties": list(a.parties),
                            "start": a.start.isoformat(), "end": a.end.isoformat()}
                           for a in fed.agreements],
        }

    @app.post("/api/v1/jobs", status_code=201, tags=["jobs"], responses={
        200: {"description": "the job an earlier request with this Idempotency-Key and spec made"}})
    async def submit(
        body: JobSubmission, request: Request, response: Response, p: Principal = Depends(caller),
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        note_audit(request, "job.submit", "job (new)")
        shaped = gate.shape(p, body.model_dump(exclude_none=True))
        new, spec_hash = broker.new_submission(shaped.doc, p.user, idempotency_key,
                                               sector=shaped.sector, notes=shaped.notes)
        job = await asyncio.wrap_future(committer.submit(new, spec_hash))
        note_audit(request, "job.submit", f"job {job.id}", _partners(job, broker))
        if job.id != new.id:
            response.status_code = 200
        response.headers["Location"] = f"/api/v1/jobs/{job.id}"
        return codec.encode_job(job)

    @app.post("/api/v1/jobs/preview", tags=["jobs"])
    def preview(body: JobSubmission, p: Principal = Depends(caller)) -> dict[str, Any]:
        """What a job would cost, where and when it would run, and which rules would apply
        (nothing is stored)."""
        shaped = gate.shape(p, body.model_dump(exclude_none=True))
        job, _ = broker.new_submission(shaped.doc, p.user, sector=shaped.sector, notes=shaped.notes)
        return preview_doc(broker, gate, job, list(shaped.notes))

    @app.get("/api/v1/jobs", tags=["jobs"])
    def list_jobs(
        p: Principal = Depends(caller),
        state: Annotated[list[JobState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        return {"jobs": [codec.encode_job(j, with_story=False)
                         for j in _visible_jobs(broker, p, state, limit, before)]}

    def job_for(p: Principal, job_id: str, rule: Callable[[Principal, JobFacts], Access] = can_read_job
                ) -> Job:
        """The job, if ``p`` may see it and ``rule`` allows; a job they may not see is
        refused in the same words whether or not it exists."""
        if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
            refusal.require()    # says which scope is missing: it depends on no job
        try:
            job = broker.store.get_job(job_id)
        except NotFound as exc:
            raise hidden_job(p, job_id, exc) from None
        facts = job_facts(job, broker.federation)
        if not can_read_job(p, facts).allowed:
            raise hidden_job(p, job_id)
        rule(p, facts).require()
        return job

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"])
    def show(job_id: str, p: Principal = Depends(caller)) -> dict[str, Any]:
        return codec.encode_job(job_for(p, job_id))

    @app.post("/api/v1/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel(job_id: str, request: Request, p: Principal = Depends(caller)) -> dict[str, Any]:
        note_audit(request, "job.cancel", f"job {job_id}")
        job = job_for(p, job_id, can_change_job)
        note_audit(request, "job.cancel", f"job {job_id}", _partners(job, broker))
        return codec.encode_job(broker.cancel(job_id, f"cancelled by {p.user}"))

    @app.get("/api/v1/jobs/{job_id}/logs", tags=["jobs"])
    def logs(job_id: str, p: Principal = Depends(caller)) -> dict[str, str]:
        job_for(p, job_id, can_read_logs)
        out = broker.logs(job_id)
        return {"stdout": out.stdout, "stderr": out.stderr}

    add_footprint_routes(app, broker.store, caller, job_for)
    if ledger is not None:
        add_ledger_routes(app, ledger, caller, broker, job_for)
    add_access_routes(app, access, broker, caller, writer)
    add_campaign_routes(app, broker, gate, access, caller)
    add_dashboard_routes(app, broker, caller, ledger)
    return app


async def _refuse_nul(request: Request) -> None:
    """Refuse a NUL character anywhere in a request's path, query or JSON body: PostgreSQL
    can neither store nor compare text holding one (the query fails: a 500), and no field
    of Accord's needs it.

    Raises:
        InvalidInput: naming each place that holds one.
    """
    where = [k for k, v in request.path_params.items() if "\x00" in str(v)]
    where += [k or "query" for k, v in request.query_params.multi_items() if "\x00" in k + v]
    if request.method in CHANGES and "json" in request.headers.get("content-type", ""):
        try:
            doc = json.loads(await request.body())
        except (ValueError, RecursionError):
            doc = None  # not JSON: FastAPI's own validation reports it
        where += [w.lstrip(".") or "body" for w in _nul_fields(doc, "")]
    if where:
        raise InvalidInput([Problem(w.replace("\x00", "\\0"), "must not contain NUL characters",
                                    None, "text without U+0000") for w in where[:20]])


def _nul_fields(doc: Any, where: str) -> list[str]:
    """Where in a JSON document a string (or a key) holds a NUL character (iterative: a
    deeply nested document must not exhaust the stack)."""
    found: list[str] = []
    todo: list[tuple[Any, str]] = [(doc, where)]
    while todo:
        x, at = todo.pop()
        if isinstance(x, str) and "\x00" in x:
            found.append(at)
        elif isinstance(x, list):
            todo.extend((v, f"{at}[{i}]") for i, v in enumerate(x))
        elif isinstance(x, dict):
            found.extend(f"{at}.{k}" for k in x if "\x00" in k)
            todo.extend((v, f"{at}.{k}") for k, v in x.items() if "\x00" not in k)
    return sorted(found)


def _nothing_used(project: str, agreement: str, host: str, first: str, last: str) -> Decimal:
    """Project use without a ledger: none."""
    return Decimal(0)


def _partners(job: Job, broker: Broker) -> tuple[str, ...]:
    facts = job_facts(job, broker.federation)
    return tuple(sorted({x for x in (facts.requester, facts.host) if x}))


def _visible_jobs(broker: Broker, p: Principal, state: list[JobState] | None, limit: int,
                  before: str | None) -> list[Job]:
    """Newest first, the jobs ``p`` may see, reading the store page by page."""
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


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class _AuditMiddleware:
    """Records every state-changing /api request (pure ASGI: it adds no copy of bodies)."""

    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app, self.writer = app, writer

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if (scope["type"] != "http" or scope["method"] not in CHANGES or not scope["path"].startswith("/api/")
                or scope["path"] in READ_ONLY_POSTS):
            await self.app(scope, receive, send)
            return
        status = [500]

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.writer.add(_record(scope, status[0]))


def _record(scope: Scope, status: int) -> AuditRecord:
    state = scope.get("state") or {}
    p: Principal | None = state.get("principal")
    action, target, partners, detail = state.get("audit") or (
        f"{scope['method']} {scope['path'][:80]}", scope["path"][:300], (), "")
    client = scope.get("client")
    return AuditRecord(datetime.now(UTC), p.user if p else "anonymous", p.via if p else "-", action,
                       target, partners, outcome_of(status), status, client[0] if client else "?", detail)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AccordError)
    async def accord_error(_r: Request, exc: AccordError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        problems = list(exc.problems) if isinstance(exc, InvalidInput) else None
        resp = problem(status, exc.title, str(exc), problems)
        if isinstance(exc, Unauthenticated):
            resp.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, RateLimited):
            resp.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return resp

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_pydantic_problem(e) for e in exc.errors()]
        detail = "; ".join(p.render() for p in problems)
        return problem(422, "Invalid input", detail, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
            return problem(422, "Invalid input", "body: could not be read as JSON",
                           [Problem("body", "could not be read as JSON", None, "a JSON object in UTF-8")])
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "Internal error", "an unexpected error was logged on the server")


def _pydantic_problem(e: Any) -> Problem:
    loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "body"
    got = e.get("input")
    shown = None if got is None or e.get("type") == "missing" else repr(got)[:80]
    if e.get("type") == "json_invalid":
        return Problem("body", "is not valid JSON", shown, "a JSON object")
    ctx = e.get("ctx") or {}
    allowed = ", ".join(f"{k} {v}" for k, v in ctx.items() if k != "error") or None
    return Problem(where, e.get("msg", "is invalid"), shown, allowed)
