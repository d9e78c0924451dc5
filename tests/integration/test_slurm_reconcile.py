"""Reconciliation against real Slurm accounting: agreeing books pass, a planted usage
record that Slurm never ran is reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.adapters.clock import SystemClock
from accord.adapters.slurm.backend import SlurmBackend
from accord.adapters.sql.ledger_store import Closure, SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain import signing
from accord.domain.jobs import JobState
from accord.service.broker import Broker
from accord.service.ledger import LedgerService
from accord.service.reconcile import reconcile_period
from tests.integration.slurm_testbed import slurm_federation


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Broker, LedgerService, dict[str, SlurmBackend]]]:
    fed = slurm_federation()
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    backends = {s.id: SlurmBackend(s, tmp_path) for s in fed.sites}
    broker = Broker(fed, store, dict(backends), SystemClock())
    ledger = LedgerService(fed, SqlLedger(store), SystemClock(), signing.generate_private_key(),
                           "t", Closure)
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
    period = datetime.now(UTC).strftime("%Y-%m")
    report = reconcile_period(period, broker.federation, broker.store, ledger, backends)
    for site in ("isambard", "jeanzay"):
        ours = {r.job_id for r in broker.store.usage(site=site)}
        mine = report["sites"][site]
        assert not [d for d in mine["differences"] if d["job"] in ours], mine
        assert mine["ledger_gpu_seconds"] == pytest.approx(mine["cross_border_gpu_seconds"])
    assert report["sites"]["jeanzay"]["ledger_gpu_seconds"] > 0
    fake = replace(broker.store.usage(site="jeanzay")[0], id="jeanzay:99999999", job_id="ghost")
    broker.store.add_usage(fake)
    again = reconcile_period(period, broker.federation, broker.store, ledger, backends)
    planted = [d for d in again["sites"]["jeanzay"]["differences"] if d["job"] == "ghost"]
    assert planted and planted[0]["note"] == "Accord has usage the site did not account for"
