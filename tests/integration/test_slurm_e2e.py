"""End to end: ``accord up`` on the two testbed clusters, 20 jobs through the CLI.

Every job must complete, and the GPU-seconds Accord records for it must equal
what Slurm's accounting says (allocated GPUs x elapsed seconds).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.integration.server import AccordProcess
from tests.integration.slurm_testbed import SERIAL, cluster_settings, slurm_federation_text

pytestmark = SERIAL

JOBS = 20


def test_twenty_jobs_complete_and_gpu_seconds_match_sacct(tmp_path: Path) -> None:
    fed = tmp_path / "federation.toml"
    fed.write_text(slurm_federation_text())
    server = AccordProcess(tmp_path / "data", fed)
    server.start()
    try:
        ids = []
        for i in range(JOBS):
            gpus = [1, 2, 3, 4, 6][i % 5]
            site = ["isambard", "jeanzay"][i % 2]
            sub = server.cli("submit", "--json", "--gpus", str(gpus), "--site", site,
                             "--name", f"e2e-{i}", "--", "bash", "-c", f"sleep {1 + i % 3}")
            assert sub.returncode == 0, sub.stderr
            ids.append(json.loads(sub.stdout)["id"])
        jobs = _wait(server, ids, timeout=300)
    finally:
        server.stop()
    for job in jobs:
        assert job["state"] == "completed", (job["id"], job["state"], job["reason"])
        alloc, elapsed = _sacct(job["site"], job["backend_ref"])
        assert job["outcome"]["gpus"] == alloc == job["spec"]["gpus"]
        assert job["outcome"]["gpu_seconds"] == alloc * elapsed, job["id"]


def _wait(server: AccordProcess, ids: list[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            jobs = [client.get(f"/api/v1/jobs/{i}").json() for i in ids]
            if all(j["state"] in ("completed", "failed", "cancelled", "timed_out") for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError([(j["id"], j["state"], j["reason"]) for j in jobs])
            time.sleep(1)


def _sacct(cluster: str, ref: str) -> tuple[int, int]:
    conf = cluster_settings(cluster).slurm_conf
    out = subprocess.run(["sacct", "-M", cluster, "-j", ref, "-X", "-n", "-P",
                          "-o", "AllocTRES,ElapsedRaw"], capture_output=True, text=True, check=True,
                         env={"SLURM_CONF": conf, "PATH": "/usr/bin:/bin"}).stdout.strip()
    tres, elapsed = out.split("|")
    gpus = dict(kv.split("=") for kv in tres.split(","))["gres/gpu"]
    return int(gpus), int(elapsed)
