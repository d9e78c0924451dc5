"""The size limit of a request body: a request over it is refused with 413 and the limit,
before any route reads it.

Each field and list of a body has its own bound besides (the job's in
:mod:`accord.domain.jobs.fields`, the other routes' in their request models), refused with
422 naming the field and the bound; ``docs/security.md`` ("Limits") lists them all, and
``tests/api/test_limits.py`` checks the table there against these declarations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from accord.api.common import problem
from accord.domain.errors import Problem
from accord.domain.jobs.files import FILE_BYTES

#: Bytes of any request body: a job's largest script (1,000,000 bytes in UTF-8) escaped as
#: JSON, with room to spare.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Routes that take more: a signed statement holds every entry of its month with its
#: inclusion proof (about 2 kB each).
ROUTE_BODY_BYTES: dict[str, int] = {"/api/v1/statements/verify": 64 * 1024 * 1024,
                                    # a job's input or output file (accord.domain.jobs.files.FILE_BYTES)
                                    "/api/v1/files": FILE_BYTES, "/api/agent/v1/outputs": FILE_BYTES}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit(path: str) -> int:
    """The most bytes a request body to ``path`` may have.

    >>> body_limit("/api/v1/jobs"), body_limit("/api/v1/statements/verify")
    (4194304, 67108864)
    """
    return ROUTE_BODY_BYTES.get(path, MAX_BODY_BYTES)


class BodyLimit:
    """Refuses a body over :func:`body_limit` with 413 (pure ASGI). A declared
    ``Content-Length`` is checked before anything is read; a body without one (chunked) is
    read here up to the limit and handed on whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None:
            if declared > limit:
                await too_large(declared, limit)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        body, size = await _read_up_to(receive, limit)
        if body is None:
            await too_large(size, limit, more=True)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def too_large(size: int, limit: int, *, more: bool = False) -> Any:
    """The 413 problem response for a body of ``size`` bytes (``more``: at least that)."""
    got = f"{'over ' if more else ''}{size:,} bytes"
    allowed = f"at most {limit:,} bytes"
    return problem(413, "Request body too large", f"body: is too large (got {got}, allowed {allowed})",
                   [Problem("body", "is too large", got, allowed)])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


async def _read_up_to(receive: Receive, limit: int) -> tuple[bytes | None, int]:
    """The whole body, or None and the bytes read once over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), size     # the client went away: the app will see it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, size
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then passes on what the client sends (its going
    away)."""
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
