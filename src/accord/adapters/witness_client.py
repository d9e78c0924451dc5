"""The hub's HTTP client of partners' witnesses (C2SP ``tlog-witness`` ``add-checkpoint``):
transport failures become :class:`~accord.domain.errors.Unavailable` naming the witness's URL
and the cause (``connection refused``, ``timed out after 10 s``)."""

from __future__ import annotations

import httpx

from accord.domain.errors import Unavailable
from accord.ports.witnesses import WitnessAnswer

MAX_ANSWER = 64 * 1024
"""The longest answer read from a witness (a cosignature line is about 150 bytes)."""


class HttpWitnessClient:
    """:class:`~accord.ports.witnesses.WitnessClient` over httpx (a new connection per call:
    collections are minutes apart)."""

    def add_checkpoint(self, url: str, body: bytes, timeout: float) -> WitnessAnswer:
        """POST ``body`` to ``url``/add-checkpoint; the answer, whatever its status.

        Raises:
            Unavailable: the witness cannot be reached, or answered with more than
                :data:`MAX_ANSWER` bytes.
        """
        target = url.rstrip("/") + "/add-checkpoint"
        try:
            resp = httpx.post(target, content=body, timeout=timeout,
                              headers={"content-type": "text/plain; charset=utf-8"})
        except httpx.TimeoutException:
            raise Unavailable(f"unreachable: no answer within {timeout:g} s") from None
        except httpx.TransportError as exc:
            raise Unavailable(f"unreachable: {_cause(exc)}") from None
        if len(resp.content) > MAX_ANSWER:
            raise Unavailable(f"answered {len(resp.content)} bytes (more than {MAX_ANSWER})")
        return WitnessAnswer(resp.status_code, resp.content.decode("utf-8", "replace"),
                             resp.headers.get("content-type", ""))


def _cause(exc: Exception) -> str:
    """The innermost reason (``connection refused`` rather than httpx's wrapper text)."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    for known in ("connection refused", "name or service not known", "network is unreachable",
                  "no route to host", "connection reset"):
        if known in lowered:
            return known
    return text[:200]
