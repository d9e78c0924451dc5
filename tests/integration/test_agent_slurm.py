"""The site agent against real Slurm, the hub out of the sites' reach.

The hub runs in a network namespace of its own (where the testbed's Slurm daemons on
127.0.0.1 do not exist), as a Unix user of its own (who cannot read the agents' directories),
on HTTPS with a private CA; one agent runs beside each testbed cluster. Jobs of 1-6 GPUs at
both sites complete with the GPU-seconds ``sacct`` gives, their output at the hub, their usage
signed by the site. Then the faults: the agents and the hub killed with SIGKILL at random
moments and the link cut for a minute while jobs run and end: no job is lost, none runs
twice in Slurm, every usage record is entered once, and the stories say what happened.
"""

from __future__ import annotations

import base64
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accord.domain.agent import attest
from accord.domain.agent.protocol import SignedUsage
from accord.domain.federation.schema import AGENT_KEY_PREFIX
from tests.agent_world import SITES, AgentProcess, agent_federation_text, make_tls, site_keys
from tests.integration.netns import Namespace, NamespacedHub, hub_namespace, hub_user
from tests.integration.slurm_testbed import SERIAL, Cluster, cluster_settings

pytestmark = SERIAL
FINAL = ("completed", "failed", "cancelled", "timed_out")


@pytest.fixture
def world(
    tmp_path: Path,
) -> Iterator[tuple[Namespace, NamespacedHub, dict[str, AgentProcess], dict[str, str]]]:
    clusters = {s: cluster_settings(s) for s in SITES}
    keys = site_keys(tmp_path / "keys")
    fed = tmp_path / "federation.toml"
    fed.write_text(agent_federation_text({s: [k] for s, k in keys.items()}, silence_s=15))
    base = Path(tempfile.mkdtemp(prefix="accord-hub-"))
    base.chmod(0o711)
    try:
        with hub_namespace() as ns, hub_user() as user:
            tls = make_tls(tmp_path / "tls", (ns.hub_ip,))
            hub = NamespacedHub(ns, user, base / "home", fed, tls)
            hub.start()
            agents = {s: _agent(hub.url, s, tmp_path, tls.ca, clusters[s]) for s in SITES}
            try:
                for a in agents.values():
                    a.start()
                yield ns, hub, agents, keys
            finally:
                for a in agents.values():
                    a.stop()
                hub.stop()
    finally:
        subprocess.run(["umount", "-R", str(base / "interpreter")], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], capture_output=True, check=False)


def _agent(url: str, site: str, tmp: Path, ca: Path, c: Cluster) -> AgentProcess:
    return AgentProcess(
        url,
        site,
        tmp / "keys" / site / "site.key",
        tmp / f"agent-{site}",
        ca,
        backend="slurm",
        extra=(
            "--cluster",
            site,
            "--slurm-conf",
            c.slurm_conf,
            "--partition",
            c.partition,
            "--account",
            "accord",
            "--resync",
            "20",
        ),
    )


def _submit(client: httpx.Client, n: int, sleep: str, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        site = list(SITES)[i % 2]
        gpus = [1, 2, 3, 4, 6][i % 5]
        doc = {
            "name": f"{tag}-{i}",
            "gpus": gpus,
            "site": site,
            "partner": "uk" if site == "jeanzay" else "fr",
            "command": ["bash", "-c", f"echo out {tag} {i}; echo err {tag} {i} >&2; sleep {sleep}"],
        }
        r = client.post("/api/v1/jobs", json=doc)
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])
    return ids


def _wait(hub: NamespacedHub, ids: list[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with hub.client() as client:
                jobs = [client.get(f"/api/v1/jobs/{i}").json() for i in ids]
            if all(j["state"] in FINAL for j in jobs):
                return jobs
        except httpx.TransportError:
            jobs = []
        if time.monotonic() > deadline:
            raise AssertionError([(j["id"], j["state"], j.get("reason")) for j in jobs] or "hub unreachable")
        time.sleep(1)


def _sacct(c: Cluster, job_id: str) -> list[tuple[int, int, str]]:
    """(allocated GPUs, elapsed seconds, state) of every Slurm job of this Accord job."""
    out = subprocess.run(
        [
            "sacct",
            "-M",
            c.name,
            "-X",
            "-n",
            "-P",
            "-a",
            "-S",
            "now-1days",
            "-o",
            "Comment,AllocTRES,ElapsedRaw,State",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"SLURM_CONF": c.slurm_conf, "PATH": "/usr/bin:/bin"},
    ).stdout
    found = []
    for line in out.splitlines():
        comment, tres, elapsed, state = line.split("|")
        if comment == f"accord:{job_id}":
            gpus = dict(kv.split("=") for kv in tres.split(",") if "=" in kv).get("gres/gpu", "0")
            found.append((int(gpus), int(elapsed), state))
    return found


def _check_books(hub: NamespacedHub, jobs: list[dict], keys: dict[str, str]) -> None:  # type: ignore[type-arg]
    """Each job once in Slurm with Accord's GPU-seconds, its output at the hub, one signed usage."""
    with hub.client() as client:
        for job in jobs:
            assert job["state"] == "completed", (job["id"], job["state"], job.get("reason"))
            runs = _sacct(cluster_settings(job["site"]), job["id"])
            assert len(runs) == 1, (job["id"], runs)
            gpus, elapsed, _ = runs[0]
            assert job["outcome"]["gpu_seconds"] == gpus * elapsed == job["spec"]["gpus"] * elapsed
            logs = client.get(f"/api/v1/jobs/{job['id']}/logs").json()
            assert "out " in logs["stdout"] and "err " in logs["stderr"], logs
            entries = _entries(client, job["id"])
            assert len(entries) == 1, entries
            att = client.get(f"/api/v1/usage/attestations/{entries[0]['memo']['usage_attestation']}").json()
            raw = base64.b64decode(keys[job["site"]].removeprefix(AGENT_KEY_PREFIX))
            usage = attest.verify(SignedUsage(att["body"], att["key_id"], att["signature"]), (raw,))
            assert usage.gpu_seconds == job["outcome"]["gpu_seconds"] and usage.site == job["site"]


def _entries(client: httpx.Client, job_id: str) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    while True:
        found = client.get("/api/v1/ledger/entries", params={"job": job_id}).json()["entries"]
        if found or time.monotonic() > deadline:
            return list(found)
        time.sleep(0.5)


def test_jobs_cross_from_a_hub_that_cannot_reach_the_sites(world) -> None:  # type: ignore[no-untyped-def]
    ns, hub, agents, keys = world
    reach = ns.run("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{_ctld_port('isambard')}")
    assert reach.returncode != 0, "the hub's namespace reaches the Slurm controller"
    for a in agents.values():
        denied = subprocess.run(["runuser", "-u", hub.user, "--", "ls", str(a.work_dir)], capture_output=True)
        assert denied.returncode != 0, "the hub's user reads an agent's directory"
    with hub.client() as client:
        ids = _submit(client, 10, "2", "cross")
    _check_books(hub, _wait(hub, ids, timeout=240), keys)


def test_kills_and_a_cut_link_lose_nothing_and_run_nothing_twice(world) -> None:  # type: ignore[no-untyped-def]
    ns, hub, agents, keys = world
    rng = random.Random(19)
    with hub.client() as client:
        ids = _submit(client, 8, "8", "fault")
    for _ in range(3):  # agents killed at random moments
        time.sleep(rng.uniform(0.5, 4))
        victim = agents[rng.choice(list(SITES))]
        victim.kill9()
        time.sleep(rng.uniform(0, 2))
        victim.start()
    time.sleep(rng.uniform(0.5, 3))  # the hub killed and started again
    hub.kill9()
    hub.start()
    with hub.client() as client:
        ids += _submit(client, 4, "20", "cut")
    time.sleep(3)
    ns.link(False)  # the link cut for a minute
    time.sleep(60)
    ns.link(True)
    jobs = _wait(hub, ids, timeout=300)
    _check_books(hub, jobs, keys)
    with hub.client() as client:
        stories = [client.get(f"/api/v1/jobs/{i}").json()["story"] for i in ids[-4:]]
    assert any("cannot reach site" in e.get("reason", "") for s in stories for e in s), stories


def _ctld_port(cluster: str) -> int:
    conf = Path(cluster_settings(cluster).slurm_conf).read_text()
    return int(next(line.split("=")[1] for line in conf.splitlines() if line.startswith("SlurmctldPort")))
