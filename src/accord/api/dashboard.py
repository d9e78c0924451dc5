"""API routes the web dashboard needs beyond the rest of the API (the sites' load, which
it needs too, is with the federation's routes in :mod:`accord.api.federation`).

* ``GET /api/v1/agreements/{agreement}/quotas``: each quota of an agreement (requester →
  host) with the units used and left in the quota period in force now (overseers of a
  party and the admin, as the agreement's books).
* ``POST /api/v1/statements/verify``: a statement and a public key PEM in, the verdict of
  the offline verifier (:func:`accord.domain.ledger.statement.verify_statement`) out: signatures,
  chain hashes, inclusion and consistency proofs, totals (any authenticated caller: it
  reads nothing stored).
* ``GET /api/v1/emissions/savings``: placement's estimated emissions of each placed job
  against its reference (running at once at the job's home site), summed per group, for
  the jobs the caller may see.

The static dashboard (HTML, CSS, JavaScript modules) is served at ``/dashboard/`` by
:func:`accord.web.dashboard.mount_dashboard` (which :func:`accord.api.app.create_app`
calls); it holds no data and reads everything
from these routes and the rest of the API with the user's bearer token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, job_facts, note_audit
from accord.domain.access.rules import Principal, can_read_agreement, can_read_job
from accord.domain.errors import InvalidInput, NotFound, Problem
from accord.domain.jobs.model import EventKind, Job
from accord.domain.ledger.entries import next_period, parse_period
from accord.domain.ledger.signing import public_key_from_pem
from accord.domain.ledger.statement import verify_statement
from accord.service.broker import Broker
from accord.service.placement_context import quota_period

SAVING_GROUPS = ("requester_partner", "host_partner", "site", "project", "agreement")
SCAN_LIMIT = 5000   # the savings route reads at most this many of the newest jobs
PAGE = 500
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"   # [0-9]: \d would match any Unicode digit

router = APIRouter()


class VerifyRequest(BaseModel):
    """A statement (as downloaded) and the operator's public key to check it with."""

    model_config = ConfigDict(extra="forbid")

    statement: dict[str, Any] = Field(..., description="the statement JSON document")
    public_key_pem: str = Field(..., min_length=1, max_length=10_000,
                                description="'-----BEGIN PUBLIC KEY-----' text of an Ed25519 key")


@router.get("/api/v1/agreements/{agreement}/quotas", tags=["ledger"])
def agreement_quotas(agreement: str, s: Svc, p: Caller) -> dict[str, Any]:
    """Each quota of the agreement with the units used and left in the quota period
    in force now. Raises 404 for an unknown agreement (their ids are public), 403
    unless the caller oversees a party (or is the admin)."""
    ledger = s.ledger
    fed = ledger.federation
    ids = [a.id for a in fed.agreements]
    if agreement not in ids:
        raise NotFound(f"no agreement {agreement[:64]!r}; the agreements are: {', '.join(ids)}")
    a = fed.agreement(agreement)
    can_read_agreement(p, a.parties, a.id).require()
    now = ledger.clock.now()
    quotas = []
    for q in a.quotas:
        period = quota_period(a, q.per, now)
        used = float(ledger.quota_used(a.id, q.requester, q.host, period))
        quotas.append({"requester": q.requester, "host": q.host, "units": q.units,
                       "per": q.per.value, "period": period, "used": round(used, 6),
                       "left": round(q.units - used, 6),
                       "used_fraction": round(used / q.units, 6) if q.units else None})
    return {"agreement": a.id, "name": a.name, "parties": list(a.parties),
            "start": a.start.isoformat(), "end": a.end.isoformat(),
            "in_force": a.in_force(now.date()), "unit": fed.reference_unit,
            "themes": list(a.themes), "sectors": [x.value for x in a.sectors],
            "quotas": quotas}


@router.get("/api/v1/agreements/{agreement}/cosigners", tags=["ledger"])
def agreement_cosigners(agreement: str, s: Svc, p: Caller) -> dict[str, Any]:
    """Per closed period (newest first, at most 12), which partners' witnesses cosigned the
    tree its statement is proven against, and who is missing and why
    (``docs/design/witnesses.md``). 404 for an unknown agreement, 403 unless the caller
    oversees a party (or is the admin)."""
    fed = s.ledger.federation
    ids = [a.id for a in fed.agreements]
    if agreement not in ids:
        raise NotFound(f"no agreement {agreement[:64]!r}; the agreements are: {', '.join(ids)}")
    a = fed.agreement(agreement)
    can_read_agreement(p, a.parties, a.id).require()
    return s.ledger.cosigners(a.id)


@router.post("/api/v1/statements/verify", tags=["ledger"])
def verify_statement_route(body: VerifyRequest, request: Request, p: Caller) -> dict[str, Any]:
    """Check a statement with only itself and the given public key, exactly as
    ``accord statement verify`` does offline. A statement that does not verify is a
    200 answer with ``ok: false`` and every reason; 422 for a key that is not an
    Ed25519 public key in PEM."""
    doc = body.statement
    agreement = doc.get("agreement")
    label = f"{agreement.get('id', '?') if isinstance(agreement, dict) else '?'} {doc.get('period', '?')}"
    note_audit(request, "statement.verify", f"statement {str(label)[:100]}")
    try:
        key = public_key_from_pem(body.public_key_pem)
    except InvalidInput as exc:
        raise InvalidInput([Problem("public_key_pem", x.message, None, x.allowed)
                            for x in exc.problems]) from None
    problems = verify_statement(doc, key)
    entries = doc.get("entries")
    head = doc.get("tree_head")
    return {"ok": not problems, "problems": problems,
            "agreement": agreement.get("id") if isinstance(agreement, dict) else None,
            "period": doc.get("period"), "status": doc.get("status"),
            "entries": len(entries) if isinstance(entries, list) else None,
            "tree_size": head.get("tree_size") if isinstance(head, dict) else None,
            "key_id": doc.get("key_id")}


@router.get("/api/v1/emissions/savings", tags=["emissions"])
def emissions_savings(
    s: Svc, p: Caller,
    group: Annotated[str, Query(pattern=f"^({'|'.join(SAVING_GROUPS)})$")] = "requester_partner",
    period: Annotated[str | None, Query(pattern=MONTH,
                                        description="YYYY-MM: jobs placed that month (UTC)")] = None,
    since: Annotated[str | None, Query(pattern=MONTH,
                                       description="YYYY-MM: jobs placed from that month on")] = None,
) -> dict[str, Any]:
    """Per group, placement's estimated emissions of the jobs placed (in ``period``,
    from ``since``) against their baseline: the same job running at once at its home
    site, as placement estimated it from the grid forecast when it chose. Jobs placed
    without an estimate are counted in ``without_estimate``. Only jobs the caller may
    see are summed; 422 for a malformed group or month."""
    rows: dict[str, dict[str, Any]] = {}
    missing = 0
    for job, place in _placed(s.broker, p, _span(period, since)):
        if place.get("baseline_g") is None or place.get("emissions_g") is None:
            missing += 1
            continue
        key = _group_key(job, group, s.broker) or "(none)"
        row = rows.setdefault(key, {"key": key, "jobs": 0, "estimated_kg": 0.0, "baseline_kg": 0.0})
        row["jobs"] += 1
        row["estimated_kg"] += float(place.get("emissions_g") or 0) / 1000
        row["baseline_kg"] += float(place.get("baseline_g") or 0) / 1000
    out = sorted(rows.values(), key=lambda r: str(r["key"]))
    for r in out:
        r["saving_kg"] = r["baseline_kg"] - r["estimated_kg"]
    total = {k: sum(r[k] for r in out) for k in ("jobs", "estimated_kg", "baseline_kg", "saving_kg")}
    return {"group": group, "period": period, "since": since, "totals": out, "total": total,
            "without_estimate": missing,
            "basis": "placement's estimates from the grid forecast when each job was placed; "
                     "the baseline is the same job starting at once at its home site"}


def _month_start(month: str) -> datetime:
    return datetime.strptime(parse_period(month), "%Y-%m").replace(tzinfo=UTC)


def _span(period: str | None, since: str | None) -> tuple[datetime, datetime]:
    """[first, last) of placement times: ``period``'s month, from ``since`` on."""
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    if period is not None:
        first, last = _month_start(period), _month_start(next_period(parse_period(period)))
    if since is not None:
        first = max(first, _month_start(since))
    return first, last


def _placed(broker: Broker, p: Principal, span: tuple[datetime, datetime]) -> list[tuple[Job, Any]]:
    """(job, its latest PLACE event) for the jobs ``p`` may see, placed in ``span``."""
    first, last = span
    out: list[tuple[Job, Any]] = []
    before: str | None = None
    for _ in range(SCAN_LIMIT // PAGE):
        page = broker.store.list_jobs(limit=PAGE, before=before)
        for job in page:
            place = next((e.event for e in reversed(job.story) if e.event.kind is EventKind.PLACE), None)
            if place is None or not first <= place.at < last:
                continue
            if can_read_job(p, job_facts(job, broker.federation)).allowed:
                out.append((job, place))
        if len(page) < PAGE:
            break
        before = page[-1].id
    return out


def _group_key(job: Job, group: str, broker: Broker) -> str | None:
    """What ``job`` is summed under for ``group`` (None: it has no such key)."""
    site = job.placement.site if job.placement else None
    if group == "site":
        return site
    if group == "project":
        return job.spec.project
    if group == "agreement":
        return job.placement.agreement if job.placement else None
    if group == "host_partner":
        return broker.federation.site(site).partner if site else None
    return job.spec.partner
