"""``GET /metrics``: the hub's metrics in Prometheus's text format
(:class:`accord.service.telemetry.Telemetry`).

It needs no token, as Prometheus scrapes by convention: every label is a bounded set (job
states, the federation's site and agreement ids, outcomes), so it shows no job id, user,
project or request id — only counts and timings a federation's operators already share.
A hub that must not show even those puts ``/metrics`` behind its reverse proxy or firewall
(``docs/operations.md``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from accord.api.common import Svc

router = APIRouter(tags=["meta"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text exposition format 0.0.4"}})
async def metrics(s: Svc) -> Response:
    """Every metric of the hub, its state read now (a few indexed counts). Raises nothing:
    a source that fails is logged and left out of this answer."""
    body = await run_in_threadpool(s.telemetry.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
