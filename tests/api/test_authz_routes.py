"""Every route of the app is either in the authorisation matrix or on a short public list:
a route added without saying who may call it fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, Route

from tests.api.access_world import ADMIN, World, make_world
from tests.api.test_authz_matrix import MATRIX

# (method, path template) → why anyone may call it without a token ("*": a mount, every method)
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: says only 'ok'",
    ("GET", "/"): "status page: the federation's public shape (partners, sites), no one's data",
    ("GET", "/api/v1/ledger/public-key"): "the operator's public key: anyone verifies statements offline",
    ("GET", "/metrics"): "Prometheus's scrape: counts and timings labelled only by bounded sets "
                         "(states, site and agreement ids, outcomes), never a job id or a user "
                         "(docs/operations.md)",
    ("GET", "/openapi.json"): "the API's schema",
    ("GET", "/docs"): "the schema's Swagger UI",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI's OAuth2 helper page",
    ("GET", "/redoc"): "the schema's ReDoc page",
    ("*", "/dashboard"): "the dashboard's static files: they hold no data and read everything "
                         "through the API with the user's own token",
}

# (method, path template) → why no token reaches it: the site agents' routes take only an RFC 9421
# signature by a current key of an agent site (docs/design/site-agent.md); a bearer token,
# even the admin's, is no credential there, and what each answers is its own site's alone
AGENT_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/agent/v1/site"): "the agent's own site: its partner and pools",
    ("GET", "/api/agent/v1/orders"): "the orders for the agent's own site",
    ("POST", "/api/agent/v1/acks"): "the agent holds orders of its own site",
    ("POST", "/api/agent/v1/reports"): "what the agent says of its own site's jobs, usage signed by the site",
    ("POST", "/api/agent/v1/exchange"): "acks and reports of its own site's, then its own site's orders",
    ("POST", "/api/agent/v1/heartbeat"): "the agent's loads and what it holds",
    ("POST", "/api/agent/v1/logs"): "output of its own site's jobs, streamed home",
    ("GET", "/api/agent/v1/inputs/{sha256}"): "an input file of one of its own site's jobs",
    ("POST", "/api/agent/v1/outputs"): "a declared output file of one of its own site's jobs",
    ("GET", "/api/agent/v1/enforcement"): "the agent's own site's desired Slurm accounts and members",
    ("POST", "/api/agent/v1/enforcement"): "what the agent made of its own site's accounts and identities",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("routes"), people=False) as w:
        yield w


def app_routes(w: World) -> list[BaseRoute]:
    """The app's routes in the order they are matched, those of its included routers
    in their place (FastAPI keeps an included router as one node of ``app.routes``)."""
    return [c.original_route for c in iter_route_contexts(w.client.app.routes)]   # type: ignore[attr-defined]


def declared(w: World) -> dict[tuple[str, str], Route | Mount]:
    """(method, path template) of every route of the app (HEAD, which Starlette adds to
    every GET of a plain route, aside)."""
    found: dict[tuple[str, str], Route | Mount] = {}
    for r in app_routes(w):
        if isinstance(r, Mount):
            found["*", r.path] = r
        elif isinstance(r, APIRoute | Route):
            for method in sorted((r.methods or set()) - {"HEAD"}):
                found[method, r.path] = r
        else:
            raise AssertionError(f"a route of an unexpected kind: {r!r}")
    return found


def test_every_route_is_in_the_matrix_or_public(world: World) -> None:
    routes = declared(world)
    matrix = {c.key for c in MATRIX}
    assert len([k for k in routes if isinstance(routes[k], APIRoute)]) >= 48   # the app is whole
    unlisted = sorted(k for k in routes if k not in matrix and k not in PUBLIC and k not in AGENT_ROUTES)
    assert not unlisted, f"routes nobody said who may call: add them to MATRIX (or PUBLIC): {unlisted}"
    public, agent = PUBLIC.keys(), AGENT_ROUTES.keys()
    both = sorted((matrix & public) | (matrix & agent) | (public & agent))
    assert not both, f"routes on two lists: {both}"
    stale = sorted((matrix | PUBLIC.keys() | AGENT_ROUTES.keys()) - routes.keys())
    assert not stale, f"the matrix or the public list names routes the app does not have: {stale}"


def test_each_case_requests_the_route_it_is_filed_under(world: World) -> None:
    routes = declared(world)
    for case in MATRIX:
        route = routes[case.key]
        path = re.sub(r"\{\w+\}", "x1", (case.path or case.route).split("?")[0])
        assert isinstance(route, APIRoute) and route.path_regex.match(path), (case.id, route)
        first = next(r for r in app_routes(world)
                     if isinstance(r, APIRoute) and case.method in (r.methods or ())
                     and r.path_regex.match(path))
        assert first is route, f"{case.id} would be served by {first.path}"


def test_public_routes_answer_without_a_token(world: World) -> None:
    for method, path in PUBLIC:
        url = "/dashboard/" if method == "*" else path
        r = world.client.request("GET" if method == "*" else method, url)
        assert r.status_code == 200, (method, path, r.status_code, r.text[:200])


def test_agent_routes_are_every_route_under_the_agent_prefix(world: World) -> None:
    under = {k for k in declared(world) if k[1].startswith("/api/agent/")}
    assert under == AGENT_ROUTES.keys()


@pytest.mark.parametrize(("method", "path"), sorted(AGENT_ROUTES))
def test_agent_routes_refuse_a_request_without_a_signature(world: World, method: str, path: str) -> None:
    client = TestClient(world.client.app, raise_server_exceptions=False, client=(f"agentless-{path}", 1))
    params: dict[str, str | int] = {"ref": "x", "stream": "stdout", "offset": 0, "name": "o",
                                    "sha256": "0" * 64}
    for headers in ({}, ADMIN, {"Authorization": "Signature keyid=x"}):
        r = client.request(method, path.replace("{sha256}", "0" * 64), params=params,
                           headers=headers, content=b"{}" if method == "POST" else None)
        assert r.status_code == 401, (method, path, headers, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "needs an HTTP message signature" in r.json()["detail"]
