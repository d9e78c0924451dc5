"""The federation's routes: liveness, the status page, the federation's shape and the
current load of every site.

* ``GET /healthz``: says ``ok`` (no token).
* ``GET /``: the server-rendered status page, the federation's public shape (no token).
* ``GET /api/v1/federation``: partners, sites with their pools, agreements.
* ``GET /api/v1/federation/load``: every site's pools with their total, free and queued
  GPUs as the site's backend reports them now (any authenticated caller: it is the
  federation's capacity, not anyone's jobs).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from accord.api.common import Caller, Svc
from accord.domain.errors import Unavailable
from accord.domain.placement.records import PoolLoad
from accord.service.services import Services
from accord.web.status import render_status

router = APIRouter()


@router.get("/healthz", tags=["meta"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(s: Svc) -> str:
    return render_status(s.broker.federation, None)


@router.get("/api/v1/federation", tags=["federation"])
def federation(s: Svc, p: Caller) -> dict[str, Any]:
    fed = s.broker.federation
    return {
        "name": fed.name,
        "reference_unit": fed.reference_unit,
        "partners": [{"id": x.id, "name": x.name, "country": x.country} for x in fed.partners],
        "sites": [{"id": x.id, "name": x.name, "partner": x.partner, "grid_zone": x.grid_zone,
                   "backend": x.backend.value, "gpus": x.total_gpus,
                   "pools": [{"id": y.id, "gpu_model": y.gpu_model, "gpus": y.gpus}
                             for y in x.pools]} for x in fed.sites],
        "agreements": [{"id": a.id, "name": a.name, "parties": list(a.parties),
                        "start": a.start.isoformat(), "end": a.end.isoformat()}
                       for a in fed.agreements],
    }


@router.get("/api/v1/federation/load", tags=["federation"])
def federation_load(s: Svc, p: Caller) -> dict[str, Any]:
    """Current GPUs free and queued per site and pool, as each site's backend reports
    them; a site that cannot be read is listed as unavailable with the reason."""
    return {"at": s.broker.clock.now().isoformat(),
            "sites": [_site_load(s, x.id) for x in s.broker.federation.sites]}


def _site_load(s: Services, site_id: str) -> dict[str, Any]:
    """One site's pools as its backend reports them now (unavailable, with the reason,
    when it cannot be read)."""
    site = s.broker.federation.site(site_id)
    backend = s.broker.backends.get(site_id)
    note = ""
    try:
        if backend is None:
            raise Unavailable("no backend configured")
        loads = dict(backend.loads())
    except (Unavailable, RuntimeError) as exc:   # RuntimeError: its job table changed mid-read
        loads, note = {}, str(exc) or type(exc).__name__
    pools = []
    for pool in site.pools:
        load = loads.get(pool.id, PoolLoad(0, available=False, note=note or "not reported"))
        free = max(0, min(pool.gpus, load.free_gpus))
        pools.append({"pool": pool.id, "gpu_model": pool.gpu_model, "gpus": pool.gpus,
                      "free_gpus": free, "busy_gpus": pool.gpus - free if load.available else None,
                      "queued_gpus": load.queued_gpus, "available": load.available,
                      "note": load.note})
    known = [x for x in pools if x["available"]]
    return {"site": site.id, "name": site.name, "partner": site.partner, "gpus": site.total_gpus,
            "busy_gpus": sum(x["busy_gpus"] for x in known) if known else None,
            "queued_gpus": sum(x["queued_gpus"] for x in pools),
            "available": len(known) == len(pools), "note": note, "pools": pools}
