"""Witness cosigning end to end (issue 21): a real ``accord up`` whose federation file names the
UK's witness (127.0.0.2) and France's (127.0.0.3). France's is down when the month is closed:
the statement is provisional and says why; once it is back, the hub's own interval collection
(the dispatch lease holder's) completes the statement, which then verifies offline against the
federation file; the agreement page's API names both cosigners and ``/metrics`` the age of the
last cosignature."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from accord.adapters import keys
from accord.domain.ledger.checkpoint import default_origin
from tests.conftest import SMALL_FEDERATION
from tests.integration.in_force import in_force
from tests.integration.server import AccordProcess
from tests.integration.test_dashboard import launch, open_page, sign_in
from tests.integration.test_ledger_e2e import _accord, _wait_for_entries
from tests.integration.witnesses import PartnerWitnessProcess

pytestmark = [pytest.mark.integration]

ORIGIN = default_origin("accord-e2e")


def test_a_hub_collects_cosignatures_and_completes_statements(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys.load_or_create(data)   # the hub's ledger key, which the witnesses are told to trust
    log = f"{ORIGIN}={data / keys.PUBLIC}"
    uk = PartnerWitnessProcess("uk-w", "uk", "127.0.0.2", tmp_path / "uk", str(tmp_path / "uk.db"), log)
    fr = PartnerWitnessProcess("fr-w", "fr", "127.0.0.3", tmp_path / "fr", str(tmp_path / "fr.db"), log)
    server = AccordProcess(data, tmp_path / "federation.toml")
    try:
        for w in (uk, fr):
            w.keygen()
        (tmp_path / "federation.toml").write_text(in_force(SMALL_FEDERATION) + (
            f'\n[witnessing]\ninterval_s = 1\ntimeout_s = 2\norigin = "{ORIGIN}"\n\n'
            + uk.toml() + fr.toml()))
        uk.start()
        server.start()
        _run_and_close(server, tmp_path, fr)
    finally:
        server.stop()
        uk.stop()
        fr.stop()
    ok = _accord(tmp_path, "statement", "verify", "st.json", "--key", str(data / keys.PUBLIC),
                 "--federation", "federation.toml")
    assert ok.returncode == 0, ok.stderr
    assert "cosigned by fr-w, uk-w" in ok.stdout


def _run_and_close(server: AccordProcess, tmp_path: Path, fr: PartnerWitnessProcess) -> None:
    sub = server.cli("submit", "--json", "--wait", "--partner", "uk", "--theme", "climate",
                     "--gpu-model", "A100", "--gpus", "1", "--", "sleep", "1")
    assert sub.returncode == 0, sub.stderr
    period = _wait_for_entries(server, json.loads(sub.stdout)["id"])[0]["period"]
    server.cli("ledger", "close", "--period", period, "--early", check=True)
    doc = _statement(server, period)
    assert doc["status"] == "provisional" and doc["witnessing"]["cosigners"] == ["uk-w"], doc["witnessing"]
    assert doc["provisional_reasons"][0].startswith(f"witness fr-w at {fr.url}: unreachable"), doc
    fr.start()
    deadline = time.monotonic() + 30
    while doc["status"] != "closed" and time.monotonic() < deadline:
        time.sleep(0.5)
        doc = _statement(server, period)
    assert doc["status"] == "closed", doc["provisional_reasons"]
    assert doc["witnessing"]["cosigners"] == ["fr-w", "uk-w"]
    (tmp_path / "st.json").write_text(json.dumps(doc))
    with server.client() as http:
        page = http.get("/api/v1/agreements/uk-fr/cosigners").json()
        metrics = http.get("/metrics").text
    row = page["periods"][0]
    assert (row["period"], row["complete"]) == (period, True)
    assert sorted(c["name"] for c in row["cosigners"]) == ["fr-w", "uk-w"]
    age = [x for x in metrics.splitlines() if x.startswith("accord_ledger_last_cosigned_age_seconds")]
    assert age and 0 <= float(age[0].split()[-1]) < 60, age
    _the_agreement_page_shows_the_cosigners(server, period)


def _the_agreement_page_shows_the_cosigners(server: AccordProcess, period: str) -> None:
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            sign_in(page, server.url, server.token)
            open_page(page, f"{server.url}/dashboard/#/agreements/uk-fr")
            table = page.get_by_role("table", name="Cosigners per closed period")
            expect(table).to_contain_text(period)
            expect(table).to_contain_text("complete")
            expect(table).to_contain_text("uk-w (uk), fr-w (fr)")
        finally:
            browser.close()


def _statement(server: AccordProcess, period: str) -> dict:  # type: ignore[type-arg]
    out = server.cli("statement", "--agreement", "uk-fr", "--period", period, check=True)
    return dict(json.loads(out.stdout))
