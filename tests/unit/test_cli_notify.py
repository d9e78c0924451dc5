"""``accord notify`` without a server: the bodies it sends, what it prints, and that a new
webhook secret goes to stdout alone."""

from __future__ import annotations

from typing import Any

import pytest

from accord import cli

PATH = "/api/v1/me/notifications"
SETTINGS = {"user": "ada", "email": None, "enrolled_email": "ada@example.org", "email_on": True,
            "webhook_url": "https://h.example.org/x", "webhook_secret_set": True,
            "events": ["job.ended"], "kinds": ["job.ended", "job.failed"]}


class FakeApi:
    """Answers with canned documents; records every call."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, path: str, **params: Any) -> Any:
        self.calls.append(("GET", path, params))
        return self.answer

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path, kwargs.get("json")))
        return self.answer


def run(api: FakeApi, *argv: str) -> int:
    return cli._remote(cli.build_parser().parse_args(list(argv)), [], api)


def test_set_sends_only_what_changes_and_prints_a_new_secret_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi({**SETTINGS, "webhook_secret": "S" * 43})
    assert run(api, "notify", "set", "--webhook", "https://h.example.org/x", "--email-off",
               "--events", "job.ended, job.failed") == 0
    assert api.calls == [("PUT", PATH, {"webhook_url": "https://h.example.org/x", "email_on": False,
                                        "events": ["job.ended", "job.failed"]})]
    out, err = capsys.readouterr()
    assert out == "S" * 43 + "\n" and "shown once" in err


def test_set_can_clear_the_webhook_and_go_back_to_the_enrolled_address() -> None:
    api = FakeApi(SETTINGS)
    run(api, "notify", "set", "--no-webhook", "--enrolled-email", "--rotate-secret")
    assert api.calls[0][2] == {"webhook_url": None, "email": None, "rotate_secret": True}


def test_show_and_deliveries_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(FakeApi(SETTINGS), "notify", "show") == 0
    out = capsys.readouterr().out
    assert "ada@example.org (enrolled)" in out and "https://h.example.org/x (signed)" in out
    failing = {"deliveries": [{"state": "pending", "channel": "webhook", "kind": "job.failed", "attempts": 2,
                               "subject": "job j1 failed", "last_error": "webhook answered HTTP 500"}]}
    api = FakeApi(failing)
    assert run(api, "notify", "deliveries", "--limit", "5") == 0
    assert api.calls == [("GET", f"{PATH}/deliveries", {"limit": 5})]
    assert "HTTP 500" in capsys.readouterr().out
