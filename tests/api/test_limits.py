"""Request bodies, each field and each list have limits (issue 18: a 50 MB ``command`` was
accepted with 201, and the database and every admin job listing grew by 50 MB).

A body over its limit is a 413 naming the limit before anything reads it, whether it
declares its length or not; a field or list over its own is a 422 naming the field and the
limit; ``docs/security.md`` ("Limits") states the declared values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from accord.api.limits import MAX_BODY_BYTES, ROUTE_BODY_BYTES, body_limit
from accord.domain.jobs.fields import FIELDS, JOB_FIELDS, MAX_COMMAND_CHARS
from tests.api.access_world import World, make_world
from tests.conftest import ROOT

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("limits"), people=False) as w:
        yield w


def _jobs(w: World) -> int:
    return len(w.ok("admin", "GET", "/api/v1/jobs", params={"limit": 1000})["jobs"])


def _problems(r: Any) -> list[tuple[str, str, str | None, str | None]]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    return [(p["field"], p["message"], p["got"], p["allowed"]) for p in r.json()["problems"]]


def test_a_50_mb_command_is_refused_with_413_naming_the_limit_and_nothing_is_stored(world: World) -> None:
    before = _jobs(world)
    r = world.call("admin", "POST", "/api/v1/jobs", json={"command": ["echo", "x" * FIFTY_MB]})
    assert r.status_code == 413, r.text[:300]
    [(field, message, got, allowed)] = _problems(r)
    assert (field, message, allowed) == ("body", "is too large", f"at most {MAX_BODY_BYTES:,} bytes")
    assert got is not None and int(got.split()[0].replace(",", "")) > FIFTY_MB
    assert f"{MAX_BODY_BYTES:,} bytes" in r.json()["detail"]
    assert _jobs(world) == before


def test_a_body_sent_without_its_length_is_counted_as_it_comes(world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"command": ["echo", "'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    r = world.client.post("/api/v1/jobs", content=chunks(),
                          headers={**world.auth("admin"), "content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert _problems(r)[0][:2] == ("body", "is too large")

    def small() -> Iterator[bytes]:
        yield b'{"command": ["echo", '
        yield b'"hello"]}'

    ok = world.client.post("/api/v1/jobs", content=small(),
                           headers={**world.auth("admin"), "content-type": "application/json"})
    assert ok.status_code == 201, ok.text     # a small chunked body reaches the route whole


def test_a_command_over_its_characters_is_a_422_naming_the_field_and_limit(world: World) -> None:
    before = _jobs(world)
    for command in (["echo", "x" * MAX_COMMAND_CHARS], ["x" * 600] * 200):
        r = world.call("admin", "POST", "/api/v1/jobs", json={"command": command})
        assert r.status_code == 422, r.text[:300]
        [(field, message, _got, allowed)] = _problems(r)
        assert field == "command" and message.startswith("is too long (")
        assert allowed is not None and f"{MAX_COMMAND_CHARS} characters in all" in allowed
    assert _jobs(world) == before
    at_most = world.call("admin", "POST", "/api/v1/jobs", json={"command": ["x" * MAX_COMMAND_CHARS]})
    assert at_most.status_code == 201, at_most.text[:300]


def test_a_route_with_a_larger_limit_takes_a_larger_body(world: World) -> None:
    assert body_limit("/api/v1/statements/verify") > MAX_BODY_BYTES
    big = {"statement": {"entries": ["x" * (MAX_BODY_BYTES + 1)]}, "public_key_pem": "not a key"}
    r = world.call("admin", "POST", "/api/v1/statements/verify", json=big)
    assert r.status_code == 422 and _problems(r)[0][0] == "public_key_pem", r.text[:300]


def test_the_lists_items_of_other_bodies_are_bounded(world: World) -> None:
    r = world.call("admin", "POST", "/api/v1/tokens", json={"name": "t", "scopes": ["s" * 65]})
    assert r.status_code == 422, r.text
    assert [p[0] for p in _problems(r)] == ["scopes.0"]
    assert "max_length 64" in (_problems(r)[0][3] or "")


def test_413_is_documented_for_every_operation(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "413" in op["responses"], f"{method.upper()} {path}"


# ---------------------------------------------------------------- the docs
def _security_limits() -> dict[str, str]:
    doc = (ROOT / "docs" / "security.md").read_text()
    section = doc.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.finditer(r"^\| (.+?) \| (.+?) \| .+ \|$", section, re.MULTILINE)
    return {m.group(1): m.group(2) for m in rows}


def test_the_docs_state_the_declared_limits() -> None:
    rows = _security_limits()
    assert rows["any request body"].startswith(f"{MAX_BODY_BYTES:,} bytes")
    for path, limit in ROUTE_BODY_BYTES.items():
        assert rows[f"the body of `POST {path}`"].startswith(f"{limit:,} bytes")
    for f in JOB_FIELDS:
        row = next((text for what, text in rows.items()
                    if f"`{f.name}`" in what and what.startswith("a job's")), None)
        assert row is not None, f"no row for the job's {f.name}"
        for bound in (f.max_length, f.max_items, f.maximum):
            if bound is not None and f.kind.value != "duration":
                assert f"{bound:,}" in row, (f.name, bound, row)
    assert f"{FIELDS['time_limit'].maximum:,} s" in rows["a job's `time_limit`"]
