"""A model-testing campaign whose jobs run at a site that runs Accord's agent: Inspect runs
at the site, its logs come home as the jobs' declared outputs, and the hub collects them
without any view of the site's filesystem."""

from __future__ import annotations

import time
from pathlib import Path

from tests.agent_world import AgentProcess, agent_hub
from tests.fixtures.campaigns.model_server import ModelServer

PEOPLE = """
[[institutions]]
id = "bristol"
name = "University of Bristol"
partner = "uk"
sector = "academia"

[[institutions]]
id = "sorbonne"
name = "Sorbonne Université"
partner = "fr"
sector = "academia"
"""
LOOPBACK_ONLY = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def test_a_campaign_at_an_agent_site_collects_the_logs_the_agent_sent_home(tmp_path: Path) -> None:
    _, tls, hub = agent_hub(tmp_path, PEOPLE)
    hub.env["SSL_CERT_FILE"] = str(tls.ca)
    with ModelServer() as model:
        agent = AgentProcess(
            hub.url,
            "isambard",
            tmp_path / "keys" / "isambard" / "site.key",
            tmp_path / "agent",
            tls.ca,
            env=LOOPBACK_ONLY,
        )
        try:
            agent.start()
            assert hub.cli("user", "add", "ada", "--name", "Ada", "--institution", "bristol").returncode == 0
            made = hub.cli(
                "token",
                "create",
                "ada-cli",
                "--for-user",
                "ada",
                "--scope",
                "jobs:read",
                "--scope",
                "jobs:write",
                "--scope",
                "projects:read",
                "--scope",
                "projects:write",
            )
            assert made.returncode == 0, made.stderr
            hub.env["ACCORD_TOKEN"] = made.stdout.strip()
            for args in (
                ("project", "create", "evals", "--name", "Evals", "--partner", "uk"),
                (
                    "campaign",
                    "create",
                    "--id",
                    "agent-1",
                    "--project",
                    "evals",
                    "--partner",
                    "uk",
                    "--site",
                    "isambard",
                    "--task",
                    "arithmetic:1",
                    "--model",
                    f"calc,{model.url},calc,uk",
                ),
                ("campaign", "submit", "agent-1"),
            ):
                done = hub.cli(*args)
                assert done.returncode == 0, (args, done.stdout, done.stderr)
            hub.env.pop("ACCORD_TOKEN")
            deadline = time.monotonic() + 150
            with hub.client() as client:
                while True:
                    runs = client.get("/api/v1/campaigns/agent-1").json()["runs"]
                    if runs and all(r["collected_at"] and r["logs"] for r in runs):
                        break
                    assert time.monotonic() < deadline, (runs, agent.output()[-3000:])
                    time.sleep(1)
                assert runs[0]["state"] == "completed" and runs[0]["site"] == "isambard", runs
                outputs = client.get(f"/api/v1/jobs/{runs[0]['job']}/outputs").json()["outputs"]
            assert outputs and all(o["name"].startswith("inspect-logs/") for o in outputs), outputs
            hub_jobs = Path(hub.data_dir) / "jobs"
            assert not hub_jobs.exists() or not any(hub_jobs.iterdir())  # nothing ran at the hub
        finally:
            agent.stop()
            hub.stop()
