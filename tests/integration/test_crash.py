"""``kill -9`` of ``accord up`` at random moments: nothing lost, nothing run twice.

Each job appends its id to a shared file when it starts, so a double run shows
as a repeated line. Submissions use idempotency keys and are retried across
crashes, as a real client would.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import SMALL_FEDERATION
from tests.integration.in_force import write_in_force
from tests.integration.server import AccordProcess

JOBS = 18
CRASHES = 4


def _submit_all(server: AccordProcess, ran: Path, keys: list[str], rng: random.Random) -> None:
    with server.client() as client:
        for key in keys:
            nap = rng.choice(["0.2", "0.8", "1.5", "3"])
            body = {"command": ["bash", "-c", f'echo "$ACCORD_JOB_ID" >> {ran}; sleep {nap}'],
                    "gpus": rng.choice([1, 2])}
            client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    db_url: str, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    fed = write_in_force(tmp_path / "f.toml", SMALL_FEDERATION)
    ran = tmp_path / "ran.txt"
    ran.touch()
    server = AccordProcess(tmp_path / "data", fed, db_url)
    keys = [f"key-{i}" for i in range(JOBS)]
    batches = [keys[i::CRASHES] for i in range(CRASHES)]
    for batch in batches:
        server.start()
        try:
            _submit_all(server, ran, batch, rng)
        except httpx.TransportError:
            pass
        time.sleep(rng.uniform(0.1, 2.0))
        server.kill9()
    server.start()
    try:
        _submit_all(server, ran, keys, rng)  # retry everything: keys make it idempotent
        jobs = _wait_all_final(server, timeout=120)
    finally:
        server.stop()
    assert len(jobs) == JOBS, "a retried submission created a second job"
    states = Counter(j["state"] for j in jobs)
    assert states == {"completed": JOBS}, states
    runs = Counter(ran.read_text().split())
    assert set(runs) == {j["id"] for j in jobs}
    assert max(runs.values()) == 1, f"ran twice: {[k for k, v in runs.items() if v > 1]}"


def _wait_all_final(server: AccordProcess, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            jobs = client.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"]
            if all(j["state"] in ("completed", "failed", "cancelled", "timed_out") for j in jobs):
                return list(jobs)
            if time.monotonic() > deadline:
                raise AssertionError(f"not final: {[(j['id'], j['state']) for j in jobs]}")
            time.sleep(0.3)
