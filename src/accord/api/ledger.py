"""Ledger routes: balances, entries, corrections, period close, verification,
reconciliation, statements and the operator's public key; each checks the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, job_for, note_audit
from accord.domain.access.rules import (
    Principal,
    Role,
    TokenScope,
    can_correct,
    can_operate_ledger,
    can_read_agreement,
    can_reconcile,
    can_verify_ledger,
    token_scope,
)
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import to_document
from accord.domain.ledger.statement import head_to_json, public_pem_of, to_csv, to_html
from accord.service.reconcile import reconcile_period

PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"  # [0-9]: \d would match any Unicode digit
# Module level: FastAPI resolves the (postponed) annotations in the module's globals.
PeriodQuery = Annotated[str | None, Query(pattern=PERIOD, description="YYYY-MM")]


router = APIRouter(tags=["ledger"])


class Correction(BaseModel):
    """A correcting ledger entry: refund, reversal or manual credit."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(..., pattern="^(refund|reversal|manual_credit)$")
    units: str = Field(..., max_length=40, description="positive decimal, normalised units")
    reason: str = Field(..., min_length=1, max_length=2000)
    author: str | None = Field(None, min_length=1, max_length=200,
                               description="defaults to the caller; recorded as 'author (by caller)'")


@router.get("/api/v1/ledger/balances")
def ledger_balances(s: Svc, p: Caller,
                    agreement: Annotated[str | None, Query(max_length=64)] = None,
                    period: PeriodQuery = None) -> dict[str, Any]:
    if (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
        refusal.require()     # the admin's token too: a token without ledger:read reads no books
    if agreement is None and not p.is_admin:
        raise Forbidden("name an agreement (?agreement=...) whose books you may read: "
                        + (", ".join(_overseen(s.ledger.federation, p)) or "none"))
    if agreement is not None:
        agreement_of(s.ledger.federation, p, agreement)
    return s.ledger.balances(agreement, period)


@router.get("/api/v1/ledger/entries")
def ledger_entries(s: Svc, p: Caller,
                   agreement: Annotated[str | None, Query(max_length=64)] = None,
                   period: PeriodQuery = None,
                   job: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
    if job is not None:
        job_for(s, p, job)
    elif agreement is not None:
        agreement_of(s.ledger.federation, p, agreement)
    elif not p.is_admin:
        raise Forbidden("name an agreement (?agreement=...) or a job (?job=...) you may see")
    elif (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
        refusal.require()     # every agreement's entries: the admin's token must allow it too
    found = s.ledger.ledger.entries(agreement=agreement, period=period, job_id=job)
    return {"entries": [{**to_document(e), "hash": e.hash} for e in found[-1000:]]}


@router.post("/api/v1/ledger/entries/{entry_id}/corrections", status_code=201)
def correct(entry_id: str, body: Correction, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    note_audit(request, "ledger.correct", f"entry {entry_id}", (), body.kind)
    original = s.ledger.ledger.entry(entry_id)
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
    e = s.ledger.correct(entry_id, body.kind, body.units, body.reason, author)
    return {**to_document(e), "hash": e.hash}


@router.post("/api/v1/ledger/periods/{period}/close")
def close(period: str, request: Request, s: Svc, p: Caller, early: bool = False) -> dict[str, Any]:
    """Close a month that has ended (``early=true``: the current month, before its end; usage
    of the rest of it is then booked to the next open period)."""
    note_audit(request, "ledger.close", f"period {period[:10]}", detail="early" if early else "")
    can_operate_ledger(p).require()
    return head_to_json(s.ledger.close_period(period, early=early))


@router.get("/api/v1/ledger/verify")
def verify(s: Svc, p: Caller) -> dict[str, Any]:
    can_verify_ledger(p).require()
    r = s.ledger.verify()
    return {"ok": r.ok, "entries": r.entries, "closures": r.closures,
            "first_bad_seq": r.first_bad_seq, "problem": r.problem, "cosigned": r.cosigned,
            "notes": list(r.notes)}


@router.get("/api/v1/ledger/reconcile")
def reconcile(period: Annotated[str, Query(pattern=PERIOD)], s: Svc, p: Caller) -> dict[str, Any]:
    can_reconcile(p).require()
    broker = s.broker
    by_account = s.agents.enforcement.account_checks if s.agents.enforcement else None
    report = reconcile_period(period, s.ledger.federation, broker.store, s.ledger,
                              dict(broker.backends), by_account)  # type: ignore[arg-type]
    if p.is_admin or any(g.role is Role.AUDITOR for g in p.grants):
        return report
    mine = p.scoped_targets(Role.SITE_OPERATOR)
    sites = {k: v for k, v in report["sites"].items() if k in mine}
    checks = [c for c in report.get("allocations", []) if c["site"] in mine]
    return {**report, "ok": all(v["ok"] for v in [*sites.values(), *checks]), "sites": sites,
            **({"allocations": checks} if "allocations" in report else {})}


@router.get("/api/v1/ledger/public-key", response_class=PlainTextResponse)
def public_key(s: Svc) -> str:
    return public_pem_of(s.ledger.public_key)


@router.get("/api/v1/statements/{agreement}/{period}", response_model=None,
            responses={200: {"description": "the statement; ?format= picks JSON, HTML or CSV",
                             "content": {"text/html": {}, "text/csv": {}}}})
def statement(agreement: str, period: str, s: Svc, p: Caller,
              format: Annotated[str, Query(pattern="^(json|html|csv)$")] = "json",
              ) -> dict[str, Any] | HTMLResponse | PlainTextResponse:
    agreement_of(s.ledger.federation, p, agreement)
    doc = s.ledger.statement(agreement, period)
    if format == "html":
        return HTMLResponse(to_html(doc))
    if format == "csv":
        return PlainTextResponse(to_csv(doc), media_type="text/csv")
    return doc


def agreement_of(fed: Federation, p: Principal, agreement: str) -> None:
    """Check that ``agreement`` exists and ``p`` may read its books.

    Raises:
        InvalidInput: no such agreement (the known ones listed).
        Forbidden: ``p`` oversees no party of it.
    """
    ids = [a.id for a in fed.agreements]
    if agreement not in ids:
        raise InvalidInput([Problem("agreement", "names an unknown agreement", agreement,
                                    ", ".join(ids))])
    can_read_agreement(p, fed.agreement(agreement).parties, agreement).require()


def _overseen(fed: Federation, p: Principal) -> list[str]:
    """The agreements whose books ``p`` may read."""
    return [a.id for a in fed.agreements if can_read_agreement(p, a.parties, a.id).allowed]
