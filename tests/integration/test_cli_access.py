"""Secure access through the ``accord`` command line against a real ``accord up``.

The administrator enrols a UK researcher (the Turing) and a French programme officer
(GENCI), and mints the researcher an API token. With only that token the researcher
creates a project, applies for an allocation under the UK–France agreement at host
``fr``; the officer approves it; the researcher previews and submits a job, which runs at
Jean Zay under ``uk-fr``; the audit log, read by the administrator, lists every step.

Most commands run in this process through :func:`accord.cli.main` (the same code as the
console script, without an interpreter start per command, to keep the test fast); the
error cases and ``--token-file`` run the real ``accord`` in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.in_force import demo_in_force
from tests.integration.server import AccordProcess, run_cli

# One worker runs the module under pytest-xdist: one server (the module's fixture) for all its tests.
pytestmark = pytest.mark.xdist_group("cli-access")

RESEARCHER_SCOPES = ("jobs:read", "jobs:write", "projects:read", "projects:write")


@dataclass(frozen=True)
class Ran:
    """What one command printed and its exit status."""

    code: int
    out: str
    err: str

    def json(self) -> object:
        """Its stdout as JSON."""
        return json.loads(self.out)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccordProcess]:
    home = tmp_path_factory.mktemp("access")   # the demo federation, uk-fr in force today
    proc = AccordProcess(home / "data", demo_in_force(home / "federation.toml"))
    proc.start()
    yield proc
    proc.stop()


def accord(server: AccordProcess, *args: str, token: str | None = None) -> Ran:
    """Run ``accord ARGS`` in this process: as the local admin (the data directory's
    token), or with ``token`` in ``$ACCORD_TOKEN``."""
    return Ran(*run_cli(server.data_dir, *args, token=token))


def ok(server: AccordProcess, *args: str, token: str | None = None) -> Ran:
    """As :func:`accord`, and it succeeded."""
    ran = accord(server, *args, token=token)
    assert ran.code == 0, (args, ran.err)
    return ran


def accord_process(server: AccordProcess, *args: str, token: str | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """Run the real ``accord`` in a subprocess."""
    env = {k: v for k, v in server.env.items() if k not in ("ACCORD_TOKEN", "ACCORD_SERVER")}
    if token is not None:
        env["ACCORD_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "accord", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def months_from_now(n: int) -> str:
    """``YYYY-MM`` of the month ``n`` months after this one (UTC)."""
    today = datetime.now(UTC)
    index = today.year * 12 + today.month - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def enrol_with_token(server: AccordProcess, user: str, name: str, institution: str) -> str:
    """Enrol ``user`` and mint them a researcher's API token; the token."""
    ok(server, "user", "add", user, "--name", name, "--institution", institution)
    scopes = [a for s in RESEARCHER_SCOPES for a in ("--scope", s)]
    minted = ok(server, "token", "create", "laptop", *scopes, "--for-user", user)
    assert "shown once" in minted.err
    return minted.out.strip()


def test_researcher_project_allocation_job_and_audit(server: AccordProcess) -> None:
    ada = enrol_with_token(server, "ada", "Ada Lovelace", "turing")
    assert ada.startswith("acc_") and "\n" not in ada
    ok(server, "user", "add", "claire", "--name", "Claire Dubois", "--institution", "genci")
    granted = ok(server, "user", "grant", "claire", "programme_officer", "--partner", "fr")
    assert "programme_officer for partner fr" in granted.out
    officer = ok(server, "token", "create", "desk", "--scope", "projects:read", "--scope",
                 "projects:write", "--for-user", "claire", "--json").json()
    assert isinstance(officer, dict) and officer["user"] == "claire"
    claire = str(officer["token"])

    me = ok(server, "whoami", token=ada).out
    assert me.startswith("ada — Ada Lovelace") and "partners:     uk" in me and "jobs:write" in me

    created = ok(server, "project", "create", "safety-evals", "--name", "Safety evaluations",
                 "--partner", "uk", "--theme", "ai-safety", token=ada)
    assert "PI: ada" in created.out
    applied = ok(server, "allocation", "apply", "safety-evals", "--agreement", "uk-fr", "--host", "fr",
                 "--units", "500", "--start", months_from_now(0), "--end", months_from_now(2),
                 "--site", "jean-zay", "--json", token=ada).json()
    assert isinstance(applied, dict) and applied["state"] == "requested"
    allocation = str(applied["id"])

    own = accord(server, "allocation", "approve", allocation, token=ada)
    assert own.code == 2 and "is not yours to decide" in own.err

    pending = ok(server, "allocation", "list", "--state", "requested", token=claire).out
    assert allocation in pending and "safety-evals" in pending
    decided = ok(server, "allocation", "approve", allocation, "--reason", "AISI–INESIA cooperation",
                 token=claire).out
    assert "approved by claire: AISI–INESIA cooperation" in decided
    assert "approved" in ok(server, "project", "show", "safety-evals", token=ada).out

    # a deadline leaving 20 s of slack: placement may not defer the run to a cleaner hour
    deadline = (datetime.now(UTC) + timedelta(minutes=10, seconds=20)).isoformat(timespec="seconds")
    job = ["--project", "safety-evals", "--gpu-model", "H100-SXM5-80GB", "--time-limit", "10m",
           "--deadline", deadline, "--", "python", "-c", "print('bonjour')"]
    text = ok(server, "preview", *job, token=ada).out
    assert text.startswith("would run at jean-zay / h100 under agreement uk-fr")
    assert "H100-hour" in text and "kWh" in text and "gate:      go — would run" in text
    seen = ok(server, "preview", "--json", *job, token=ada).json()
    assert isinstance(seen, dict) and seen["gate"]["would_run"] is True
    assert seen["cost_units"] == pytest.approx(10 / 60, abs=1e-3)

    ran = ok(server, "submit", "--wait", "--json", *job, token=ada).json()
    assert isinstance(ran, dict)
    assert (ran["state"], ran["site"], ran["agreement"]) == ("completed", "jean-zay", "uk-fr")
    assert ok(server, "logs", str(ran["id"]), token=ada).out == "bonjour\n"

    log = ok(server, "audit").out
    for action in ("user.enrol", "user.grant", "token.create", "project.create", "allocation.apply",
                   "allocation.decide", "job.submit"):
        assert action in log, action
    records = ok(server, "audit", "--actor", "claire", "--json").json()
    assert isinstance(records, list)
    assert [(r["action"], r["outcome"]) for r in records] == [("allocation.decide", "ok")]
    refused = ok(server, "audit", "--actor", "ada", "--action", "allocation.decide", "--json").json()
    assert isinstance(refused, list) and [r["status"] for r in refused] == [403]


def test_tokens_list_and_revoke(server: AccordProcess) -> None:
    grace = enrol_with_token(server, "grace", "Grace Hopper", "cambridge")
    listed = ok(server, "token", "list", token=grace).out
    token_id = grace.split("_")[1]
    assert token_id in listed and "active" in listed
    assert "revoked token" in ok(server, "token", "revoke", token_id, token=grace).out
    after = accord(server, "whoami", token=grace)
    assert after.code == 2 and "the API token was revoked" in after.err


def test_token_file_is_used_before_the_admin_token(server: AccordProcess, tmp_path: Path) -> None:
    token = enrol_with_token(server, "alan", "Alan Turing", "turing")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    me = accord_process(server, "whoami", "--json", "--token-file", str(path))
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["user"] == "alan"


def test_bad_role_exits_2_naming_the_field(server: AccordProcess) -> None:
    ok(server, "user", "add", "hedy", "--name", "Hedy Lamarr", "--institution", "ukri")
    bad = accord_process(server, "user", "grant", "hedy", "wizard", "--partner", "fr")
    assert bad.returncode == 2
    assert bad.stderr.startswith("role: is not a role that can be granted (got wizard, allowed ")
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_researcher_cannot_enrol_users(server: AccordProcess) -> None:
    token = enrol_with_token(server, "mary", "Mary Somerville", "bristol")
    refused = accord_process(server, "user", "add", "eve", "--name", "Eve", "--institution", "turing",
                             token=token)
    assert refused.returncode == 2
    assert refused.stderr.startswith("accord: ") and "admin" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert accord(server, "user", "show", "eve").code == 2   # nothing was enrolled
