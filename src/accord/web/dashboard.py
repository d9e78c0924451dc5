"""Serve the web dashboard: static HTML, CSS and JavaScript modules from ``static/``.

The files hold no data: the browser reads everything from the JSON API with the user's
bearer token (kept in ``sessionStorage``), so serving them needs no login. Every
response carries a Content-Security-Policy that allows only this origin's scripts,
styles and API (no inline script, no third party), and may not be framed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data: blob:; connect-src 'self'; "
                                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                "form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _DashboardFiles(StaticFiles):
    """Static files with the dashboard's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's response (or Starlette's 404), with :data:`SECURITY_HEADERS`.

        Raises:
            starlette.exceptions.HTTPException: 404 or 405, as :class:`StaticFiles` does.
        """
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/dashboard/`` (``/dashboard`` redirects there)."""
    app.mount(PREFIX, _DashboardFiles(directory=STATIC, html=True), name="dashboard")
