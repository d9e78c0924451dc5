"""Three ``accord up`` replicas on one PostgreSQL database, the one holding the dispatch lease
``kill -9``-ed at random moments, five times, while 100 jobs are submitted through all three:
every job runs exactly once and completes (none is marked failed while it runs), the ledger
verifies, no GPU is held by two jobs at once, and another replica takes over within
:data:`TAKEOVER_BOUND_S`
(docs/design/replicas.md). Also: SQLite refuses a second ``accord up`` on the same file,
and a replica with another signing key or admin token is refused."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.service.leadership import LEASE_TTL_S, RENEW_S
from tests.conftest import SMALL_FEDERATION, fresh_pg_schema
from tests.integration.in_force import write_in_force
from tests.integration.server import AccordProcess

JOBS = 100
KILLS = 5
REPLICAS = 3
TAKEOVER_BOUND_S = LEASE_TTL_S + 2 * RENEW_S + 2.0   # the bound docs/design/replicas.md states
FINAL = ("completed", "failed", "cancelled", "timed_out")


def _shared_secrets(root: Path) -> dict[str, str]:
    key = root / "hub-signing.key"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    token = root / "hub-admin.token"
    token.write_text(secrets.token_urlsafe(32) + "\n")
    return {"ACCORD_SIGNING_KEY_FILE": str(key), "ACCORD_ADMIN_TOKEN_FILE": str(token)}


def _federation(root: Path) -> Path:
    """The small federation, its local sites' job directories shared by every replica."""
    shared = root / "site-jobs"
    text = SMALL_FEDERATION.replace(
        'backend = "local"\n[[sites.pools]]',
        f'backend = "local"\n[sites.local]\nworkdir = "{shared}"\n[[sites.pools]]'
    ).replace("gpus = 4\n", "gpus = 12\n")
    assert text.count("[sites.local]") == 2
    return write_in_force(root / "federation.toml", text)


def _replicas(root: Path, url: str, env: dict[str, str], fed: Path) -> list[AccordProcess]:
    out = []
    for i in range(REPLICAS):
        server = AccordProcess(root / f"replica-{i}", fed, url)
        server.env.update(env)
        out.append(server)
    return out


def _lease(pg: str) -> tuple[str, int, float] | None:
    with psycopg.connect(pg, autocommit=True) as conn:
        row = conn.execute("SELECT holder, epoch, expires_at - extract(epoch from clock_timestamp()) "
                           "FROM hub_leases WHERE name = 'dispatch'").fetchone()
    return None if row is None else (str(row[0]), int(row[1]), float(row[2]))


def _plain(url: str) -> str:
    """A psycopg connection string for the SQLAlchemy URL (the schema kept)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Submitter(threading.Thread):
    """Submits every job once (retrying, with its idempotency key, through the next replica
    when one is down), round-robin through the replicas."""

    def __init__(self, servers: list[AccordProcess], ran: Path, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.servers, self.ran, self.rng = servers, ran, rng
        self.done: dict[str, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(JOBS):
                self._submit(i)
                time.sleep(self.rng.uniform(0.0, 0.15))
        except BaseException as exc:
            self.error = exc

    def _submit(self, i: int) -> None:
        # some jobs outlive a takeover: the new holder must count the GPUs they hold
        nap = self.rng.choice(["0.1", "0.5", "1", "2", "9"])
        script = (f'echo "start $ACCORD_JOB_ID $ACCORD_SITE $CUDA_VISIBLE_DEVICES $(date +%s%N)" '
                  f'>> {self.ran}; sleep {nap}; echo "end $ACCORD_JOB_ID $(date +%s%N)" >> {self.ran}')
        body = {"command": ["bash", "-c", script],
                "gpus": self.rng.choice([1, 2])}
        deadline = time.monotonic() + 120
        n = i
        while time.monotonic() < deadline:
            server = self.servers[n % REPLICAS]
            n += 1
            try:
                with server.client() as client:
                    r = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": f"k-{i}"})
                if r.status_code in (200, 201):
                    self.done[f"k-{i}"] = r.json()["id"]
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"job k-{i} could not be submitted to any replica")


def _kill_the_leader(servers: list[AccordProcess], pg: str) -> float:
    """kill -9 the replica holding the dispatch lease, restart it; seconds until another
    replica held a fresh lease."""
    before = _lease(pg)
    assert before is not None and before[2] > 0, f"nobody leads: {before}"
    port = int(before[0].rsplit(":", 1)[1])
    victim = next(s for s in servers if s.port == port)
    victim.kill9()
    killed = time.monotonic()
    while True:
        now = _lease(pg)
        if now is not None and now[1] > before[1] and now[2] > 0:
            took = time.monotonic() - killed
            break
        assert time.monotonic() - killed < 3 * TAKEOVER_BOUND_S, f"no takeover: {now}"
        time.sleep(0.1)
    assert now[0] != before[0]
    victim.start()
    return took


def _gpus_shared(lines: list[list[str]]) -> list[tuple[str, str, str]]:
    """(job, job, GPU) for every two jobs that held one GPU of one site at overlapping times:
    the pool's allocation must hold across takeovers (the new holder sees the old one's jobs)."""
    ends = {f[1]: int(f[2]) for f in lines if f[0] == "end"}
    held = [(f[1], f[2], set(f[3].split(",")), int(f[4]), ends[f[1]]) for f in lines if f[0] == "start"]
    return [(a[0], b[0], gpu) for n, a in enumerate(held) for b in held[n + 1:]
            if a[1] == b[1] and a[3] < b[4] and b[3] < a[4] for gpu in a[2] & b[2]]


def _wait_all_final(server: AccordProcess, keys: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            jobs: list[dict[str, Any]] = client.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"]
            if len(jobs) == keys and all(j["state"] in FINAL for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError(f"not final: {Counter(j['state'] for j in jobs)}")
            time.sleep(0.5)


def test_three_replicas_run_every_job_once_through_five_leader_kills(
        tmp_path: Path, pg_database: str) -> None:
    rng = random.Random(18)
    url = fresh_pg_schema(pg_database)
    servers = _replicas(tmp_path, url, _shared_secrets(tmp_path), _federation(tmp_path))
    ran = tmp_path / "ran.txt"
    ran.touch()
    for s in servers:
        s.start()
    takeovers: list[float] = []
    try:
        submitter = Submitter(servers, ran, rng)
        submitter.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 5.0))
            takeovers.append(_kill_the_leader(servers, _plain(url)))
        submitter.join(timeout=300)
        assert submitter.error is None, submitter.error
        jobs = _wait_all_final(servers[0], JOBS, timeout=300)
        with servers[1].client() as client:
            verified = client.get("/api/v1/ledger/verify")
    finally:
        for s in servers:
            s.stop()
    print(f"takeovers after kill -9 (s): {[round(t, 1) for t in takeovers]}")
    assert sorted(submitter.done) == sorted(f"k-{i}" for i in range(JOBS))
    states = Counter(j["state"] for j in jobs)
    assert states == {"completed": JOBS}, (states, [j["story"][-3:] for j in jobs
                                                    if j["state"] != "completed"][:3])
    lines = [line.split() for line in ran.read_text().splitlines()]
    starts = Counter(f[1] for f in lines if f[0] == "start")
    assert set(starts) == {j["id"] for j in jobs}
    assert max(starts.values()) == 1, f"ran twice: {[k for k, v in starts.items() if v > 1]}"
    assert not _gpus_shared(lines), "two jobs held the same GPU at the same time"
    assert verified.status_code == 200, verified.text
    assert max(takeovers) <= TAKEOVER_BOUND_S, takeovers
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        usage = conn.execute("SELECT count(*), count(DISTINCT job_id) FROM usage_records").fetchone()
    assert usage == (JOBS, JOBS), f"usage records (rows, jobs): {usage}"


def _second_refused(root: Path, url: str) -> str:
    """Start ``accord up`` on ``url`` twice (own data directories); the second must exit while
    the first runs. What the second printed."""
    first = AccordProcess(root / "a", database_url=url)
    second = AccordProcess(root / "b", database_url=url)
    first.start()
    try:
        with pytest.raises(AssertionError, match="accord up exited"):
            second.start(timeout=30)
    finally:
        first.stop()
        second.stop()
    return second.log.read_text()


def test_sqlite_serves_one_accord_up_and_says_so(tmp_path: Path) -> None:
    text = _second_refused(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    assert "SQLite serves one 'accord up' at a time" in text


def test_a_replica_with_its_own_secrets_is_refused(tmp_path: Path, pg_database: str) -> None:
    text = _second_refused(tmp_path, fresh_pg_schema(pg_database))
    assert "does not match the hub it joins" in text
    assert "ledger signing key" in text and "ACCORD_SIGNING_KEY_FILE" in text
    assert "admin token" in text and "ACCORD_ADMIN_TOKEN_FILE" in text
    assert "job directory" in text and "workdir" in text
    assert os.path.exists(tmp_path / "a" / "admin.token")
