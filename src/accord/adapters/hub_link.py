"""The site agent's line to its hub: HTTPS (a private CA may be given) with every request
signed by the site's key (:mod:`accord.adapters.request_signing`); see
:class:`accord.ports.HubLink`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from accord.adapters.request_signing import RequestSigner
from accord.domain.agent.protocol import (
    MAX_WAIT_S,
    Ack,
    LogChunk,
    Order,
    Report,
    Resync,
    SiteView,
    parse_orders,
    report_doc,
)
from accord.domain.errors import (
    AccordError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    Unauthenticated,
    Unavailable,
)
from accord.domain.placement.records import PoolLoad

PREFIX = "/api/agent/v1"
_REFUSALS: dict[int, type[AccordError]] = {401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict}


class HttpHubLink:
    """Signed requests to ``hub`` (its base URL) for ``site``."""

    def __init__(
        self, hub: str, site: str, private_raw: bytes, *, ca: Path | None = None, timeout_s: float = 10.0
    ) -> None:
        self.base = hub.rstrip("/")
        self.signer = RequestSigner(site, private_raw)
        verify: Any = ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        self.http = httpx.Client(verify=verify, timeout=httpx.Timeout(timeout_s, read=timeout_s + MAX_WAIT_S))

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: bytes = b"",
        content_type: str = "application/json",
        *,
        raw: bool = False,
    ) -> Any:
        url = self.base + PREFIX + path + (f"?{urlencode(query)}" if query else "")
        headers = self.signer.headers(method, url, body)
        if body:
            headers["Content-Type"] = content_type
        try:
            r = self.http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"hub {self.base} not reached: {type(exc).__name__}: {exc}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise Unavailable(f"hub {self.base} answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise _refusal(r)
        return r.content if raw else r.json()

    def input(self, ref: str, sha256: str) -> bytes:
        """See :meth:`accord.ports.HubLink.input`."""
        data: bytes = self._call("GET", f"/inputs/{sha256}", {"ref": ref}, raw=True)
        return data

    def output(self, ref: str, name: str, sha256: str, data: bytes) -> None:
        """See :meth:`accord.ports.HubLink.output`."""
        self._call(
            "POST", "/outputs", {"ref": ref, "name": name, "sha256": sha256}, data, "application/octet-stream"
        )

    def _post(self, path: str, doc: Any) -> Any:
        return self._call("POST", path, body=json.dumps(doc).encode())

    def site(self) -> SiteView:
        """See :meth:`accord.ports.HubLink.site`."""
        d = self._call("GET", "/site")
        return SiteView(
            d["site"], d["partner"], tuple((p["id"], p["gpu_model"], int(p["gpus"])) for p in d["pools"])
        )

    def orders(self, wait_s: float) -> list[Order]:
        """See :meth:`accord.ports.HubLink.orders`."""
        return parse_orders(self._call("GET", "/orders", {"wait": f"{min(wait_s, MAX_WAIT_S):g}"}))

    def ack(self, acks: Sequence[Ack]) -> None:
        """See :meth:`accord.ports.HubLink.ack`."""
        self._post("/acks", {"acks": [_ack_doc(a) for a in acks]})

    def report(self, reports: Sequence[Report]) -> None:
        """See :meth:`accord.ports.HubLink.report`."""
        self._post("/reports", {"reports": [report_doc(r) for r in reports]})

    def exchange(self, acks: Sequence[Ack], reports: Sequence[Report], wait_s: float) -> list[Order]:
        """See :meth:`accord.ports.HubLink.exchange`."""
        doc = {"acks": [_ack_doc(a) for a in acks], "reports": [report_doc(r) for r in reports]}
        body = json.dumps(doc).encode()
        return parse_orders(self._call("POST", "/exchange", {"wait": f"{min(wait_s, MAX_WAIT_S):g}"}, body))

    def heartbeat(self, loads: Mapping[str, PoolLoad], held: Sequence[str] | None) -> Resync:
        """See :meth:`accord.ports.HubLink.heartbeat`."""
        doc: dict[str, Any] = {
            "loads": {
                p: {"free_gpus": max(0, x.free_gpus), "queued_gpus": max(0, x.queued_gpus)}
                for p, x in loads.items()
            }
        }
        if held is not None:
            doc["held"] = list(held)
        d = self._post("/heartbeat", doc)
        return Resync(list(d.get("expected", [])), list(d.get("lost", [])))

    def desired(self) -> object:
        """See :meth:`accord.ports.enforcement.EnforcementLink.desired`."""
        return self._call("GET", "/enforcement")

    def report_enforcement(self, doc: object) -> None:
        """See :meth:`accord.ports.enforcement.EnforcementLink.report_enforcement`."""
        self._post("/enforcement", doc)

    def log(self, chunk: LogChunk) -> int:
        """See :meth:`accord.ports.HubLink.log`."""
        query = {
            "ref": chunk.ref,
            "stream": chunk.stream.value,
            "offset": chunk.offset,
            "truncated": "true" if chunk.truncated else "false",
        }
        d = self._call("POST", "/logs", query, chunk.data, "application/octet-stream")
        return int(d["next_offset"])


def _ack_doc(a: Ack) -> dict[str, str]:
    return {"order": a.order, "local_id": a.local_id}


def _refusal(r: httpx.Response) -> AccordError:
    try:
        doc = r.json()
    except ValueError:
        doc = {}
    detail = str(doc.get("detail") or r.text[:300])
    if r.status_code == 422:
        problems = [
            Problem(p.get("field", "?"), p.get("message", "?"), p.get("got"), p.get("allowed"))
            for p in doc.get("problems", [])
        ] or [Problem("body", detail)]
        return InvalidInput(problems)
    return _REFUSALS.get(r.status_code, Conflict)(f"hub refused ({r.status_code}): {detail}")
