"""A small HTTP client for Accord's REST API (used by the CLI and tests).

Problem responses become :class:`AccordError` subclasses; a server that cannot
be reached becomes :class:`Unavailable` with one clear sentence.
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
from accord.runtime import DEFAULT_PORT, default_data_dir


class Unauthorized(AccordError):
    """The server refused the token."""

    title = "Unauthorized"


def discover(server: str | None, data_dir: Path | None) -> tuple[str, str | None]:
    """The server URL and token to use.

    Order: the arguments, ``$ACCORD_SERVER`` / ``$ACCORD_TOKEN``, then the files
    that ``accord up`` writes in the data directory, then the default port.
    """
    data = data_dir or default_data_dir()
    url = server or os.environ.get("ACCORD_SERVER")
    if url is None:
        try:
            url = json.loads((data / "server.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            url = f"http://127.0.0.1:{DEFAULT_PORT}"
    token = os.environ.get("ACCORD_TOKEN")
    if token is None:
        try:
            token = (data / "admin.token").read_text().strip()
        except OSError:
            token = None
    return str(url).rstrip("/"), token


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
            return resp.json()
        raise _error_from(resp)

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
        return self.request("GET", f"/api/v1/jobs/{_segment(job_id)}")

    def cancel(self, job_id: str) -> Any:
        """Cancel a job."""
        return self.request("POST", f"/api/v1/jobs/{_segment(job_id)}/cancel")

    def logs(self, job_id: str) -> Any:
        """A job's stdout and stderr."""
        return self.request("GET", f"/api/v1/jobs/{_segment(job_id)}/logs")


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _error_from(resp: httpx.Response) -> AccordError:
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text[:200]}
    detail = str(body.get("detail") or body.get("title") or resp.reason_phrase)
    status = resp.status_code
    if status == 401:
        return Unauthorized(f"{detail} (token from $ACCORD_TOKEN or the data directory)")
    if status in (400, 422) and body.get("problems"):
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
