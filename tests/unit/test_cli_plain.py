"""Commands that used to mislead now say plainly what they did (issue 18, item 4).

``accord ledger verify`` never creates a store and says which ledger it verified (or that it
is empty), directly or through the server; ``accord ledger close`` refuses a month that has
not ended unless asked for an early close; ``accord submit --parsable`` prints the id alone;
``accord statement verify`` of JSON that is not a statement says what it expected; a reader
that stops early (``| head -c 100``) ends any command quietly.

The server-side commands run as a user runs them (``cli.main`` with ``--server`` and
``--token-file``), their HTTP requests handed to the app in process (the transport of
``tests/unit/test_ledger_correct_cli.py``): the real routes, rules, ledger and SQLite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord import cli, client
from accord.adapters import keys
from accord.adapters.clock import FakeClock
from accord.adapters.local_backend import LocalBackend
from accord.adapters.sql.store import SqlStore
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.errors import InvalidInput
from accord.domain.ledger.usage import UsageRecord
from accord.service.services import Services
from tests.api.access_world import ADMIN_TOKEN, world_federation
from tests.conftest import fresh_pg_schema
from tests.unit.test_ledger_correct_cli import InApp

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)     # the hub's clock: October is over, November is not
Capture = pytest.CaptureFixture[str]


@dataclass(frozen=True)
class Run:
    """What a command did: exit status, standard output and standard error."""

    code: int
    out: str
    err: str


def accord(capsys: Capture, *argv: str) -> Run:
    """``accord ARGV`` in process."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        cli.main(list(argv))
    code = ended.value.code
    out, err = capsys.readouterr()
    return Run(code if isinstance(code, int) else 1, out, err)


# ---------------------------------------------------------------- ledger verify, without a server
@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An Accord data directory (its signing key) whose server used another database."""
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    monkeypatch.delenv("ACCORD_FEDERATION", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    keys.load_or_create(data)
    return data


def test_verify_with_no_database_url_creates_nothing_and_says_so(data_dir: Path, capsys: Capture) -> None:
    r = accord(capsys, "ledger", "verify", "--data-dir", str(data_dir))
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(f"ACCORD_DATABASE_URL: is not set, and the data directory holds no database "
                            f"(got {data_dir / 'accord.db'}, allowed the database URL 'accord up' uses")
    assert "accord ledger verify --via-server" in r.err
    assert not (data_dir / "accord.db").exists()


def test_verify_of_a_database_that_is_not_there_creates_nothing(data_dir: Path, capsys: Capture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    missing = data_dir / "elsewhere.db"
    monkeypatch.setenv("ACCORD_DATABASE_URL", f"sqlite:///{missing}")
    r = accord(capsys, "ledger", "verify", "--data-dir", str(data_dir))
    assert (r.code, r.err) == (2, f"accord: no database at sqlite:///{missing}: {missing} does not exist\n")
    assert not missing.exists()


def test_verify_of_an_empty_postgresql_database_creates_no_tables(data_dir: Path, capsys: Capture,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  pg_database: str) -> None:
    url = fresh_pg_schema(pg_database)
    monkeypatch.setenv("ACCORD_DATABASE_URL", url)
    r = accord(capsys, "ledger", "verify", "--data-dir", str(data_dir))
    assert r.code == 2 and "holds no Accord ledger (no ledger_entries table)" in r.err, r
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_an_empty_ledger_is_said_to_be_empty(data_dir: Path, capsys: Capture) -> None:
    SqlStore(f"sqlite:///{data_dir / 'accord.db'}").close()     # as 'accord up' made it
    r = accord(capsys, "ledger", "verify", "--data-dir", str(data_dir))
    assert (r.code, r.err) == (0, "")
    assert r.out == ("the ledger is empty: no entries to verify "
                     f"(database sqlite:///{data_dir / 'accord.db'}; is it the hub's database?)\n")
    r = accord(capsys, "ledger", "verify", "--data-dir", str(data_dir), "--json")
    assert json.loads(r.out) == {"ok": True, "entries": 0, "closures": 0, "first_bad_seq": None,
                                 "problem": "", "verified": f"database sqlite:///{data_dir / 'accord.db'}",
                                 "cosigned": 0, "notes": []}


# ---------------------------------------------------------------- with the server, in process
@dataclass
class Hub:
    """A hub's services behind the CLI; the admin's token file."""

    services: Services
    token_file: Path
    capsys: Capture

    def run(self, *argv: str) -> Run:
        return accord(self.capsys, *argv, "--server", "http://accord.test",
                      "--token-file", str(self.token_file))


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> Iterator[Hub]:
    fed = world_federation()
    backends = {s.id: LocalBackend(s, tmp_path / "jobs") for s in fed.sites}
    services = compose(fed, f"sqlite:///{tmp_path / 'accord.db'}", backends, FakeClock(NOW), ADMIN_TOKEN)
    to_app, real_client = InApp(create_app(services)), client.Client

    def in_process(url: str, token: str | None) -> client.Client:
        made = real_client(url, token)
        made.http.close()
        made.http = httpx.Client(base_url=url, headers=made.http.headers, transport=to_app)
        return made

    monkeypatch.setattr(client, "Client", in_process)
    token_file = tmp_path / "admin.token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    services.store.add_usage(UsageRecord(    # 2 A100s at Paris for 2 h in October, under uk-fr
        "paris:1", "j1", "paris", "a100", "A100", "fr", "uk", "uk-fr", "proj",
        datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 12, tzinfo=UTC),
        2, 14_400.0, "completed", 0))
    assert services.ledger.post_pending() == 1
    try:
        yield Hub(services, token_file, capsys)
    finally:
        to_app.api.close()
        services.close()


def test_verify_through_the_server_names_it(hub: Hub) -> None:
    r = hub.run("ledger", "verify")
    assert (r.code, r.err) == (0, "")
    assert r.out == ("ledger verified: 1 entries, chain intact, balances zero, 0 closed period(s) match "
                     "their signed roots (the server at http://accord.test)\n")


def test_close_refuses_a_month_that_has_not_ended_unless_early(hub: Hub) -> None:
    r = hub.run("ledger", "close", "--period", "2026-11")
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(
        "period: has not ended yet (got 2026-11, allowed a month before 2026-11; to close 2026-11 now, "
        "ask for an early close (accord ledger close --early; early=true): its later usage is then "
        "booked to the next open period)"), r.err
    r = hub.run("ledger", "close", "--period", "2026-12", "--early")
    assert r.code == 2 and r.err.startswith("period: has not begun yet (got 2026-12"), r.err
    assert hub.services.ledger.ledger.closures() == []
    assert hub.run("ledger", "close", "--period", "2026-10").out.startswith("closed 2026-10: 1 entries")
    r = hub.run("ledger", "close", "--period", "2026-11", "--early")
    assert (r.code, r.out.split(":")[0]) == (0, "closed 2026-11"), r
    hub.services.audit.flush()   # the audit writer is a thread of its own
    audit = hub.services.access.store.audit_records(action="ledger.close")
    assert [(a.target, a.detail, a.status) for a in audit][-1] == ("period 2026-11", "early", 200)


# ---------------------------------------------------------------- submit --parsable
class FakeClient:
    """Accepts any job as j0001 (queued)."""

    def submit(self, job: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        return {"id": "j0001", "state": "queued", "reason": "", "spec": job}


def submitted(capsys: Capture, *argv: str) -> Run:
    args = cli.build_parser().parse_args(["submit", *argv])
    code = cli._remote(args, ["python", "train.py"], FakeClient())
    out, err = capsys.readouterr()
    return Run(code, out, err)


def test_submit_parsable_prints_the_id_alone(capsys: Capture) -> None:
    assert submitted(capsys, "--parsable") == Run(0, "j0001\n", "")
    assert submitted(capsys) == Run(0, "j0001: queued\n", "")
    assert json.loads(submitted(capsys, "--json").out)["id"] == "j0001"


def test_submit_parsable_and_json_together_is_a_usage_error(capsys: Capture) -> None:
    with pytest.raises(InvalidInput) as refused:
        submitted(capsys, "--parsable", "--json")
    assert refused.value.problems[0].render() == (
        "--parsable: goes without --json (got --parsable --json, allowed one of them: --parsable prints "
        "the id alone, --json the job)")


# ---------------------------------------------------------------- statement verify
@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "a JSON array"), ('"x"', "a JSON string"),
                                            ("null", "JSON null"), ("3", "a JSON number")])
def test_statement_verify_of_json_that_is_no_statement(tmp_path: Path, capsys: Capture, text: str,
                                                       kind: str) -> None:
    key = tmp_path / "operator.pub.pem"
    key.write_bytes(keys.public_pem(keys.load_or_create(tmp_path)))
    (tmp_path / "st.json").write_text(text)
    r = accord(capsys, "statement", "verify", str(tmp_path / "st.json"), "--key", str(key))
    assert r.code == 2 and r.out == ""
    assert r.err == (f"{tmp_path / 'st.json'}: statement: is not a statement (got {kind}, allowed a "
                     "statement: the JSON object 'accord statement --format json' writes)\n")


def test_the_offline_verifier_names_what_it_expected() -> None:
    from accord.domain.ledger.statement import verify_statement

    key = bytes(32)
    assert verify_statement([], key) == [   # type: ignore[arg-type]
        "the statement is not a statement: a JSON array, not an object (expected the JSON object "
        "'accord statement --format json' writes)"]
    assert verify_statement({"format": "x"}, key, previous="x") == [   # type: ignore[arg-type]
        "the earlier statement is not a statement: a JSON string, not an object (expected the JSON "
        "object 'accord statement --format json' writes)"]


# ---------------------------------------------------------------- a reader that stops early
class Jobs(BaseHTTPRequestHandler):
    """Answers every GET with a long list of jobs (far more than a pipe holds)."""

    BODY = json.dumps({"jobs": [{"id": f"j{i:06d}", "state": "completed", "site": "paris",
                                 "spec": {"gpus": 1, "name": "x" * 200},
                                 "submitted_at": "2026-11-02T09:00:00Z"} for i in range(5000)]}).encode()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jobs_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Jobs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("argv", [["jobs", "--json"], ["jobs"], ["--help"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(jobs_server: str, tmp_path: Path,
                                                            argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env["ACCORD_DATA_DIR"] = str(tmp_path)
    extra = [] if argv == ["--help"] else ["--server", jobs_server]
    proc = subprocess.Popen([sys.executable, "-m", "accord", *argv, *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(100)          # `| head -c 100`: read a little, then hang up
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(60) == 0, err
    assert len(head) == 100 and err == ""

