"""The REST API: a thin shell over the broker.

Errors are RFC 9457 ``application/problem+json`` documents; validation problems
list each field with the bad value and what is allowed. Every ``/api`` route
needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord.api.footprint import add_footprint_routes
from accord.domain import codec
from accord.domain.errors import (
    AccordError,
    Busy,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    Unavailable,
)
from accord.domain.jobs import JobState
from accord.domain.ledger import to_document
from accord.domain.statement import head_to_json, public_pem_of, to_csv, to_html
from accord.service.broker import Broker
from accord.service.group_commit import GroupCommitter
from accord.service.ledger import LedgerService
from accord.service.reconcile import reconcile_period
from accord.web.status import render_status

log = logging.getLogger("accord.api")
PROBLEM = "application/problem+json"
_STATUS: list[tuple[type[AccordError], int]] = [
    (InvalidInput, 422), (NotFound, 404), (Conflict, 409), (Busy, 503), (Unavailable, 503),
    (Forbidden, 403),
]


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


def problem(status: int, title: str, detail: str, problems: list[Problem] | None = None) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if problems:
        body["problems"] = [
            {"field": p.where, "message": p.message, "got": p.got, "allowed": p.allowed}
            for p in problems
        ]
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class Correction(BaseModel):
    """A correcting ledger entry: refund, reversal or manual credit."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(..., pattern="^(refund|reversal|manual_credit)$")
    units: str = Field(..., max_length=40, description="positive decimal, normalised units")
    reason: str = Field(..., min_length=1, max_length=2000)
    author: str = Field(..., min_length=1, max_length=200)


def create_app(broker: Broker, token: str, *, title: str = "Accord",
               ledger: LedgerService | None = None) -> FastAPI:
    """The FastAPI application for ``broker``, guarded by ``token``."""
    committer = GroupCommitter(broker.store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        committer.close()

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan,
                  description="Broker for international reciprocal AI compute agreements.")
    _install_error_handlers(app)
    auth = _bearer(token)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def status_page() -> str:
        return render_status(broker.federation, broker.store.list_jobs(limit=50))

    @app.get("/api/v1/federation", tags=["federation"], dependencies=[Depends(auth)])
    def federation() -> dict[str, Any]:
        fed = broker.federation
        return {
            "name": fed.name,
            "reference_unit": fed.reference_unit,
            "partners": [{"id": p.id, "name": p.name, "country": p.country} for p in fed.partners],
            "sites": [{"id": s.id, "name": s.name, "partner": s.partner, "grid_zone": s.grid_zone,
                       "backend": s.backend.value, "gpus": s.total_gpus,
                       "pools": [{"id": p.id, "gpu_model": p.gpu_model, "gpus": p.gpus}
                                 for p in s.pools]} for s in fed.sites],
            "agreements": [{"id": a.id, "name": a.name, "parties": list(a.parties),
                            "start": a.start.isoformat(), "end": a.end.isoformat()}
                           for a in fed.agreements],
        }

    @app.post("/api/v1/jobs", status_code=201, tags=["jobs"], dependencies=[Depends(auth)])
    async def submit(
        body: JobSubmission,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        new, spec_hash = broker.new_submission(body.model_dump(exclude_none=True), "admin",
                                               idempotency_key)
        job = await asyncio.wrap_future(committer.submit(new, spec_hash))
        if job.id != new.id:
            response.status_code = 200
        response.headers["Location"] = f"/api/v1/jobs/{job.id}"
        return codec.encode_job(job)

    @app.get("/api/v1/jobs", tags=["jobs"], dependencies=[Depends(auth)])
    def list_jobs(
        state: Annotated[list[JobState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        jobs = broker.store.list_jobs(state, limit=limit, before=before)
        return {"jobs": [codec.encode_job(j, with_story=False) for j in jobs]}

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(auth)])
    def show(job_id: str) -> dict[str, Any]:
        return codec.encode_job(broker.store.get_job(job_id))

    @app.post("/api/v1/jobs/{job_id}/cancel", tags=["jobs"], dependencies=[Depends(auth)])
    def cancel(job_id: str) -> dict[str, Any]:
        return codec.encode_job(broker.cancel(job_id))

    @app.get("/api/v1/jobs/{job_id}/logs", tags=["jobs"], dependencies=[Depends(auth)])
    def logs(job_id: str) -> dict[str, str]:
        out = broker.logs(job_id)
        return {"stdout": out.stdout, "stderr": out.stderr}

    add_footprint_routes(app, broker.store, auth)
    if ledger is not None:
        _ledger_routes(app, ledger, auth, broker)
    return app


def _ledger_routes(app: FastAPI, ledger: LedgerService, auth: Callable[..., None],
                   broker: Broker) -> None:
    guard = [Depends(auth)]
    period_q = Query(None, pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")

    @app.get("/api/v1/ledger/balances", tags=["ledger"], dependencies=guard)
    def ledger_balances(agreement: Annotated[str | None, Query(max_length=64)] = None,
                        period: Annotated[str | None, period_q] = None) -> dict[str, Any]:
        if agreement is not None:
            ledger.federation.agreement(agreement)
        return ledger.balances(agreement, period)

    @app.get("/api/v1/ledger/entries", tags=["ledger"], dependencies=guard)
    def ledger_entries(agreement: Annotated[str | None, Query(max_length=64)] = None,
                       period: Annotated[str | None, period_q] = None,
                       job: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
        found = ledger.ledger.entries(agreement=agreement, period=period, job_id=job)
        return {"entries": [{**to_document(e), "hash": e.hash} for e in found[-1000:]]}

    @app.post("/api/v1/ledger/entries/{entry_id}/corrections", status_code=201, tags=["ledger"],
              dependencies=guard)
    def correct(entry_id: str, body: Correction) -> dict[str, Any]:
        e = ledger.correct(entry_id, body.kind, body.units, body.reason, body.author)
        return {**to_document(e), "hash": e.hash}

    @app.post("/api/v1/ledger/periods/{period}/close", tags=["ledger"], dependencies=guard)
    def close(period: str) -> dict[str, Any]:
        return head_to_json(ledger.close_period(period))

    @app.get("/api/v1/ledger/verify", tags=["ledger"], dependencies=guard)
    def verify() -> dict[str, Any]:
        r = ledger.verify()
        return {"ok": r.ok, "entries": r.entries, "closures": r.closures,
                "first_bad_seq": r.first_bad_seq, "problem": r.problem}

    @app.get("/api/v1/ledger/reconcile", tags=["ledger"], dependencies=guard)
    def reconcile(period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")]) -> dict[str, Any]:
        return reconcile_period(period, ledger.federation, broker.store, ledger,
                                dict(broker.backends))  # type: ignore[arg-type]

    @app.get("/api/v1/ledger/public-key", tags=["ledger"], response_class=PlainTextResponse)
    def public_key() -> str:
        return public_pem_of(ledger.public_key)

    @app.get("/api/v1/statements/{agreement}/{period}", tags=["ledger"], dependencies=guard,
             response_model=None)
    def statement(agreement: str, period: str,
                  format: Annotated[str, Query(pattern="^(json|html|csv)$")] = "json",
                  ) -> dict[str, Any] | HTMLResponse | PlainTextResponse:
        doc = ledger.statement(agreement, period)
        if format == "html":
            return HTMLResponse(to_html(doc))
        if format == "csv":
            return PlainTextResponse(to_csv(doc), media_type="text/csv")
        return doc


def _bearer(token: str) -> Callable[..., None]:
    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise _Unauthorized
    return check


class _Unauthorized(Exception):
    pass


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(_Unauthorized)
    async def unauthorized(_r: Request, _e: _Unauthorized) -> JSONResponse:
        resp = problem(401, "Unauthorized", "send 'Authorization: Bearer <token>'; the local "
                       "admin token is in the data directory's admin.token file")
        resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    @app.exception_handler(AccordError)
    async def accord_error(_r: Request, exc: AccordError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        problems = list(exc.problems) if isinstance(exc, InvalidInput) else None
        return problem(status, exc.title, str(exc), problems)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_pydantic_problem(e) for e in exc.errors()]
        detail = "; ".join(p.render() for p in problems)
        return problem(422, "Invalid input", detail, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
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
