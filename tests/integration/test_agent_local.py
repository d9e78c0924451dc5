"""Two sites that run Accord's agent (the local backend at each), a hub on HTTPS with a
private CA: jobs cross, complete, come home with their output, and every usage record the
hub enters is signed by the site that ran it."""

from __future__ import annotations

import base64
import hashlib
import time
from decimal import Decimal
from pathlib import Path

import httpx

from accord.domain.agent import attest
from accord.domain.agent.protocol import SignedUsage
from accord.domain.federation.schema import AGENT_KEY_PREFIX
from tests.agent_world import SITES, AgentProcess, agent_hub
from tests.integration.server import free_port

FINAL = ("completed", "failed", "cancelled", "timed_out")


def wait_final(client: httpx.Client, ids: list[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        jobs = [client.get(f"/api/v1/jobs/{i}").json() for i in ids]
        if all(j["state"] in FINAL for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError([(j["id"], j["state"], j.get("reason")) for j in jobs])
        time.sleep(0.5)


def test_jobs_cross_to_agent_sites_and_come_home_signed(tmp_path: Path) -> None:
    keys, tls, hub = agent_hub(tmp_path)
    metrics_port = free_port()
    agents = [
        AgentProcess(
            hub.url,
            s,
            tmp_path / "keys" / s / "site.key",
            tmp_path / f"agent-{s}",
            tls.ca,
            extra=("--metrics-port", str(metrics_port)) if s == "jeanzay" else (),
        )
        for s in SITES
    ]
    try:
        for a in agents:
            a.start()
        with hub.client() as client:
            ids = []
            for i in range(6):
                site = list(SITES)[i % 2]
                doc = {
                    "name": f"cross-{i}",
                    "gpus": 1 + i % 3,
                    "site": site,
                    "partner": "uk" if i % 2 else "fr",
                    "command": ["bash", "-c", f"echo hello from {site} {i}; echo err {i} >&2; sleep 1"],
                }
                r = client.post("/api/v1/jobs", json=doc)
                assert r.status_code in (200, 201), r.text
                ids.append(r.json()["id"])
            jobs = wait_final(client, ids, timeout=120)
            for i, job in enumerate(jobs):
                assert job["state"] == "completed", (job, agents[i % 2].output()[-2000:])
                logs = client.get(f"/api/v1/jobs/{job['id']}/logs").json()
                assert f"hello from {job['site']} {i}" in logs["stdout"], logs
                assert f"err {i}" in logs["stderr"], logs
            # The agent's own metrics, scraped as the site's Prometheus would (jeanzay ran 3 jobs).
            samples = agent_metrics(metrics_port)
            deadline = time.monotonic() + 15  # the final reports rode a long poll: marked when it returns
            while float(samples["accord_agent_jobs_held"]) and time.monotonic() < deadline:
                time.sleep(0.2)
                samples = agent_metrics(metrics_port)
            assert float(samples['accord_agent_orders_received_total{kind="dispatch"}']) == 3
            assert float(samples['accord_agent_hub_requests_total{call="exchange",outcome="ok"}']) >= 1
            assert float(samples['accord_agent_scheduler_calls_total{call="submit",outcome="ok"}']) == 3
            assert float(samples["accord_agent_jobs_held"]) == 0
            hub_metrics = client.get("/metrics").text
            assert 'accord_agent_orders_pending{site="jeanzay"} 0.0' in hub_metrics
            assert 'accord_agent_last_seen_age_seconds{site="jeanzay"}' in hub_metrics
            deadline = time.monotonic() + 30  # the ledger posts usage in its own pass
            entries: list[dict] = []  # type: ignore[type-arg]
            while time.monotonic() < deadline and len({e["job_id"] for e in entries}) < len(ids):
                entries = [
                    e
                    for i in ids
                    for e in client.get("/api/v1/ledger/entries", params={"job": i}).json()["entries"]
                ]
                time.sleep(0.5)
            assert {e["job_id"] for e in entries} == set(ids)
            for e in entries:
                att = client.get(f"/api/v1/usage/attestations/{e['memo']['usage_attestation']}").json()
                assert att["site"] == e["site"]
                raw = base64.b64decode(keys[e["site"]].removeprefix(AGENT_KEY_PREFIX))
                signed = attest.verify(SignedUsage(att["body"], att["key_id"], att["signature"]), (raw,))
                assert signed.job_id == e["job_id"] and signed.ref == e["usage_id"].split(":", 1)[1]
                assert Decimal(repr(round(signed.gpu_seconds, 6))) == Decimal(e["gpu_seconds"])
    finally:
        for a in agents:
            a.stop()
        hub.stop()


def test_inputs_go_with_the_job_and_declared_outputs_come_home(tmp_path: Path) -> None:
    _, tls, hub = agent_hub(tmp_path)
    agent = AgentProcess(
        hub.url, "jeanzay", tmp_path / "keys" / "jeanzay" / "site.key", tmp_path / "agent", tls.ca
    )
    try:
        agent.start()
        with hub.client() as client:
            data = b"line one\nline two\n" * 1000
            up = client.post(
                "/api/v1/files", content=data, headers={"Content-Type": "application/octet-stream"}
            )
            assert up.status_code == 201, up.text
            sha = up.json()["sha256"]
            assert sha == hashlib.sha256(data).hexdigest() and up.json()["size"] == len(data)
            missing = client.post(
                "/api/v1/jobs",
                json={"command": ["true"], "site": "jeanzay", "inputs": ["x.txt=sha256:" + "0" * 64]},
            )
            assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "inputs", (
                missing.text
            )
            script = (
                "wc -l data.txt > count.txt; mkdir -p logs; echo '{\"ok\": 1}' > logs/a.json; echo x > stray"
            )
            r = client.post(
                "/api/v1/jobs",
                json={
                    "command": ["bash", "-c", script],
                    "site": "jeanzay",
                    "partner": "uk",
                    "inputs": [f"data.txt=sha256:{sha}"],
                    "outputs": ["count.txt", "logs/*.json"],
                },
            )
            assert r.status_code == 201, r.text
            job = wait_final(client, [r.json()["id"]], timeout=60)[0]
            assert job["state"] == "completed", (job, agent.output()[-2000:])
            listed = client.get(f"/api/v1/jobs/{job['id']}/outputs").json()["outputs"]
            assert [o["name"] for o in listed] == ["count.txt", "logs/a.json"]
            count = client.get(f"/api/v1/jobs/{job['id']}/outputs/count.txt")
            assert count.content.strip() == b"2000 data.txt"
            assert count.headers["X-Content-SHA256"] == hashlib.sha256(count.content).hexdigest()
            assert client.get(f"/api/v1/jobs/{job['id']}/outputs/stray").status_code == 404
        # The same through the CLI: the input uploaded by `submit --input`, an output fetched.
        hub.env["SSL_CERT_FILE"] = str(tls.ca)
        infile = tmp_path / "numbers.txt"
        infile.write_text("1\n2\n3\n")
        sub = hub.cli(
            "submit",
            "--parsable",
            "--wait",
            "--site",
            "jeanzay",
            "--partner",
            "uk",
            "--input",
            str(infile),
            "--outputs",
            "sum.txt",
            "--",
            "bash",
            "-c",
            "awk '{s += $1} END {print s}' numbers.txt > sum.txt",
        )
        assert sub.returncode == 0, sub.stderr
        got = hub.cli("outputs", sub.stdout.strip(), "sum.txt")
        assert got.returncode == 0 and got.stdout.strip() == "6", (got.stdout, got.stderr)
    finally:
        agent.stop()
        hub.stop()


def agent_metrics(port: int) -> dict[str, str]:
    """The agent's metric samples, as the site's Prometheus would scrape them."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
