"""The ledger end to end: a cross-border job is posted, a statement verifies offline in
another directory with only the public key, and an edit made directly in the database
is found and named by ``accord ledger verify``."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SMALL_FEDERATION
from tests.integration.in_force import write_in_force
from tests.integration.server import AccordProcess


def test_statement_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    fed = write_in_force(tmp_path / "f.toml", SMALL_FEDERATION)   # uk-fr in force today
    server = AccordProcess(tmp_path / "data", fed)
    server.start()
    try:
        sub = server.cli("submit", "--json", "--wait", "--partner", "uk", "--theme", "climate",
                         "--gpu-model", "A100", "--gpus", "2", "--", "sleep", "1")
        assert sub.returncode == 0, sub.stderr
        job = json.loads(sub.stdout)
        assert (job["site"], job["agreement"]) == ("paris", "uk-fr")
        entries = _wait_for_entries(server, job["id"])
        assert entries[0]["requester"] == "uk" and entries[0]["host"] == "fr"
        period = entries[0]["period"]   # the month the job ran in, not the month the test began
        balances = json.loads(server.cli("ledger", "balances", "--json", check=True).stdout)
        assert float(balances["total"]) == 0
        out = tmp_path / "statement.json"
        server.cli("statement", "--agreement", "uk-fr", "--period", period, "--out", str(out),
                   check=True)
        html = server.cli("statement", "--agreement", "uk-fr", "--period", period,
                          "--format", "html", check=True).stdout
        assert "Net balance per partner" in html
    finally:
        server.stop()
    stated = json.loads(out.read_text())
    assert stated["period"] == period
    assert entries[0]["id"] in {json.loads(e["body"])["id"] for e in stated["entries"]}
    elsewhere = tmp_path / "partner"
    elsewhere.mkdir()
    shutil.copy(out, elsewhere / "statement.json")
    shutil.copy(tmp_path / "data" / "ledger-signing.pub.pem", elsewhere / "operator.pub.pem")
    ok = _accord(elsewhere, "statement", "verify", "statement.json", "--key", "operator.pub.pem")
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout
    doc = json.loads((elsewhere / "statement.json").read_text())
    doc["totals"]["net_by_partner"]["uk"] = "999"
    (elsewhere / "forged.json").write_text(json.dumps(doc))
    bad = _accord(elsewhere, "statement", "verify", "forged.json", "--key", "operator.pub.pem")
    assert bad.returncode == 2 and "totals do not match" in bad.stderr

    verified = _accord(tmp_path, "ledger", "verify", "--data-dir", str(tmp_path / "data"),
                       env={"ACCORD_FEDERATION": str(fed)})
    assert verified.returncode == 0, verified.stderr
    with sqlite3.connect(tmp_path / "data" / "accord.db") as db:
        db.execute("UPDATE ledger_entries SET body = replace(body, '\"proj', '\"xproj') ")
        db.execute("UPDATE ledger_entries SET body = replace(body, '\"default\"', '\"stolen\"')")
    broken = _accord(tmp_path, "ledger", "verify", "--data-dir", str(tmp_path / "data"),
                     env={"ACCORD_FEDERATION": str(fed)})
    assert broken.returncode == 2
    assert "LEDGER VERIFICATION FAILED at entry 0" in broken.stderr


def _wait_for_entries(server: AccordProcess, job_id: str) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = json.loads(server.cli("ledger", "entries", "--job", job_id, "--json",
                                    check=True).stdout)
        if out:
            return list(out)
        time.sleep(0.5)
    raise AssertionError("the job's usage was never posted")


def _accord(cwd: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "accord", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, check=False)
