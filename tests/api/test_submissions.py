"""One path for a submission: the API's submit and preview and the campaigns all go through
:class:`~accord.service.submissions.Submissions` (one parse, the gate, the machine, the group
committer); the body is validated once, by the domain's parser, and documented with the schema
derived from the job's declared fields."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from accord.domain.access.rules import Principal
from accord.domain.campaigns.campaign import run_key
from accord.domain.jobs.fields import request_schema
from accord.service.broker import Broker
from accord.service.submissions import Prepared, Submissions
from tests.api.access_world import World, make_world
from tests.api.test_authz_matrix import campaign_doc

SRC = Path(__file__).resolve().parents[2] / "src" / "accord"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        w.ok("alice", "POST", "/api/v1/projects", json={"id": "climate-a", "name": "Climate A",
                                                         "partner": "uk", "theme": "climate"})
        yield w


def test_the_api_and_the_campaigns_submit_through_submissions(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, dict[str, object], str | None]] = []
    made: list[str] = []
    prepare, new_submission = Submissions.prepare, Broker.new_submission

    def spy(self: Submissions, p: Principal, document: Mapping[str, object],
            idempotency_key: str | None = None, request_id: str | None = None) -> Prepared:
        seen.append((p.user, dict(document), idempotency_key))
        return prepare(self, p, document, idempotency_key, request_id)

    def machine(self: Broker, *args: Any, **kw: Any) -> Any:
        made.append(args[1])
        return new_submission(self, *args, **kw)

    monkeypatch.setattr(Submissions, "prepare", spy)
    monkeypatch.setattr(Broker, "new_submission", machine)
    w = world
    job = w.submit("alice", project="climate-a")
    w.ok("alice", "POST", "/api/v1/jobs/preview", json={"command": ["true"], "project": "climate-a"})
    w.ok("alice", "POST", "/api/v1/campaigns", json=campaign_doc("one-path"))
    runs = w.ok("alice", "POST", "/api/v1/campaigns/one-path/submit")["runs"]
    assert [(user, key) for user, _, key in seen] == [
        ("alice", None), ("alice", None), ("alice", run_key("one-path", "arithmetic", "calc"))]
    assert seen[2][1]["script"] and seen[2][1]["project"] == "climate-a"
    assert made == ["alice"] * 3          # the machine made a job for each, and for nothing else
    assert w.job(runs[0]["job"])["spec"]["partner"] == "uk" and job["spec"]["theme"] == "climate"


def _callers(name: str) -> set[str]:
    """The modules of ``src/accord`` that call a method ``name``."""
    out = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == name):
                out.add(str(path.relative_to(SRC)))
    return out


def test_nothing_else_shapes_or_makes_a_submission() -> None:
    """The gate's shaping has one caller; the machine's new job has Submissions, the broker's
    own gateless shortcut (tests, benchmarks) and the simulator (no person, no gate)."""
    assert _callers("shape") == {"service/submissions.py"}
    assert _callers("new_submission") == {"service/submissions.py", "service/broker.py",
                                          "sim/broker_engine.py"}
    assert _callers("parse_job") | _callers("parse_job_spec") <= {"service/submissions.py",
                                                                  "service/broker.py",
                                                                  "sim/broker_engine.py"}


def test_the_body_is_documented_with_the_declared_schema(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for path in ("/api/v1/jobs", "/api/v1/jobs/preview"):
        body = spec["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == request_schema()


@pytest.mark.parametrize(("content", "media", "message"), [
    (b"[1, 2]", "application/json", "must be a JSON object"),
    (b'"ls"', "application/json", "must be a JSON object"),
    (b"3", "application/json", "must be a JSON object"),
    (b"null", "application/json", "must be a JSON object"),
    (b"", "application/json", "is required"),
    (b"{not json", "application/json", "is not valid JSON"),
    (b'{"command": ["x"]}', "text/plain", "must be sent as application/json"),
])
@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/preview"])
def test_a_body_that_is_not_a_json_object_is_a_422_naming_body(
    world: World, path: str, content: bytes, media: str, message: str
) -> None:
    r = world.client.post(path, content=content, headers={**world.auth("admin"), "content-type": media})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [(p["field"], p["message"]) for p in r.json()["problems"]] == [("body", message)]


def test_bounds_the_api_model_had_are_refused_with_every_problem_listed(world: World) -> None:
    r = world.call("admin", "POST", "/api/v1/jobs", json={
        "command": ["x"], "name": "n" * 129, "data_residency": ["GB"] * 301, "gpu_model": "g" * 65})
    assert r.status_code == 422, r.text
    problems = {p["field"]: p for p in r.json()["problems"]}
    assert set(problems) == {"name", "data_residency", "gpu_model"}
    assert problems["name"]["message"] == "is too long (129 characters)"
    assert problems["name"]["allowed"] == "at most 128 characters"
    assert problems["data_residency"]["got"] == "'301 items'"
    assert world.broker.store.list_jobs(limit=10) == []


def test_null_means_not_given_as_it_did(world: World) -> None:
    r = world.call("admin", "POST", "/api/v1/jobs", json={"command": ["x"], "name": None, "site": None})
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["name"] == "x"
    r = world.call("admin", "POST", "/api/v1/jobs", json={"command": ["x"], "gpus": None})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "gpus"
