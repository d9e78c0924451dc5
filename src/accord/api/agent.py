"""Routes the site agents call (``docs/design/site-agent.md``): every one needs an RFC 9421
signature by a current key of an agent site, each nonce once; an agent sees and changes only
its own site's orders and jobs. No bearer token is accepted here, and no person calls these.

Also here, for people: a signed usage by its digest (``/api/v1/usage/attestations/...``), so
anyone holding a ledger entry's ``usage_attestation`` can fetch the host's signature over it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from accord.api.common import Caller, Svc, note_audit, services_of
from accord.domain.access.rules import Principal, can_verify_ledger
from accord.domain.agent.protocol import MAX_WAIT_S, Order, SignedRequest
from accord.domain.errors import InvalidInput, NotFound, Problem
from accord.domain.jobs.codec import iso
from accord.service.enforcement import EnforcementService

router = APIRouter(tags=["site agents"])
PREFIX = "/api/agent/v1"
LOOK_EVERY_S = 2.0  # how often it asks the database anyway (orders another replica wrote)
ASK_GONE_EVERY_S = 1.0  # how often a long poll asks whether its agent has hung up
GATHER_S = 0.005  # a woken poll waits this long, so one answer carries what commits together


async def signed(request: Request) -> SignedRequest:
    """The request's checked signature; the principal for the audit record is the site.

    Raises:
        Unauthenticated: unsigned, an unknown or revoked key, a bad, expired or replayed signature.
    """
    s = services_of(request)
    body = await request.body()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    got = await run_in_threadpool(s.agents.authenticate, request.method, str(request.url), headers, body)
    request.state.principal = Principal(
        user=f"site:{got.site}", name=f"agent of site {got.site}", via="agent"
    )
    request.state.agent_body = body
    return got


Signed = Annotated[SignedRequest, Depends(signed)]


def _json(request: Request) -> object:
    try:
        return json.loads(request.state.agent_body or b"null")
    except (ValueError, RecursionError):
        raise InvalidInput([Problem("body", "is not valid JSON", None, "a JSON object")]) from None


def _order(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind.value,
        "ref": o.ref,
        "job_id": o.job_id,
        "created_at": iso(o.created_at),
        "job": o.job,
    }


@router.get(f"{PREFIX}/site")
def get_site(s: Svc, a: Signed) -> dict[str, Any]:
    """The agent's own site: its partner and pools (the agent runs its scheduler with them)."""
    v = s.agents.site_view(a.site)
    return {
        "site": v.site,
        "partner": v.partner,
        "pools": [{"id": i, "gpu_model": m, "gpus": n} for i, m, n in v.pools],
    }


Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="long-poll seconds")]


@router.get(f"{PREFIX}/orders")
async def get_orders(request: Request, a: Signed, wait: Wait = 0.0) -> dict[str, Any]:
    """The site's orders not yet acknowledged, oldest first; with ``wait``, held open until
    one comes or ``wait`` seconds pass (the agent acknowledges each once it holds it)."""
    return {"orders": await _orders(request, a.site, wait)}


@router.post(f"{PREFIX}/exchange")
async def post_exchange(request: Request, a: Signed, wait: Wait = 0.0) -> dict[str, Any]:
    """One round in one request: take the body's acknowledgements and reports (as ``/acks``
    and ``/reports``, all or none), then answer as ``GET /orders`` with this ``wait``."""
    s, doc = services_of(request), _json(request)
    if isinstance(doc, dict) and (doc.get("acks") or doc.get("reports")):  # else only a long poll
        note_audit(request, "agent.exchange", f"site {a.site}")
    rung = s.agents.generation(a.site)   # before the look: an order committed after it rings

    def take_and_look() -> tuple[tuple[int, int], list[Order]]:   # one trip to a worker thread
        return s.agents.exchange(a.site, doc), s.agents.orders(a.site)

    (new, changed), found = await run_in_threadpool(take_and_look)
    orders = [_order(o) for o in found] if found else await _orders(request, a.site, wait, rung)
    return {"new": new, "changed": changed, "orders": orders}


async def _orders(request: Request, site: str, wait: float, looked_at: int | None = None
                  ) -> list[dict[str, Any]]:
    """The site's orders, held open up to ``wait`` seconds until one comes. ``looked_at``: the
    caller has just looked and found none, at this order generation (no second look at once)."""
    s, bells = services_of(request), request.app.state.order_bells
    deadline = anyio.current_time() + wait
    rung, looked, asked = s.agents.generation(site), float("-inf"), anyio.current_time()
    if looked_at is not None:
        rung, looked = looked_at, asked
    while True:
        now, rang = anyio.current_time(), bells.event(site)   # the event first: no ring missed
        bell = s.agents.generation(site)
        if bell != rung or now - looked >= LOOK_EVERY_S:  # an order here, or time to look anyway
            if bell != rung:
                await anyio.sleep(GATHER_S)  # let the pass write the rest of its orders
            rung, looked = s.agents.generation(site), anyio.current_time()
            orders = await run_in_threadpool(s.agents.orders, site)
            if orders:
                return [_order(o) for o in orders]
        if now >= deadline:
            return []
        if now - asked >= ASK_GONE_EVERY_S:   # a costly call: not at every tick
            if await request.is_disconnected():
                return []
            asked = now
        with anyio.move_on_after(min(deadline - now, ASK_GONE_EVERY_S, LOOK_EVERY_S)):
            await rang.wait()


@router.post(f"{PREFIX}/acks")
def post_acks(request: Request, s: Svc, a: Signed) -> dict[str, Any]:
    """Acknowledge orders the agent now holds (again: no change)."""
    note_audit(request, "agent.ack", f"site {a.site}")
    return {"new": s.agents.ack(a.site, _json(request))}


@router.post(f"{PREFIX}/reports")
def post_reports(request: Request, s: Svc, a: Signed) -> dict[str, Any]:
    """What the site says of its jobs; a job that ran ends with usage the site signed."""
    note_audit(request, "agent.report", f"site {a.site}")
    return {"changed": s.agents.report(a.site, _json(request))}


@router.post(f"{PREFIX}/heartbeat")
def post_heartbeat(request: Request, s: Svc, a: Signed) -> dict[str, Any]:
    """The agent's loads; with ``held`` (every reference it holds), a resynchronisation: the
    answer lists what the hub expects it to hold and what it now counts lost."""
    note_audit(request, "agent.heartbeat", f"site {a.site}")
    r = s.agents.heartbeat(a, _json(request))
    return {"expected": r.expected, "lost": r.lost}


@router.post(f"{PREFIX}/logs")
def post_logs(
    request: Request,
    s: Svc,
    a: Signed,
    ref: Annotated[str, Query(max_length=120)],
    stream: Annotated[str, Query(max_length=10)],
    offset: Annotated[int, Query(ge=0)],
    truncated: bool = False,
) -> dict[str, Any]:
    """Output of one job streamed home: raw bytes (at most 64 KiB a chunk) from ``offset``;
    the answer is the offset to send next (a gap is refused with 409 naming it)."""
    note_audit(request, "agent.log", f"site {a.site} job {ref}")
    header = {"ref": ref, "stream": stream, "offset": offset, "truncated": truncated}
    return {"next_offset": s.agents.log(a.site, header, request.state.agent_body)}


def _enforcement(s: Svc) -> EnforcementService:
    if s.agents.enforcement is None:
        raise NotFound("this hub does not serve site enforcement")
    return s.agents.enforcement


@router.get(f"{PREFIX}/enforcement")
def get_enforcement(s: Svc, a: Signed) -> dict[str, Any]:
    """The site's desired state: its allocations as GPU-minutes, their members, end and
    whether open (``docs/design/site-enforcement.md``)."""
    return _enforcement(s).desired(a.site)


@router.post(f"{PREFIX}/enforcement")
def post_enforcement(request: Request, s: Svc, a: Signed) -> dict[str, Any]:
    """One sync's outcome at the site: accounts made, local identities, drift found."""
    note_audit(request, "agent.enforcement", f"site {a.site}")
    _enforcement(s).report(a.site, _json(request))
    return {"kept": True}


@router.get("/api/v1/sites/{site}/enforcement", tags=["sites"])
def site_enforcement(site: str, s: Svc, p: Caller) -> dict[str, Any]:
    """What a site enforces in its Slurm and how it stands: accounts, identities, drift."""
    return _enforcement(s).status(p, site)


@router.get("/api/v1/me/identities", tags=["access"])
def my_identities(s: Svc, p: Caller) -> dict[str, Any]:
    """The caller's local usernames at the sites, as the sites chose them."""
    return {"identities": _enforcement(s).identities(p.user)}


@router.get("/api/v1/usage/attestations/{digest}", tags=["ledger"])
def get_attestation(digest: str, s: Svc, p: Caller) -> dict[str, Any]:
    """The usage a host signed, by the digest a ledger entry names (``usage_attestation``),
    with the site and key to check it by (the site's keys are in the federation file)."""
    can_verify_ledger(p).require()
    return s.agents.signed_usage(digest)
