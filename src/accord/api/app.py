"""The REST API: a thin shell over the services of :mod:`accord.compose`.

:func:`create_app` builds the FastAPI application from one :class:`~accord.service.services.Services`
record: one router per area (:mod:`~accord.api.federation`, :mod:`~accord.api.jobs`,
:mod:`~accord.api.footprint`, :mod:`~accord.api.ledger`, :mod:`~accord.api.access`,
:mod:`~accord.api.campaigns`, :mod:`~accord.api.dashboard`), whose routes get the services and
the caller through the dependencies of :mod:`accord.api.common`.

Errors are RFC 9457 ``application/problem+json`` documents; validation problems
list each field with the bad value and what is allowed. Every ``/api`` route but
the ledger's public key needs ``Authorization: Bearer <token>`` (the local admin
token, an Accord API token or an OIDC JWT) and checks what the caller may do
(:mod:`accord.domain.access.rules`). Every state-changing request is written to the
audit log, whatever its outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord.api import (
    access,
    agent,
    campaigns,
    dashboard,
    federation,
    files,
    footprint,
    jobs,
    ledger,
    metrics,
    notify,
)
from accord.api.bells import OrderBells
from accord.api.common import ERRORS, problem
from accord.api.limits import BodyLimit
from accord.api.request_ids import RequestIds
from accord.domain.access.audit import AuditRecord, outcome_of
from accord.domain.access.rules import Principal
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
from accord.service.services import Services
from accord.web.dashboard import mount_dashboard

log = logging.getLogger("accord.api")
_STATUS: list[tuple[type[AccordError], int]] = [
    (InvalidInput, 422), (NotFound, 404), (Conflict, 409), (Busy, 503), (Unavailable, 503),
    (Forbidden, 403), (Unauthenticated, 401), (RateLimited, 429),
]
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AGENT_PREFIX = "/api/agent/"
READ_ONLY_POSTS = frozenset({"/api/v1/jobs/preview", "/api/v1/statements/verify"})  # change nothing
ROUTERS = (agent.router,   # first: the agents' requests are most of the hub's, and routes match in order
           federation.router, jobs.router, footprint.router, ledger.router, access.router,
           campaigns.router, dashboard.router, metrics.router, notify.router, files.router)


def create_app(services: Services, *, title: str = "Accord") -> FastAPI:
    """The FastAPI application over ``services``: the routers of every area, the audit
    middleware, the error handlers and the dashboard's static files. It makes no service:
    whoever composed ``services`` also stops them (:meth:`Services.close`)."""
    app = FastAPI(title=title, version="0.1.0", responses=ERRORS, dependencies=[Depends(_refuse_nul)],
                  description="Broker for international reciprocal AI compute agreements.")
    app.state.services = services
    app.state.order_bells = bells = OrderBells()
    services.agents.listen(bells.ring)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit)   # inside the audit middleware: a refused body is audited too
    app.add_middleware(_AuditMiddleware, services=services)
    app.add_middleware(RequestIds)   # outermost: every log line of a request carries its id
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app)
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
            request.state.json_body = doc   # read once: json_object takes it from here
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


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class _AuditMiddleware:
    """Records every state-changing /api request (pure ASGI: it adds no copy of bodies)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        agent = scope["type"] == "http" and scope["path"].startswith(AGENT_PREFIX)
        if not agent and (scope["type"] != "http" or scope["method"] not in CHANGES
                          or not scope["path"].startswith("/api/") or scope["path"] in READ_ONLY_POSTS):
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
            if not agent or _agent_audited(scope, status[0]):
                with anyio.CancelScope(shield=True):   # a client that hung up is audited too
                    p = await self._principal(scope, status[0])
                self.services.audit.add(_record(scope, status[0], p))

    async def _principal(self, scope: Scope, status: int) -> Principal | None:
        """Who made the request: the caller its route authenticated; for a request refused
        before that (a NUL in its path, no such route), the holder of the valid credential
        it carried, if any (a 401 or 429 was refused for its credential: nobody)."""
        p: Principal | None = (scope.get("state") or {}).get("principal")
        if p is not None or status in (401, 429):
            return p
        header = next((v for k, v in scope.get("headers") or () if k == b"authorization"), None)
        if header is None:
            return None
        return await run_in_threadpool(self._identify, header.decode("latin-1"))

    def _identify(self, authorization: str) -> Principal | None:
        try:
            return self.services.access.authenticate(authorization)
        except Exception:  # not a valid credential (or the store did not answer): anonymous
            return None


def _agent_audited(scope: Scope, status: int) -> bool:
    """Which agent requests are audited: every refusal, and every change but a heartbeat
    and an exchange that carried nothing (agents call several times a minute; their reports
    and acknowledgements are kept)."""
    if status >= 400:
        return True
    path = scope["path"]
    if path.endswith("/exchange"):
        return (scope.get("state") or {}).get("audit") is not None
    return scope["method"] in CHANGES and not path.endswith("/heartbeat")


def _record(scope: Scope, status: int, p: Principal | None) -> AuditRecord:
    """The audit record of a request that ended with ``status``, made by ``p`` (None:
    anonymous); the writer cleans its fields for the database."""
    state = scope.get("state") or {}
    action, target, partners, detail = state.get("audit") or (
        f"{scope['method']} {scope['path'][:80]}", scope["path"][:300], (), "")
    client = scope.get("client")
    return AuditRecord(datetime.now(UTC), p.user if p else "anonymous", p.via if p else "-", action,
                       target, partners, outcome_of(status), status, client[0] if client else "?", detail)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answers with a problem document."""
    app.exception_handler(AccordError)(_accord_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected)


async def _accord_error(_r: Request, exc: AccordError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    problems = list(exc.problems) if isinstance(exc, InvalidInput) else None
    resp = problem(status, exc.title, str(exc), problems)
    if isinstance(exc, Unauthenticated):
        resp.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        resp.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return resp


async def _invalid_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [_pydantic_problem(e) for e in exc.errors()]
    detail = "; ".join(p.render() for p in problems)
    return problem(422, "Invalid input", detail, problems)


async def _http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
        return problem(422, "Invalid input", "body: could not be read as JSON",
                       [Problem("body", "could not be read as JSON", None, "a JSON object in UTF-8")])
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A 500 (Starlette answers it outside every middleware: the request id is added here,
    so the operator can find the logged error by the id the client saw)."""
    log.exception("unexpected error", exc_info=exc)
    resp = problem(500, "Internal error", "an unexpected error was logged on the server")
    rid = getattr(request.state, "request_id", None)
    if rid:
        resp.headers["X-Request-ID"] = rid
    return resp


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
