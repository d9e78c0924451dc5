"""Submissions that were accepted and must not be (issue 18, item 4): the local admin's job
charged to a project that does not exist, a deadline already passed, a command whose program
is blank, ``"gpus": "2"`` or ``true``. Each is refused with a problem naming the field, the
value and what is allowed, by the API (422) and by ``accord submit`` (exit 2, the same
line), and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord import cli
from tests.api.access_world import World, make_world

NOW = "2026-11-02T09:00:00+00:00"   # the world's clock (access_world.T0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("refusals"), people=False) as w:
        w.ok("admin", "POST", "/api/v1/users", json={"id": "pi", "name": "PI", "institution": "bristol"})
        w.ok("admin", "POST", "/api/v1/projects", json={"id": "clim", "name": "Climate", "partner": "uk",
                                                        "theme": "climate"})
        yield w


def _stored(w: World) -> int:
    return len(w.ok("admin", "GET", "/api/v1/jobs", params={"limit": 1000})["jobs"])


# (the body's fields besides the command, the command) -> (field, message, got, allowed starts with)
REFUSED: list[tuple[dict[str, Any], tuple[str, str, str, str]]] = [
    ({"command": ["true"], "project": "nope"},
     ("project", "names no registered project", "'nope'", "a project of `accord project list`")),
    ({"command": ["true"], "deadline": "2026-11-01T00:00:00Z"},
     ("deadline", "is in the past", "'2026-11-01T00:00:00+00:00'", f"a time after now ({NOW})")),
    ({"command": [""]},
     ("command", "names no program (its first item is blank)", "['']", "the program to run first")),
    ({"command": [" ", "-c", "1"]},
     ("command", "names no program (its first item is blank)", "[' ', '-c', '1']",
      "the program to run first")),
    ({"command": ["true"], "gpus": "2"},
     ("gpus", "must be a whole number", "'2'", "a whole number >= 1, at most 1000000")),
    ({"command": ["true"], "gpus": True},
     ("gpus", "must be a whole number", "True", "a whole number >= 1, at most 1000000")),
]


@pytest.mark.parametrize(("body", "expected"), REFUSED, ids=[e[0] + "-" + e[2] for _, e in REFUSED])
@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/preview"])
def test_the_api_refuses_naming_field_value_and_what_is_allowed(
    world: World, path: str, body: dict[str, Any], expected: tuple[str, str, str, str]
) -> None:
    before = _stored(world)
    r = world.call("admin", "POST", path, json=body)
    assert r.status_code == 422, r.text
    [p] = r.json()["problems"]
    field, message, got, allowed = expected
    assert (p["field"], p["message"], p["got"]) == (field, message, got)
    assert p["allowed"].startswith(allowed), p["allowed"]
    assert _stored(world) == before


def test_what_is_allowed_still_passes(world: World) -> None:
    for body in ({"command": ["true"], "project": "clim"}, {"command": ["true"]},
                 {"command": ["true", ""], "deadline": "2026-11-03T00:00:00Z", "gpus": 2}):
        assert world.call("admin", "POST", "/api/v1/jobs", json=body).status_code == 201, body


# ---------------------------------------------------------------- accord submit
@pytest.fixture
def accord(world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``accord ARGS`` in this process against the world's app (as the local admin): exit
    status, stdout, stderr."""
    app = world.client.app

    def client(*, base_url: str, headers: dict[str, str], timeout: float) -> Any:
        return TestClient(app, base_url=base_url, headers=headers)

    monkeypatch.setattr("accord.client.httpx.Client", client)
    monkeypatch.setenv("ACCORD_TOKEN", world.auth("admin")["Authorization"].split()[1])
    monkeypatch.setenv("ACCORD_SERVER", "http://testserver")

    def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            cli.main(list(argv))
        out = capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err

    return run


@pytest.mark.parametrize(("argv", "line"), [
    (["--project", "nope", "--", "true"],
     "project: names no registered project (got 'nope', allowed a project of `accord project list`, "
     "or none (the default project))"),
    (["--deadline", "2026-11-01T00:00:00Z", "--", "true"],
     f"deadline: is in the past (got '2026-11-01T00:00:00+00:00', allowed a time after now ({NOW}), "
     "or none)"),
    (["--", ""],
     "command: names no program (its first item is blank) (got [''], allowed the program to run first, "
     "e.g. python, then its arguments)"),
    (["--gpus", "2x", "--", "true"],
     "accord: error: argument --gpus: must be a whole number (got '2x', allowed a whole number from 1 to "
     "1000000)"),
    (["--gpus", "true", "--", "true"],
     "accord: error: argument --gpus: must be a whole number (got 'true', allowed a whole number from 1 "
     "to 1000000)"),
])
def test_accord_submit_refuses_naming_field_value_and_what_is_allowed(
    world: World, accord: Any, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    before = _stored(world)
    code, out, err = accord("submit", *argv, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.strip().splitlines()[-1] == line
    assert "Traceback" not in err
    assert _stored(world) == before


def test_accord_submit_still_submits(world: World, accord: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = accord("submit", "--project", "clim", "--", "true", capsys=capsys)
    assert code == 0, err
    assert out.strip().endswith(": submitted")


def test_accord_submit_of_a_script_over_the_body_limit_names_the_limit(
    world: World, accord: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = tmp_path / "huge.sh"
    script.write_text("#!/bin/bash\n" + "# padding\n" * 500_000)     # 5 MB: over the body's 4 MiB
    code, out, err = accord("submit", str(script), capsys=capsys)
    assert (code, out) == (2, "")
    assert err.strip().startswith("body: is too large (got ")
    assert err.strip().endswith("bytes, allowed at most 4,194,304 bytes)")
    script.write_text("#!/bin/bash\n" + "# padding\n" * 150_000)     # 1.5 MB: over the script's own
    code, _, err = accord("submit", str(script), capsys=capsys)
    assert code == 2 and err.strip() == ("script: is too large (got '1500012 bytes', allowed at most "
                                         "1000000 bytes)")
