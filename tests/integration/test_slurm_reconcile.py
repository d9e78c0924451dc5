"""Reconciliation against real Slurm accounting: agreeing books pass, a planted usage
record that Slurm never ran is reported. The periods checked are the months the jobs
actually ran in, so a run across a month boundary is reconciled on both sides of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.adapters.clock import SystemClock
from accord.adapters.slurm.backend import SlurmBackend
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.jobs.model import JobState
from accord.domain.ledger import signing
from accord.service.broker import Broker
from accord.service.ledger import LedgerService
from accord.service.reconcile import reconcile_period
from tests.integration.slurm_testbed import SERIAL, slurm_federation

pytestmark = SERIAL


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Broker, LedgerService, dict[str, SlurmBackend]]]:
    fed = slurm_federation()
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    backends = {s.id: SlurmBackend(s, tmp_path) for s in fed.sites}
    broker = Broker(fed, store, dict(backends), SystemClock())
    ledger = LedgerService(fed, SqlLedger(store), SystemClock(), signing.generate_private_key(),
                           "t")
    yield broker, ledger, backends
    store.close()


def test_ledger_usage_and_sacct_agree_then_a_planted_record_is_reported(
    world: tuple[Broker, LedgerService, dict[str, SlurmBackend]]
) -> None:
    broker, ledger, backends = world
    jobs = [broker.submit({"command": ["sleep", "2"], "gpus": g, "partner": p, "site": s}, "u")[0]
            for g, p, s in ((2, "uk", "jeanzay"), (1, "fr", "isambard"), (3, "uk", "isambard"))]
    deadline = time.monotonic() + 120
    while any(broker.store.get_job(j.id).state is not JobState.COMPLETED for j in jobs):
        assert time.monotonic() < deadline, [broker.store.get_job(j.id).state for j in jobs]
        broker.step()
        time.sleep(0.5)
    ledger.post_pending()
    records = [r for r in broker.store.usage() if r.job_id in {j.id for j in jobs}]
    assert {r.job_id for r in records} == {j.id for j in jobs}
    # The months the jobs ran in, from their own run times (a job may straddle a month
    # boundary, and the test may begin in another month): each one is reconciled.
    periods = sorted({month(t) for r in records for t in (r.start, r.end)})
    reports = {p: reconcile_period(p, broker.federation, broker.store, ledger, backends)
               for p in periods}
    for period, report in reports.items():
        for site in ("isambard", "jeanzay"):
            ours = {r.job_id for r in broker.store.usage(site=site)}
            mine = report["sites"][site]
            assert not [d for d in mine["differences"] if d["job"] in ours], (period, mine)
            assert mine["ledger_gpu_seconds"] == pytest.approx(mine["cross_border_gpu_seconds"])
    # the one job abroad (uk's at jeanzay) is in the ledger, all of it over those months
    abroad = sum(r.gpu_seconds for r in records if r.site == "jeanzay")
    assert abroad > 0
    assert sum(r["sites"]["jeanzay"]["ledger_gpu_seconds"] for r in reports.values()) == \
        pytest.approx(abroad, abs=0.01)
    fake = replace(broker.store.usage(site="jeanzay")[0], id="jeanzay:99999999", job_id="ghost")
    broker.store.add_usage(fake)
    again = reconcile_period(month(fake.start), broker.federation, broker.store, ledger, backends)
    planted = [d for d in again["sites"]["jeanzay"]["differences"] if d["job"] == "ghost"]
    assert planted and planted[0]["note"] == "Accord has usage the site did not account for"


def month(t: datetime) -> str:
    """The ``YYYY-MM`` (UTC) period that instant ``t`` falls in."""
    return t.astimezone(UTC).strftime("%Y-%m")
