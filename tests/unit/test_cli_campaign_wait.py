"""``accord campaign submit ID --wait``: the README's campaign walk-through reads the results
right after it, so it waits until every pair's job has ended (as ``accord submit --wait``)
and exits 1 if one did not complete."""

from __future__ import annotations

from typing import Any

import pytest

from accord import cli

RUNS = {"runs": [{"task": "arithmetic", "model": "calc", "job": "j1"},
                 {"task": "arithmetic", "model": "fortytwo", "job": "j2"}]}


def status(*states: str) -> dict[str, Any]:
    return {"campaign": {"id": "c", "name": "C", "project": "p", "partners": ["uk", "us"]},
            "embargo": {"lifted": False, "rule": "results are embargoed"},
            "runs": [{"task": "arithmetic", "model": m, "job": j, "state": s, "site": "isambard-ai",
                      "agreement": None, "logs": 1}
                     for (m, j), s in zip((("calc", "j1"), ("fortytwo", "j2")), states, strict=True)],
            "pairs": 2, "compute": {"by_host_partner": {}}}


class Api:
    """The campaign routes: the submit, then each status read in turn."""

    def __init__(self, *statuses: dict[str, Any]) -> None:
        self.statuses = list(statuses)
        self.calls: list[str] = []

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls.append(f"POST {path}")
        return RUNS

    def get(self, path: str, **params: Any) -> Any:
        self.calls.append(f"GET {path}")
        return self.statuses.pop(0)

    def delete(self, path: str) -> Any:
        raise AssertionError(path)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("accord.cli.campaigns.time.sleep", lambda _s: None)


def run(api: Api, *argv: str) -> int:
    return cli._remote(cli.build_parser().parse_args(["campaign", "submit", *argv]), [], api)


def test_wait_polls_until_every_job_has_ended(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api(status("running", "submitted"), status("completed", "running"),
              status("completed", "completed"))
    assert run(api, "c", "--wait") == 0
    assert api.calls == ["POST /api/v1/campaigns/c/submit"] + ["GET /api/v1/campaigns/c"] * 3
    out = capsys.readouterr().out
    assert "arithmetic × calc: completed at isambard-ai (job j1, 1 log(s))" in out
    assert "arithmetic × fortytwo: completed" in out


def test_wait_exits_1_when_a_job_did_not_complete() -> None:
    assert run(Api(status("completed", "failed")), "c", "--wait") == 1


def test_without_wait_it_prints_the_jobs_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()
    assert run(api, "c") == 0
    assert api.calls == ["POST /api/v1/campaigns/c/submit"]
    assert capsys.readouterr().out.splitlines() == ["arithmetic × calc: job j1",
                                                    "arithmetic × fortytwo: job j2"]
