"""Ledger routes: balances, entries, corrections, period close, verification,
reconciliation, statements and the operator's public key; each checks the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import note_audit
from accord.domain.access.rules import (
    Principal,
    Role,
    TokenScope,
    can_audit,
    can_correct,
    can_operate_ledger,
    can_read_agreement,
    can_reconcile,
    token_scope,
)
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.jobs.model import Job
from accord.domain.ledger.entries import to_document
from accord.domain.ledger.statement import head_to_json, public_pem_of, to_csv, to_html
from accord.service.broker import Broker
from accord.service.ledger import LedgerService
from accord.service.reconcile import reconcile_period

PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"  # [0-9]: \d would match any Unicode digit
# Module level, not inside add_ledger_routes: FastAPI resolves the (postponed) annotations
# in the module's globals, and a local name there breaks the route and /openapi.json.
PeriodQuery = Annotated[str | None, Query(pattern=PERIOD, description="YYYY-MM")]


class Correction(BaseModel):
    """A correcting ledger entry: refund, reversal or manual credit."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(..., pattern="^(refund|reversal|manual_credit)$")
    units: str = Field(..., max_length=40, description="positive decimal, normalised units")
    reason: str = Field(..., min_length=1, max_length=2000)
    author: str | None = Field(None, min_length=1, max_length=200,
                               description="defaults to the caller; recorded as 'author (by caller)'")


def add_ledger_routes(app: FastAPI, ledger: LedgerService, caller: Any, broker: Broker,
                      job_for: Callable[[Principal, str], Job]) -> None:
    """Add the ledger's routes to ``app``; ``caller`` is the authenticated-caller dependency."""
    fed = ledger.federation

    def agreement_of(p: Principal, agreement: str) -> None:
        ids = [a.id for a in fed.agreements]
        if agreement not in ids:
            raise InvalidInput([Problem("agreement", "names an unknown agreement", agreement,
                                        ", ".join(ids))])
        can_read_agreement(p, fed.agreement(agreement).parties, agreement).require()

    def overseen(p: Principal) -> list[str]:
        return [a.id for a in fed.agreements if can_read_agreement(p, a.parties, a.id).allowed]

    @app.get("/api/v1/ledger/balances", tags=["ledger"])
    def ledger_balances(p: Principal = Depends(caller),
                        agreement: Annotated[str | None, Query(max_length=64)] = None,
                        period: PeriodQuery = None) -> dict[str, Any]:
        if (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
            refusal.require()     # the admin's token too: a token without ledger:read reads no books
        if agreement is None and not p.is_admin:
            raise Forbidden("name an agreement (?agreement=...) whose books you may read: "
                            + (", ".join(overseen(p)) or "none"))
        if agreement is not None:
            agreement_of(p, agreement)
        return ledger.balances(agreement, period)

    @app.get("/api/v1/ledger/entries", tags=["ledger"])
    def ledger_entries(p: Principal = Depends(caller),
                       agreement: Annotated[str | None, Query(max_length=64)] = None,
                       period: PeriodQuery = None,
                       job: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
        if job is not None:
            job_for(p, job)
        elif agreement is not None:
            agreement_of(p, agreement)
        elif not p.is_admin:
            raise Forbidden("name an agreement (?agreement=...) or a job (?job=...) you may see")
        elif (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
            refusal.require()     # every agreement's entries: the admin's token must allow it too
        found = ledger.ledger.entries(agreement=agreement, period=period, job_id=job)
        return {"entries": [{**to_document(e), "hash": e.hash} for e in found[-1000:]]}

    @app.post("/api/v1/ledger/entries/{entry_id}/corrections", status_code=201, tags=["ledger"])
    def correct(entry_id: str, body: Correction, request: Request,
                p: Principal = Depends(caller)) -> dict[str, Any]:
        note_audit(request, "ledger.correct", f"entry {entry_id}", (), body.kind)
        original = ledger.ledger.entry(entry_id)
        if original is None:
            if p.is_admin:
                raise NotFound(f"no ledger entry {entry_id!r}")
            raise Forbidden(f"entry {entry_id} does not exist or you may not correct it")
        decided = can_correct(p, original.host)
        if not decided.allowed and not can_read_agreement(p, (original.host, original.requester),
                                                          original.agreement).allowed:
            raise Forbidden(f"entry {entry_id} does not exist or you may not correct it")
        decided.require()
        note_audit(request, "ledger.correct", f"entry {entry_id}", (original.host, original.requester),
                   f"{body.kind} {body.units}: {body.reason}"[:500])
        author = body.author or p.user
        if body.author and body.author != p.user:
            author = f"{body.author} (by {p.user})"
        e = ledger.correct(entry_id, body.kind, body.units, body.reason, author)
        return {**to_document(e), "hash": e.hash}

    @app.post("/api/v1/ledger/periods/{period}/close", tags=["ledger"])
    def close(period: str, request: Request, p: Principal = Depends(caller)) -> dict[str, Any]:
        note_audit(request, "ledger.close", f"period {period[:10]}")
        can_operate_ledger(p).require()
        return head_to_json(ledger.close_period(period))

    @app.get("/api/v1/ledger/verify", tags=["ledger"])
    def verify(p: Principal = Depends(caller)) -> dict[str, Any]:
        can_audit(p).require()
        r = ledger.verify()
        return {"ok": r.ok, "entries": r.entries, "closures": r.closures,
                "first_bad_seq": r.first_bad_seq, "problem": r.problem}

    @app.get("/api/v1/ledger/reconcile", tags=["ledger"])
    def reconcile(period: Annotated[str, Query(pattern=PERIOD)],
                  p: Principal = Depends(caller)) -> dict[str, Any]:
        can_reconcile(p).require()
        report = reconcile_period(period, fed, broker.store, ledger,
                                  dict(broker.backends))  # type: ignore[arg-type]
        if p.is_admin or any(g.role is Role.AUDITOR for g in p.grants):
            return report
        mine = p.scoped_targets(Role.SITE_OPERATOR)
        sites = {k: v for k, v in report["sites"].items() if k in mine}
        return {**report, "ok": all(v["ok"] for v in sites.values()), "sites": sites}

    @app.get("/api/v1/ledger/public-key", tags=["ledger"], response_class=PlainTextResponse)
    def public_key() -> str:
        return public_pem_of(ledger.public_key)

    @app.get("/api/v1/statements/{agreement}/{period}", tags=["ledger"], response_model=None,
             responses={200: {"description": "the statement; ?format= picks JSON, HTML or CSV",
                              "content": {"text/html": {}, "text/csv": {}}}})
    def statement(agreement: str, period: str, p: Principal = Depends(caller),
                  format: Annotated[str, Query(pattern="^(json|html|csv)$")] = "json",
                  ) -> dict[str, Any] | HTMLResponse | PlainTextResponse:
        agreement_of(p, agreement)
        doc = ledger.statement(agreement, period)
        if format == "html":
            return HTMLResponse(to_html(doc))
        if format == "csv":
            return PlainTextResponse(to_csv(doc), media_type="text/csv")
        return doc
