"""The audit log loses nothing under attack, on SQLite and PostgreSQL (issue 18, item 2).

Several threads send ``POST /api/v1/jobs/x%00y/cancel`` (a NUL in the path: 422 before any
route runs) — with a researcher's valid token, with no token and with a forged one — while
the admin enrols five users. PostgreSQL refuses text holding a NUL: before the fix, each
batch that held such a record was lost whole, enrolments with it, and the researcher's
refused requests were recorded as "anonymous". Now every request has its record, the NUL
shown as ``\\x00``, the actor named whenever the credential was valid, nothing spooled.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.access_world import World, make_world

ATTACK = "/api/v1/jobs/x%00y/cancel"
STORED_PATH = "/api/v1/jobs/x\\x00y/cancel"      # as the audit log shows it
ROUNDS = 15                                         # requests per thread
CALLERS = ("alice", "alice", "nobody", "forger")    # one thread each
NEW_USERS = [f"new{i}" for i in range(5)]


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    (tmp_path / "data").mkdir()
    with make_world(tmp_path, people=False, database_url=db_url, data_dir=tmp_path / "data") as w:
        w.enrol("alice", "bristol")
        yield w


def attack(w: World, caller: str, start: threading.Barrier, statuses: list[int]) -> None:
    """``ROUNDS`` NUL requests as ``caller`` (nobody: no token; forger: a token that is not valid)."""
    forged = {"Authorization": "Bearer acc_0000000000000000_forged"}
    headers = {} if caller == "nobody" else forged if caller == "forger" else w.auth(caller)
    client = TestClient(w.client.app, raise_server_exceptions=False)
    start.wait()
    for _ in range(ROUNDS):
        statuses.append(client.post(ATTACK, headers=headers).status_code)


def test_nul_paths_sent_during_enrolments_lose_no_audit_record(world: World, db_url: str) -> None:
    w = world
    before = w.ok("admin", "GET", "/api/v1/audit")["records"]
    start = threading.Barrier(len(CALLERS) + 1, timeout=30)
    statuses: list[int] = []
    threads = [threading.Thread(target=attack, args=(w, c, start, statuses)) for c in CALLERS]
    for t in threads:
        t.start()
    start.wait()
    for user in NEW_USERS:
        w.ok("admin", "POST", "/api/v1/users", json={"id": user, "name": user, "institution": "bristol"})
    for t in threads:
        t.join(60)
    assert statuses == [422] * (ROUNDS * len(CALLERS))

    page = w.ok("admin", "GET", "/api/v1/audit", params={"after": before[-1]["seq"]})
    records: list[dict[str, Any]] = page["records"]
    assert len(records) == ROUNDS * len(CALLERS) + len(NEW_USERS)   # every request, none lost
    enrolled = [r["target"] for r in records if r["action"] == "user.enrol" and r["outcome"] == "ok"]
    assert enrolled == [f"user {u}" for u in NEW_USERS]
    attacks = [r for r in records if r["target"].startswith("/api/v1/jobs/x")]
    assert len(attacks) == ROUNDS * len(CALLERS)
    actors = Counter((r["actor"], r["via"].split(":")[0]) for r in attacks)
    assert actors == {("alice", "api-token"): 2 * ROUNDS, ("anonymous", "-"): 2 * ROUNDS}, db_url
    assert all((r["action"], r["outcome"], r["status"]) == (f"POST {STORED_PATH}", "invalid", 422)
               for r in attacks)
    assert page["spooled"] == 0          # every record stored, none waiting in the spool
