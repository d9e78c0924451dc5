"""A small HTTP client for Accord's REST API (used by the CLI and tests).

Problem responses become :class:`AccordError` subclasses; a server that cannot
be reached, answers 5xx or rate-limits becomes :class:`Unavailable` with one clear
sentence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from accord.domain.errors import (
    AccordError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    Unavailable,
)

# The same as accord.runtime's DEFAULT_PORT and default_data_dir (a unit test checks), not
# imported from there: the runtime imports the whole server, which would cost every CLI
# command seconds of start-up.
DEFAULT_PORT = 8642


def default_data_dir() -> Path:
    """``$ACCORD_DATA_DIR``, or ``~/.accord``."""
    return Path(os.environ.get("ACCORD_DATA_DIR") or Path.home() / ".accord")


class Unauthorized(AccordError):
    """The server refused the token."""

    title = "Unauthorized"


TOKEN_SOURCES = ("--token-file, $ACCORD_TOKEN, then the admin token ($ACCORD_ADMIN_TOKEN_FILE or "  # noqa: S105
                 "the data directory's admin.token), first found")


def discover(server: str | None, data_dir: Path | None,
             token_file: Path | None = None) -> tuple[str, str | None]:
    """The server URL and token to use.

    URL: ``server``, ``$ACCORD_SERVER``, the ``server.json`` that ``accord up`` wrote
    in the data directory, then the default port. Token: ``token_file`` (an API token
    minted with ``accord token create``), ``$ACCORD_TOKEN``, then the admin token: the
    file ``$ACCORD_ADMIN_TOKEN_FILE`` names (a hub's replicas share it), else the data
    directory's (the embedded demo's); None when there is none.

    Raises:
        InvalidInput: ``token_file`` cannot be read or is empty.
    """
    data = data_dir or default_data_dir()
    url = server or os.environ.get("ACCORD_SERVER")
    if url is None:
        try:
            url = json.loads((data / "server.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            url = f"http://127.0.0.1:{DEFAULT_PORT}"
    token = _read_token_file(token_file) if token_file else os.environ.get("ACCORD_TOKEN") or None
    if token is None:
        try:
            admin = os.environ.get("ACCORD_ADMIN_TOKEN_FILE") or data / "admin.token"
            token = Path(admin).read_text().strip() or None
        except OSError:
            token = None
    return str(url).rstrip("/"), token


def _read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding white space removed).

    Raises:
        InvalidInput: unreadable or empty.
    """
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput([Problem("--token-file", f"cannot read it: {reason}", str(path),
                                    "a file holding one token")]) from None
    if not token:
        raise InvalidInput([Problem("--token-file", "is empty", str(path), "a file holding one token")])
    return token


class Client:
    """Calls the API; every method raises AccordError subclasses on failure."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded JSON body.

        Raises:
            Unavailable: the server cannot be reached or answered 5xx.
            InvalidInput, NotFound, Conflict, Forbidden, Unauthorized: 4xx answers.
        """
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach Accord at {self.url} ({type(exc).__name__}); "
                              "is 'accord up' running? (or pass --server URL)") from None
        if resp.status_code < 400:
            return resp.json() if resp.content else None
        raise _error_from(resp)

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with the query ``params`` that are not None; the decoded JSON.

        Raises: as :meth:`request`.
        """
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` (JSON; keys whose value is None are left out) to ``path``.

        Raises: as :meth:`request`.
        """
        clean = None if body is None else {k: v for k, v in body.items() if v is not None}
        return self.request("POST", path, json=clean)

    def delete(self, path: str) -> Any:
        """DELETE ``path``; the decoded JSON (None when the answer has no body).

        Raises: as :meth:`request`.
        """
        return self.request("DELETE", path)

    def submit(self, job: dict[str, Any], idempotency_key: str | None = None) -> Any:
        """POST a job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/api/v1/jobs", json=job, headers=headers)

    def jobs(self, states: list[str] | None = None, limit: int = 100) -> Any:
        """List jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if states:
            params["state"] = states
        return self.request("GET", "/api/v1/jobs", params=params)["jobs"]

    def job(self, job_id: str) -> Any:
        """One job with its story."""
        return self.request("GET", f"/api/v1/jobs/{segment(job_id)}")

    def cancel(self, job_id: str) -> Any:
        """Cancel a job."""
        return self.request("POST", f"/api/v1/jobs/{segment(job_id)}/cancel")

    def logs(self, job_id: str) -> Any:
        """A job's stdout and stderr."""
        return self.request("GET", f"/api/v1/jobs/{segment(job_id)}/logs")


def segment(value: str) -> str:
    """``value`` quoted to be one segment of a URL path (so an id cannot change the route).

    >>> segment("a/../b c")
    'a%2F..%2Fb%20c'
    """
    from urllib.parse import quote

    return quote(value, safe="")


def _error_from(resp: httpx.Response) -> AccordError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": resp.text[:200]}
    detail = str(body.get("detail") or body.get("title") or resp.reason_phrase)
    status = resp.status_code
    if status == 401:
        return Unauthorized(f"{detail} (the token comes from {TOKEN_SOURCES})")
    if status == 429:
        return Unavailable(detail)
    if status in (400, 413, 422) and body.get("problems"):   # 413: the body over its limit
        return InvalidInput([Problem(p["field"], p["message"], p.get("got"), p.get("allowed"))
                             for p in body["problems"]])
    kinds: dict[int, type[AccordError]] = {
        400: InvalidInput, 404: NotFound, 409: Conflict, 403: Forbidden, 422: InvalidInput}
    kind = kinds.get(status)
    if kind is InvalidInput:
        return InvalidInput([Problem("request", detail)])
    if kind is not None:
        return kind(detail)
    return Unavailable(f"server error {status}: {detail}")
