"""`accord ledger correct`: the command line against the real API, in process.

``accord`` runs as a user would run it (``cli.main`` with ``--server`` and
``--token-file``, its own client and httpx); only the transport under httpx is swapped for
one that hands the request to the app in process, so it goes through the real routes,
access rules, ledger service and SQLite store.

A uk job ran on 2 A100s at fr's Paris site for 2 h in October 2026: 2 GPUs x 2 h = 4 GPU-h
x 0.5 units = 2.000000 units, fr's site credited, uk's project debited; another ran on 1
A100 from 23:00 on 31 October to 01:00 on 1 November, one entry per month (1 GPU-h x 0.5 =
0.500000 units each). October is then closed, so corrections count in November.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from accord import cli, client
from accord.adapters.clock import FakeClock
from accord.adapters.local_backend import LocalBackend
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.ledger.entries import Entry
from accord.domain.ledger.usage import UsageRecord
from accord.service.ledger import LedgerService
from tests.api.access_world import ADMIN_TOKEN, world_federation

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
ORIGINAL = "usage:paris:1"
OCTOBER_PART = "usage:paris:3#2026-10"   # the October entry of the job across the month's end
POSTED = 3                               # entries before any correction
HOST_LEG, REQUESTER_LEG = "host:fr/site:paris", "requester:uk/project:proj"


class InApp(httpx.BaseTransport):
    """Hands each request of the CLI's own httpx client to the app, in process."""

    def __init__(self, app: FastAPI) -> None:
        self.api = TestClient(app, raise_server_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.api.request(request.method, request.url.raw_path.decode("ascii"),
                                  headers=dict(request.headers), content=request.read())
        return httpx.Response(answer.status_code, content=answer.content,
                              headers={"content-type": answer.headers.get("content-type", "")})


@dataclass(frozen=True)
class Run:
    """What a command did: exit status, standard output and standard error."""

    code: int
    out: str
    err: str


@dataclass
class Accord:
    """The app's ledger and a token file per person."""

    ledger: LedgerService
    token_files: dict[str, Path]
    capsys: pytest.CaptureFixture[str]

    def run(self, user: str, *argv: str) -> Run:
        """``accord ARGV`` as ``user`` (``admin``: the local admin token)."""
        self.capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            cli.main([*argv, "--server", "http://accord.test", "--token-file", str(self.token_files[user])])
        code = ended.value.code
        out, err = self.capsys.readouterr()
        return Run(code if isinstance(code, int) else 1, out, err)

    def entries(self) -> list[Entry]:
        return self.ledger.ledger.entries()


@pytest.fixture
def accord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Iterator[Accord]:
    fed = world_federation()
    backends = {s.id: LocalBackend(s, tmp_path / "jobs") for s in fed.sites}
    services = compose(fed, f"sqlite:///{tmp_path / 'accord.db'}", backends, FakeClock(NOW), ADMIN_TOKEN)
    store, ledger = services.store, services.ledger
    app = create_app(services)
    to_app, real_client = InApp(app), client.Client

    def in_process(url: str, token: str | None) -> client.Client:
        made = real_client(url, token)
        made.http.close()
        made.http = httpx.Client(base_url=url, headers=made.http.headers, transport=to_app)
        return made

    monkeypatch.setattr(client, "Client", in_process)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tokens = {"admin": ADMIN_TOKEN}
    all_scopes = ["jobs:read", "jobs:write", "ledger:read", "ledger:write", "projects:read"]
    try:
        with TestClient(app, raise_server_exceptions=False) as api:
            people = [("pofr", "sorbonne", ("programme_officer", "partner", "fr"), all_scopes),
                      ("pouk", "bristol", ("programme_officer", "partner", "uk"), all_scopes),
                      ("alice", "bristol", None, all_scopes)]
            for user, institution, grant, _ in people:
                assert api.post("/api/v1/users", headers=admin, json={
                    "id": user, "name": user, "institution": institution}).status_code == 201
                if grant:
                    role, scope, target = grant
                    assert api.post(f"/api/v1/users/{user}/grants", headers=admin, json={
                        "role": role, "scope": scope, "target": target}).status_code == 201
            minted = [(user, user, scopes) for user, _, _, scopes in people]
            minted.append(("pofr-read-only", "pofr", ["ledger:read"]))
            for name, user, scopes in minted:
                tokens[name] = api.post("/api/v1/tokens", headers=admin, json={
                    "name": name, "scopes": scopes, "for_user": user}).json()["token"]
            files = {}
            for name, token in tokens.items():
                files[name] = tmp_path / f"{name}.token"
                files[name].write_text(token + "\n")
            store.add_usage(UsageRecord(
                "paris:1", "j1", "paris", "a100", "A100", "fr", "uk", "uk-fr", "proj",
                datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 12, tzinfo=UTC),
                2, 14_400.0, "completed", 0))
            store.add_usage(UsageRecord(
                "paris:3", "j3", "paris", "a100", "A100", "fr", "uk", "uk-fr", "proj",
                datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC),
                1, 7_200.0, "completed", 0))
            assert ledger.post_pending() == POSTED
            done = Accord(ledger, files, capsys)
            closed = done.run("admin", "ledger", "close", "--period", "2026-10")
            assert (closed.code, closed.out.split(":")[0]) == (0, "closed 2026-10"), closed
            yield done
    finally:
        services.close()


def legs(e: Entry | dict[str, Any]) -> list[tuple[str, str]]:
    if isinstance(e, Entry):
        return [(leg.account, str(leg.amount)) for leg in e.legs]
    return [(account, amount) for account, amount in e["legs"]]


def test_the_entries_before_any_correction(accord: Accord) -> None:
    assert [(e.id, e.period, str(e.units)) for e in accord.entries()] == [
        (ORIGINAL, "2026-10", "2.000000"),
        (OCTOBER_PART, "2026-10", "0.500000"),
        ("usage:paris:3#2026-11", "2026-11", "0.500000"),
    ]
    assert legs(accord.entries()[0]) == [(HOST_LEG, "2.000000"), (REQUESTER_LEG, "-2.000000")]


def test_the_host_partners_officer_refunds_part_of_an_entry(accord: Accord) -> None:
    r = accord.run("pofr", "ledger", "correct", ORIGINAL, "--kind", "refund", "--units", "0.5",
                   "--reason", "node fault on paris-n3")
    assert (r.code, r.err) == (0, "")
    first, *_, fix = accord.entries()
    assert r.out == f"3: refund -0.500000 ({fix.id})\n"
    assert fix.id.startswith("refund:") and fix.references == ORIGINAL
    # units back from the host to the requester: 0.5 of the 2.0
    assert (fix.kind.value, str(fix.units), fix.period) == ("refund", "-0.500000", "2026-11")
    assert legs(fix) == [(HOST_LEG, "-0.500000"), (REQUESTER_LEG, "0.500000")]
    assert (fix.reason, fix.author) == ("node fault on paris-n3", "pofr")
    assert first.period == "2026-10" and str(first.units) == "2.000000"   # the original stays


def test_a_reversal_and_a_manual_credit(accord: Accord) -> None:
    r = accord.run("admin", "ledger", "correct", ORIGINAL, "--kind", "reversal", "--units", "2",
                   "--reason", "ran under the wrong agreement", "--json")
    assert r.code == 0, r
    reversal = json.loads(r.out)
    assert (reversal["kind"], reversal["units"], reversal["references"]) == (
        "reversal", "-2.000000", ORIGINAL)
    assert legs(reversal) == [(HOST_LEG, "-2.000000"), (REQUESTER_LEG, "2.000000")]
    r = accord.run("pofr", "ledger", "correct", ORIGINAL, "--kind", "manual_credit", "--units", "1.25",
                   "--reason", "agreed in the steering committee", "--author", "Claire Dubois")
    assert r.code == 0, r
    credit = accord.entries()[-1]
    # a manual credit moves units to the host: +1.25 for fr's site, -1.25 for uk's project
    assert (credit.kind.value, str(credit.units)) == ("manual_credit", "1.250000")
    assert legs(credit) == [(HOST_LEG, "1.250000"), (REQUESTER_LEG, "-1.250000")]
    assert credit.author == "Claire Dubois (by pofr)"
    # 2.000000 + 0.500000 + 0.500000 (the usage) - 2.000000 + 1.250000
    assert accord.ledger.balances("uk-fr")["by_direction"] == {"uk->fr": "2.250000"}
    assert accord.ledger.verify().ok


@pytest.mark.parametrize(("argv", "message"), [
    (["--kind", "refund", "--units", "-1"], "units: must be positive (got -1, allowed a number > 0)"),
    (["--kind", "refund", "--units", "0"], "units: must be positive (got 0, allowed a number > 0)"),
    (["--kind", "refund", "--units", "3"],
     "units: exceeds the original entry (got 3, allowed at most 2.000000)"),
    (["--kind", "reversal", "--units", "two"], "kind/units: not a correction (got reversal two,"),
    (["--kind", "refund", "--units", "NaN"], "units: is not a usable amount (got NaN,"),
])
def test_bad_units_are_refused_with_the_reason(accord: Accord, argv: list[str], message: str) -> None:
    r = accord.run("pofr", "ledger", "correct", ORIGINAL, *argv, "--reason", "x")
    assert r.code == 2
    assert r.out == ""
    assert message in r.err, r.err
    assert len(accord.entries()) == POSTED


def test_a_bad_kind_is_refused_before_anything_is_sent(accord: Accord) -> None:
    r = accord.run("pofr", "ledger", "correct", ORIGINAL, "--kind", "gift", "--units", "1", "--reason", "x")
    assert r.code == 2
    assert "argument --kind: invalid choice: 'gift'" in r.err
    assert "refund" in r.err and "reversal" in r.err and "manual_credit" in r.err
    assert len(accord.entries()) == POSTED


@pytest.mark.parametrize(("user", "message"), [
    # a researcher, even with a ledger:write token: not told whether the entry exists
    ("alice", f"accord: entry {ORIGINAL} does not exist or you may not correct it"),
    # the requesting partner's officer may read the books, not take units from the host
    ("pouk", "accord: only the operator or the host partner's programme officer may correct an entry"),
    # the host's officer, with a token that lacks ledger:write
    ("pofr-read-only", "accord: the API token used lacks a scope (needs=ledger:write"),
])
def test_a_caller_who_may_not_correct_is_refused(accord: Accord, user: str, message: str) -> None:
    r = accord.run(user, "ledger", "correct", ORIGINAL, "--kind", "refund", "--units", "1",
                   "--reason", "x")
    assert r.code == 2
    assert r.err.startswith(message), r.err
    assert len(accord.entries()) == POSTED


def test_the_entry_of_one_month_of_a_job_is_corrected_by_its_id(accord: Accord) -> None:
    # the id has a '#': sent unquoted, the rest of the path became a URL fragment ("Not Found")
    r = accord.run("pofr", "ledger", "correct", OCTOBER_PART, "--kind", "refund", "--units", "0.25",
                   "--reason", "node fault")
    assert (r.code, r.err) == (0, ""), r
    fix = accord.entries()[-1]
    assert (fix.references, str(fix.units), fix.period) == (OCTOBER_PART, "-0.250000", "2026-11")
    assert legs(fix) == [(HOST_LEG, "-0.250000"), (REQUESTER_LEG, "0.250000")]


def test_what_is_missing_is_named_and_an_unknown_entry_is_not_found(accord: Accord) -> None:
    r = accord.run("pofr", "ledger", "correct", ORIGINAL, "--kind", "refund", "--units", "1")
    assert r.code == 2
    assert r.err == ("--reason: is required (allowed accord ledger correct ENTRY --kind KIND "
                     "--units UNITS --reason TEXT)\n")
    r = accord.run("pofr", "ledger", "correct", "--kind", "refund", "--units", "1", "--reason", "x")
    assert r.code == 2 and r.err.startswith("entry: is required"), r.err
    r = accord.run("admin", "ledger", "correct", "usage:paris:404", "--kind", "refund", "--units", "1",
                   "--reason", "x")
    assert (r.code, r.err) == (2, "accord: no ledger entry 'usage:paris:404'\n")
    assert len(accord.entries()) == POSTED
