"""Host-attested entries in statements (issue 21, item 4), end to end: two sites that run
Accord's agent (the local backend at each) run a job each for the other partner; the
agreement's statement carries, with each entry, the usage the host's agent signed, and
``accord statement verify --federation`` checks it against the sites' keys in the federation
file — and names the entry whose attestation a forger changed."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import httpx

from accord.adapters import keys as key_files
from accord.domain.ledger.statement import sign_statement
from tests.agent_world import SITES, AgentProcess, agent_hub
from tests.integration.test_agent_local import wait_final
from tests.integration.test_ledger_e2e import _accord


def test_a_statement_carries_each_hosts_signed_usage(tmp_path: Path) -> None:
    _keys, tls, hub = agent_hub(tmp_path)
    agents = [AgentProcess(hub.url, s, tmp_path / "keys" / s / "site.key", tmp_path / f"agent-{s}", tls.ca)
              for s in SITES]
    try:
        for a in agents:
            a.start()
        with hub.client() as client:
            doc = _run_and_state(client)
    finally:
        for a in agents:
            a.stop()
        hub.stop()
    assert [e["attestation"]["site"] for e in doc["entries"]] == [
        json.loads(e["body"])["site"] for e in doc["entries"]]
    (tmp_path / "st.json").write_text(json.dumps(doc))
    pub = str(tmp_path / "hub" / key_files.PUBLIC)
    ok = _accord(tmp_path, "statement", "verify", "st.json", "--key", pub, "--federation", "federation.toml")
    assert ok.returncode == 0, ok.stderr
    assert f"{len(doc['entries'])} host attestation(s) checked" in ok.stdout

    forged = copy.deepcopy(doc)
    att = forged["entries"][0]["attestation"]
    att["body"] = att["body"].replace('"gpus":', '"gpus":1', 1)   # one more digit of GPUs
    forged.pop("signature")
    signed = sign_statement(forged, key_files.load(tmp_path / "hub" / key_files.PRIVATE))
    (tmp_path / "forged.json").write_text(json.dumps(signed))
    bad = _accord(tmp_path, "statement", "verify", "forged.json", "--key", pub,
                  "--federation", "federation.toml")
    assert bad.returncode == 2
    assert "entry 0 (leaf" in bad.stderr and "the attested usage is not the one the entry names" in bad.stderr
    unchecked = _accord(tmp_path, "statement", "verify", "forged.json", "--key", pub)
    assert unchecked.returncode == 0 and "host attestation(s) NOT checked" in unchecked.stdout


def _run_and_state(client: httpx.Client) -> dict:  # type: ignore[type-arg]
    """One job for each partner at the other's site; the agreement's statement of their month."""
    ids = []
    for site, partner in (("jeanzay", "uk"), ("isambard", "fr")):
        r = client.post("/api/v1/jobs", json={"name": f"at-{site}", "gpus": 1, "site": site,
                                              "partner": partner, "command": ["sleep", "1"]})
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])
    assert [j["state"] for j in wait_final(client, ids, timeout=120)] == ["completed"] * 2
    deadline = time.monotonic() + 30
    entries: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and len(entries) < 2:
        entries = [e for i in ids
                   for e in client.get("/api/v1/ledger/entries", params={"job": i}).json()["entries"]]
        time.sleep(0.5)
    assert len(entries) == 2 and entries[0]["period"] == entries[1]["period"], entries
    r = client.get(f"/api/v1/statements/{entries[0]['agreement']}/{entries[0]['period']}")
    assert r.status_code == 200, r.text
    return dict(r.json())
