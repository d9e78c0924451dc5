"""The authorisation matrix: every role × every route × own / other partner / other
project. Allowed calls succeed; every other one is a 403 that reads the same whether
or not the object exists, so nobody learns what is not theirs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.access_world import World, make_world

USERS = ("alice", "bob", "claire", "opfr", "pofr", "pouk", "audfr", "root")


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("matrix")) as world:
        world.enrol("zed", "bristol")
        for user, pid, partner in (("alice", "climate-a", "uk"), ("bob", "climate-b", "uk"),
                                   ("claire", "fr-proj", "fr")):
            world.ok(user, "POST", "/api/v1/projects", json={"id": pid, "name": pid, "partner": partner,
                                                              "theme": "climate"})
        a1 = world.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
                      json={"agreement": "uk-fr", "host": "fr", "units": 100, "start": "2026-11",
                            "end": "2026-12"})
        world.ok("pofr", "POST", f"/api/v1/allocations/{a1['id']}/decision", json={"approve": True})
        a2 = world.ok("alice", "POST", "/api/v1/projects/climate-a/allocations",
                      json={"agreement": "uk-fr", "host": "fr", "units": 5, "start": "2026-12",
                            "end": "2026-12"})
        world.ids.update(a2=a2["id"],
                         J_A=world.submit("alice", project="climate-a", site="paris")["id"],
                         J_B=world.submit("bob", project="climate-b")["id"],
                         J_C=world.submit("claire", project="fr-proj")["id"])
        world.broker.step()
        assert world.job(world.ids["J_A"])["site"] == "paris"
        assert world.job(world.ids["J_B"])["site"] == "bristol"
        assert world.job(world.ids["J_C"])["site"] == "paris"
        yield world


READS: list[tuple[str, set[str]]] = [
    ("/api/v1/jobs/{J_A}", {"alice", "opfr", "pofr", "pouk", "audfr", "root"}),
    ("/api/v1/jobs/{J_B}", {"bob", "pouk", "root"}),
    ("/api/v1/jobs/{J_C}", {"claire", "opfr", "pofr", "audfr", "root"}),
    ("/api/v1/jobs/{J_A}/logs", {"alice", "root"}),
    ("/api/v1/jobs/{J_C}/logs", {"claire", "root"}),
    ("/api/v1/jobs/{J_A}/footprint", {"alice", "opfr", "pofr", "pouk", "audfr", "root"}),
    ("/api/v1/ledger/entries?job={J_B}", {"bob", "pouk", "root"}),
    ("/api/v1/projects/climate-a", {"alice", "pofr", "pouk", "audfr", "root"}),
    ("/api/v1/projects/climate-b", {"bob", "pouk", "root"}),
    ("/api/v1/projects/fr-proj", {"claire", "pofr", "audfr", "root"}),
    ("/api/v1/statements/uk-fr/2026-11", {"pofr", "pouk", "audfr", "root"}),
    ("/api/v1/ledger/balances?agreement=uk-fr", {"pofr", "pouk", "audfr", "root"}),
    ("/api/v1/ledger/entries?agreement=uk-fr", {"pofr", "pouk", "audfr", "root"}),
    ("/api/v1/ledger/verify", {"audfr", "root"}),
    ("/api/v1/ledger/reconcile?period=2026-11", {"opfr", "audfr", "root"}),
    ("/api/v1/compliance", {"opfr", "pofr", "pouk", "audfr", "root"}),
    ("/api/v1/audit", {"audfr", "root"}),
    ("/api/v1/users/alice", {"alice", "root"}),
]


def fill(w: World, path: str) -> str:
    return path.format(**w.ids)


@pytest.mark.parametrize(("path", "allowed"), READS, ids=[p for p, _ in READS])
def test_reads(w: World, path: str, allowed: set[str]) -> None:
    for user in USERS:
        r = w.call(user, "GET", fill(w, path))
        expected = 200 if user in allowed else 403
        assert r.status_code == expected, (user, path, r.status_code, r.text[:200])


HIDDEN = [("/api/v1/jobs/{J_A}", "/api/v1/jobs/jnosuchjob0000"),
          ("/api/v1/jobs/{J_A}/logs", "/api/v1/jobs/jnosuchjob0000/logs"),
          ("/api/v1/projects/climate-a", "/api/v1/projects/no-such-project"),
          ("/api/v1/users/alice", "/api/v1/users/nobody")]


@pytest.mark.parametrize(("real", "missing"), HIDDEN)
def test_refusals_do_not_tell_whether_the_object_exists(w: World, real: str, missing: str) -> None:
    a = w.call("bob", "GET", fill(w, real))
    b = w.call("bob", "GET", missing)
    assert a.status_code == b.status_code == 403

    def mask(r: Any, name: str) -> str:
        return str(r.json()["detail"]).replace(name, "<id>")

    real_id = fill(w, real).split("/")[4].split("?")[0]
    missing_id = missing.split("/")[4]
    assert mask(a, real_id) == mask(b, missing_id)
    assert w.call("root", "GET", missing).status_code in (403, 404)   # the admin may know


def test_lists_show_only_what_each_may_see(w: World) -> None:
    def jobs(user: str) -> set[str]:
        ids = {j["id"] for j in w.ok(user, "GET", "/api/v1/jobs")["jobs"]}
        return {k for k, v in w.ids.items() if v in ids}

    assert jobs("alice") == {"J_A"} and jobs("bob") == {"J_B"} and jobs("claire") == {"J_C"}
    assert jobs("opfr") == {"J_A", "J_C"} and jobs("pouk") == {"J_A", "J_B"}
    assert jobs("root") >= {"J_A", "J_B", "J_C"}

    def projects(user: str) -> set[str]:
        return {p["id"] for p in w.ok(user, "GET", "/api/v1/projects")["projects"]}

    assert projects("alice") == {"climate-a"} and projects("claire") == {"fr-proj"}
    assert projects("pouk") == {"climate-a", "climate-b"} and projects("pofr") == {"climate-a", "fr-proj"}
    assert projects("opfr") == set()

    def allocations(user: str) -> int:
        return len(w.ok(user, "GET", "/api/v1/allocations")["allocations"])

    assert allocations("alice") == 2 and allocations("pofr") == 2 and allocations("bob") == 0
    assert allocations("claire") == 0

    def emissions_jobs(user: str) -> int:
        return int(w.ok(user, "GET", "/api/v1/emissions")["total"]["jobs"])

    assert emissions_jobs("bob") == 0          # no usage of others is ever counted for him


CHANGES: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("POST", "/api/v1/projects/climate-a/members", {"user": "zed"}, {"alice", "root"}),
    ("POST", "/api/v1/users/alice/grants", {"role": "auditor", "scope": "partner", "target": "uk"}, {"root"}),
    ("POST", "/api/v1/ledger/periods/2025-01/close", {}, {"root"}),
    ("POST", "/api/v1/allocations/{a2}/decision", {"approve": True, "reason": "ok"}, {"pofr"}),
    ("POST", "/api/v1/jobs/{J_B}/cancel", {}, {"bob", "root"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), CHANGES, ids=[c[1] for c in CHANGES])
def test_changes(w: World, method: str, path: str, body: dict[str, Any], allowed: set[str]) -> None:
    for user in [u for u in USERS if u not in allowed] + sorted(allowed):
        r = w.call(user, method, fill(w, path), json=body)
        expected = (200, 201) if user in allowed else (403,)
        assert r.status_code in expected, (user, path, r.status_code, r.text[:200])


def test_enrolment_is_for_admins_only(w: World) -> None:
    for user in USERS:
        r = w.call(user, "POST", "/api/v1/users", json={"id": f"new-{user}", "name": "N",
                                                        "institution": "bristol"})
        assert r.status_code == (201 if user == "root" else 403), user
