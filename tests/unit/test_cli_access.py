"""The access commands without a server: argument parsing, the bodies they send, what
they print, where the token comes from, and problem+json answers turned into errors."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord import cli, client, runtime
from accord.cli import access as cli_access
from accord.domain.errors import Forbidden, InvalidInput, Unavailable

Capture = pytest.CaptureFixture[str]


class FakeApi:
    """Answers each path with a canned document; records every call."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, path: str, **params: Any) -> Any:
        self.calls.append(("GET", path, params))
        return self.answers[path]

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls.append(("POST", path, body))
        return self.answers[path]

    def delete(self, path: str) -> Any:
        self.calls.append(("DELETE", path, None))
        return self.answers[path]


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def run(api: FakeApi, *argv: str, command: tuple[str, ...] = ()) -> int:
    return cli._remote(parse(*argv), list(command), api)


def exits_2(argv: list[str], capsys: Capture) -> str:
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- parsing
def test_every_command_has_its_handler() -> None:
    for argv in (["whoami"], ["token", "list"], ["token", "revoke", "t1"], ["user", "show", "u"],
                 ["project", "list"], ["allocation", "list"], ["compliance", "list"], ["audit"],
                 ["preview", "--", "true"]):
        assert callable(parse(*argv).access_handler), argv


def test_token_create_needs_a_scope(capsys: Capture) -> None:
    assert "--scope" in exits_2(["token", "create", "laptop"], capsys)
    args = parse("token", "create", "ci", "--scope", "jobs:read", "--scope", "jobs:write", "--days", "7")
    assert (args.scopes, args.days, args.for_user) == (["jobs:read", "jobs:write"], 7, None)


def test_grant_scope_flags_exclude_each_other(capsys: Capture) -> None:
    err = exits_2(["user", "grant", "u", "auditor", "--partner", "fr", "--global"], capsys)
    assert "not allowed with argument" in err


def test_refusals_need_a_reason(capsys: Capture) -> None:
    assert "--reason" in exits_2(["allocation", "refuse", "al1"], capsys)
    assert "--reason" in exits_2(["compliance", "refuse", "j1"], capsys)
    assert parse("allocation", "approve", "al1").reason == ""


def test_secondment_kind_is_a_closed_choice(capsys: Capture) -> None:
    argv = ["user", "second", "u", "--institution", "kaist", "--start", "2026-01-01", "--end", "2026-06-30"]
    assert "invalid choice: 'primary'" in exits_2([*argv, "--kind", "primary"], capsys)


def test_preview_takes_submits_job_arguments() -> None:
    argv = ["--gpus", "4", "--gpu-model", "GH200", "--time-limit", "2h", "--project", "p", "--theme",
            "climate", "--data-residency", "GB", "--deadline", "2026-12-01T00:00:00Z"]
    command = ["python", "train.py"]
    submitted = cli.job_document(parse("submit", *argv), command)
    previewed = cli.job_document(parse("preview", *argv), command)
    assert previewed == submitted == {
        "gpus": 4, "time_limit": "2h", "command": command, "gpu_model": "GH200", "project": "p",
        "theme": "climate", "deadline": "2026-12-01T00:00:00Z", "data_residency": ["GB"]}


def test_preview_with_nothing_to_run_names_the_command() -> None:
    with pytest.raises(InvalidInput) as e:
        cli.job_document(parse("preview"), [])
    assert str(e.value) == ("command: nothing to run "
                            "(allowed accord preview [options] -- COMMAND... or SCRIPT)")


# ---------------------------------------------------------------- bodies sent
@pytest.mark.parametrize(
    ("role", "partner", "site", "everywhere", "scope", "target"),
    [("programme_officer", "fr", None, False, "partner", "fr"),
     ("site_operator", None, "jean-zay", False, "site", "jean-zay"),
     ("auditor", None, None, True, "global", ""),
     ("admin", None, None, False, "global", "")],
)
def test_grant_body(role: str, partner: str | None, site: str | None, everywhere: bool, scope: str,
                    target: str) -> None:
    assert cli_access.grant_body(role, partner, site, everywhere) == {
        "role": role, "scope": scope, "target": target}


@pytest.mark.parametrize(
    ("role", "partner", "site", "message"),
    [("wizard", "fr", None, "role: is not a role that can be granted (got wizard, allowed site_operator, "
                            "programme_officer, auditor, admin)"),
     ("researcher", None, None, "role: is not a role that can be granted (got researcher"),
     ("auditor", None, None, "scope: role auditor needs a scope (allowed --partner P or --global)"),
     ("site_operator", "fr", None,
      "scope: does not fit role site_operator (got --partner, allowed --site S)")],
)
def test_bad_grants_name_the_field(role: str, partner: str | None, site: str | None, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        cli_access.grant_body(role, partner, site, False)
    assert str(e.value).startswith(message)


def test_user_add_sends_only_what_was_given() -> None:
    api = FakeApi({"/api/v1/users": {"id": "ada", "name": "Ada", "email": None, "institution": "turing",
                                     "oidc_issuer": None, "oidc_subject": None, "affiliations": [],
                                     "roles": []}})
    assert run(api, "user", "add", "ada", "--name", "Ada", "--institution", "turing") == 0
    method, path, body = api.calls[0]
    assert (method, path) == ("POST", "/api/v1/users")
    assert body["id"] == "ada" and body["email"] is None   # the client leaves None values out


def test_ids_cannot_change_the_route() -> None:
    api = FakeApi({"/api/v1/tokens/..%2Fusers": {"id": "x", "name": "n", "user": "u"}})
    assert run(api, "token", "revoke", "../users") == 0
    assert api.calls == [("DELETE", "/api/v1/tokens/..%2Fusers", None)]


def test_audit_passes_its_filters() -> None:
    api = FakeApi({"/api/v1/audit": {"records": []}})
    assert run(api, "audit", "--actor", "ada", "--since", "2026-11-01T00:00:00Z", "--limit", "5") == 0
    assert api.calls == [("GET", "/api/v1/audit", {"actor": "ada", "action": None, "after": None,
                                                   "since": "2026-11-01T00:00:00Z", "limit": 5})]


def test_audit_warns_of_records_waiting_in_the_servers_spool(capsys: Capture) -> None:
    api = FakeApi({"/api/v1/audit": {"records": [], "spooled": 3}})
    assert run(api, "audit") == 0
    out, err = capsys.readouterr()
    assert out == "no audit records\n"
    assert err == ("warning: 3 audit record(s) wait in the server's spool (the database refused them or "
                   "was down; they are retried and not shown here: see the server's log)\n")


# ---------------------------------------------------------------- output
TOKEN = {"id": "ab12", "user": "ada", "name": "laptop", "scopes": ["jobs:read"],
         "created_at": "2026-11-22T10:00:00+00:00", "expires_at": "2026-12-22T10:00:00+00:00",
         "revoked_at": None, "token": "acc_ab12_SECRET", "note": "shown once"}


def test_token_create_prints_the_secret_alone_and_warns(capsys: Capture) -> None:
    api = FakeApi({"/api/v1/tokens": TOKEN})
    assert run(api, "token", "create", "laptop", "--scope", "jobs:read", "--for-user", "ada") == 0
    out, err = capsys.readouterr()
    assert out == "acc_ab12_SECRET\n"
    assert "created token ab12 for ada: 'laptop' (jobs:read), expires 2026-12-22 10:00 UTC" in err
    assert "shown once" in err
    assert api.calls[0][2] == {"name": "laptop", "scopes": ["jobs:read"], "days": None, "for_user": "ada"}


def test_token_states() -> None:
    now = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    assert cli_access._token_state(TOKEN, now) == "active"
    assert cli_access._token_state({**TOKEN, "expires_at": "2026-11-30T00:00:00+00:00"}, now) == "expired"
    assert cli_access._token_state({**TOKEN, "revoked_at": "2026-11-23T00:00:00+00:00"}, now) == "revoked"


PREVIEW: dict[str, Any] = {
    "verdict": "place", "explanation": "Placed at jean-zay/h100.", "rules": ["residency: GB only"],
    "site": "jean-zay", "pool": "h100", "agreement": "uk-fr", "start": "2026-11-22T13:50:00+00:00",
    "cost_units": 0.1667, "reference_unit": "H100-hour", "energy_kwh": 0.276, "emissions_kg": None,
    "gate": {"action": "hold", "note": "Held for compliance review at jean-zay", "facts": {},
             "would_run": False}}


def test_preview_text() -> None:
    assert cli_access.preview_text(PREVIEW).splitlines() == [
        "would run at jean-zay / h100 under agreement uk-fr, from 2026-11-22 13:50 UTC (place)",
        "  cost:      0.1667 H100-hour (estimate at the time limit)",
        "  energy:    0.276 kWh (estimate at the time limit, PUE included)",
        "  emissions: unknown (no carbon intensity for the site)",
        "  gate:      hold — would be held: Held for compliance review at jean-zay",
        "  rule:      residency: GB only",
        "  why:       Placed at jean-zay/h100."]


def test_preview_of_a_job_that_cannot_run() -> None:
    doc = {**PREVIEW, "verdict": "reject", "site": None, "gate": None, "rules": [],
           "explanation": "The job cannot run anywhere: no pool has 9999 GPUs."}
    assert cli_access.preview_text(doc).splitlines() == [
        "would not be placed (reject)", "  why:       The job cannot run anywhere: no pool has 9999 GPUs."]


def test_tables_fit_their_content(capsys: Capture) -> None:
    held = {"job": "j1", "owner": "ada", "project": "p", "requester": "uk", "site": "isambard-ai",
            "rule": "foreign-training-scrutiny", "reason": "r", "held_at": "2026-11-22T10:00:00+00:00",
            "gpus": 512, "time_limit_s": 172800}
    assert run(FakeApi({"/api/v1/compliance": {"held": [held]}}), "compliance", "list") == 0
    head, row = capsys.readouterr().out.splitlines()
    assert head.split() == ["JOB", "OWNER", "PROJECT", "FROM", "SITE", "GPUS", "LIMIT", "RULE", "HELD"]
    assert row.split()[:8] == ["j1", "ada", "p", "uk", "isambard-ai", "512", "48h",
                               "foreign-training-scrutiny"]
    assert run(FakeApi({"/api/v1/projects": {"projects": []}}), "project", "list") == 0
    assert capsys.readouterr().out == "no projects\n"


# ---------------------------------------------------------------- the token's source
@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "admin.token").write_text("ADMIN\n")
    (tmp_path / "server.json").write_text('{"url": "http://127.0.0.1:1234/"}')
    monkeypatch.delenv("ACCORD_TOKEN", raising=False)
    monkeypatch.delenv("ACCORD_SERVER", raising=False)
    return tmp_path


def test_token_file_then_environment_then_admin_token(data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.discover(None, data_dir) == ("http://127.0.0.1:1234", "ADMIN")
    monkeypatch.setenv("ACCORD_TOKEN", "FROM_ENV")
    assert client.discover(None, data_dir)[1] == "FROM_ENV"
    path = data_dir / "mine"
    path.write_text("  FROM_FILE\n")
    assert client.discover(None, data_dir, path)[1] == "FROM_FILE"


def test_an_empty_environment_token_is_ignored(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_TOKEN", "")
    assert client.discover(None, data_dir)[1] == "ADMIN"


@pytest.mark.parametrize(("content", "message"), [(None, "--token-file: cannot read it: No such file"),
                                                  ("\n", "--token-file: is empty")])
def test_a_bad_token_file_is_bad_input(data_dir: Path, content: str | None, message: str) -> None:
    path = data_dir / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInput) as e:
        client.discover(None, data_dir, path)
    assert str(e.value).startswith(message)


def test_token_file_is_a_common_option() -> None:
    assert parse("jobs", "--token-file", "t").token_file == Path("t")
    assert parse("token", "list", "--token-file", "t").token_file == Path("t")


def test_client_defaults_match_the_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert client.DEFAULT_PORT == runtime.DEFAULT_PORT
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path))
    assert client.default_data_dir() == runtime.default_data_dir() == tmp_path
    monkeypatch.delenv("ACCORD_DATA_DIR")
    assert client.default_data_dir() == runtime.default_data_dir()


# ---------------------------------------------------------------- problem+json answers
def answering(status: int, body: dict[str, Any]) -> client.Client:
    c = client.Client("http://accord.test", "tok")
    c.http.close()
    c.http = httpx.Client(base_url="http://accord.test", transport=httpx.MockTransport(
        lambda _r: httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})))
    return c


def test_problems_become_invalid_input() -> None:
    c = answering(422, {"title": "Invalid input", "status": 422, "detail": "x", "problems": [
        {"field": "role", "message": "Input should be 'admin'", "got": "'wizard'", "allowed": None}]})
    with pytest.raises(InvalidInput) as e:
        c.post("/api/v1/users/u/grants", {"role": "wizard", "scope": None})
    assert str(e.value) == "role: Input should be 'admin' (got 'wizard')"
    c.close()


@pytest.mark.parametrize(("status", "kind", "text"),
                         [(403, Forbidden, "only an admin manages users and roles"),
                          (429, Unavailable, "too many token requests"),
                          (401, client.Unauthorized, "the API token was revoked (the token comes from "
                                                     "--token-file, $ACCORD_TOKEN")])
def test_refusals_become_errors(status: int, kind: type[Exception], text: str) -> None:
    detail = {403: "only an admin manages users and roles", 429: "too many token requests: retry in 5 s",
              401: "the API token was revoked"}[status]
    c = answering(status, {"title": "t", "status": status, "detail": detail})
    with pytest.raises(kind) as e:
        c.get("/api/v1/me")
    assert str(e.value).startswith(text)
    c.close()


def test_get_leaves_out_unset_parameters() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"records": []})

    c = client.Client("http://accord.test", None)
    c.http.close()
    c.http = httpx.Client(base_url="http://accord.test", transport=httpx.MockTransport(answer))
    assert c.get("/api/v1/audit", actor="ada", action=None, limit=5) == {"records": []}
    assert seen == ["http://accord.test/api/v1/audit?actor=ada&limit=5"]
    c.close()
