"""Request ids: every request gets one, taken from its ``X-Request-ID`` header when that is
safe (:func:`accord.service.log_context.request_id_from`: at most 128 letters, digits and
``._:-``; anything else is replaced by a new id, never refused), returned in the response's
``X-Request-ID`` header, bound to every log line written while it is handled
(:mod:`accord.service.log_context`) and kept in ``request.state.request_id`` (a submission
writes it into the job's story: its first event's ``stimulus``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from accord.service.log_context import REQUEST_ID_HEADER, bound, request_id_from

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")


class RequestIds:
    """Pure ASGI middleware giving each HTTP request its id (see the module's docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or () if k == _HEADER), None)
        rid = request_id_from(given.decode("latin-1") if given is not None else None)
        scope.setdefault("state", {})["request_id"] = rid

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message["headers"] = [*headers, (_HEADER, rid.encode("latin-1"))]
            await send(message)

        with bound(request_id=rid):
            await self.app(scope, receive, tagged)
