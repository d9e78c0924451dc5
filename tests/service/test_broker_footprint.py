"""Energy and emissions are worked out when a job ends, with a real store, a fake site and
a fake carbon source; carbon data that cannot be had never holds back the job's end."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.store import SqlStore
from accord.domain.carbon.series import IntensitySeries, series
from accord.domain.errors import Unavailable
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job, JobState, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.ledger.usage import UsageRecord
from accord.domain.placement.records import PoolLoad
from accord.ports import CarbonSource
from accord.service.broker import Broker
from tests.conftest import T0

HOUR = timedelta(hours=1)
NOW = T0 + 3 * HOUR  # the broker's clock: every run below has ended by then


class EndingBackend:
    """A site whose jobs end on the first poll with the outcome it is given."""

    def __init__(self, site_id: str, outcome: Outcome | None,
                 state: RemoteState = RemoteState.COMPLETED) -> None:
        self.site_id = site_id
        self.outcome = outcome
        self.state = state

    def loads(self) -> Mapping[str, PoolLoad]:
        return {}

    def look_up(self, job: Job) -> Dispatched | None:
        return None

    def submit(self, job: Job) -> Dispatched:
        return Dispatched(backend_ref=f"r-{job.id}")

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        started = self.outcome.started_at if self.outcome else None
        return {r: RemoteStatus(self.state, started, self.outcome) for r in refs}

    def cancel(self, ref: str) -> None:
        pass

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


class FlatCarbon:
    """A constant intensity for every zone, hourly; or an error, when ``fails`` is set."""

    def __init__(self, g_per_kwh: float = 200.0, fails: Exception | None = None) -> None:
        self.g_per_kwh = g_per_kwh
        self.fails = fails
        self.asked: list[tuple[str, datetime, datetime]] = []

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        self.asked.append((zone, start, end))
        if self.fails is not None:
            raise self.fails
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = int((end - first) / HOUR) + 1
        return series(zone, first, 3600, [self.g_per_kwh] * hours, source="flat test data")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'f.db'}")
    yield s
    s.close()


def run_one(fed: Federation, store: SqlStore, outcome: Outcome | None,
            carbon: CarbonSource | None, state: RemoteState = RemoteState.COMPLETED,
            ) -> tuple[Job, list[UsageRecord]]:
    """Submit a 2-GPU job to bristol (GB, PUE 1.1, H100 at 700 W) and let it end."""
    backend = EndingBackend("bristol", outcome, state)
    broker = Broker(fed, store, {"bristol": backend}, FakeClock(NOW), carbon=carbon)
    job, _ = broker.submit({"command": ["x"], "site": "bristol", "gpus": 2}, "u")
    report = broker.step()
    assert report.finished == 1, "the job ends in the pass that sees it end"
    return store.get_job(job.id), store.usage(job_id=job.id)


def past_lookups(carbon: FlatCarbon) -> list[tuple[str, datetime, datetime]]:
    """The lookups of spans already over: a finished run's (placement looks ahead)."""
    return [a for a in carbon.asked if a[2] <= NOW]


def ran(hours: float = 1.0, energy_j: float | None = None) -> Outcome:
    return Outcome(0, T0, T0 + hours * HOUR, 2 * hours * 3600, "", 2, energy_j)


def test_modelled_energy_and_emissions_over_the_actual_run(small_federation: Federation,
                                                           store: SqlStore) -> None:
    carbon = FlatCarbon(200.0)
    job, [r] = run_one(small_federation, store, ran(1.0), carbon)
    assert job.state is JobState.COMPLETED
    assert past_lookups(carbon) == [("GB", T0, T0 + HOUR)]
    assert r.energy_kwh == pytest.approx(2.805, rel=1e-12)  # 2 x 1,275 W x 1 h x 1.1
    assert r.emissions_g == pytest.approx(561.0, rel=1e-12)  # x 200 g/kWh
    assert r.intensity_source == "flat test data"


def test_measured_energy_is_used_when_the_site_reports_it(small_federation: Federation,
                                                          store: SqlStore) -> None:
    _, [r] = run_one(small_federation, store, ran(1.0, energy_j=7.2e6), FlatCarbon(250.0))
    assert r.energy_j == 7.2e6
    assert r.energy_kwh == pytest.approx(2.2, rel=1e-12)  # 2 kWh x PUE 1.1, no host share
    assert r.emissions_g == pytest.approx(550.0, rel=1e-12)


def test_unavailable_carbon_keeps_energy_and_completes_the_job(small_federation: Federation,
                                                               store: SqlStore) -> None:
    down = FlatCarbon(fails=Unavailable("no carbon source answered for GB (tried gb-api)"))
    job, [r] = run_one(small_federation, store, ran(1.0), down)
    assert job.state is JobState.COMPLETED
    assert r.energy_kwh == pytest.approx(2.805, rel=1e-12)
    assert r.emissions_g is None
    assert r.intensity_source == "unavailable: no carbon source answered for GB (tried gb-api)"


def test_a_broken_carbon_source_does_not_stop_the_job_either(small_federation: Federation,
                                                             store: SqlStore) -> None:
    job, [r] = run_one(small_federation, store, ran(0.5), FlatCarbon(fails=RuntimeError("boom")))
    assert job.state is JobState.COMPLETED
    assert r.energy_kwh == pytest.approx(2.805 / 2, rel=1e-12)
    assert (r.emissions_g, r.intensity_source) == (None, "unavailable: boom")


def test_no_carbon_source_at_all(small_federation: Federation, store: SqlStore) -> None:
    job, [r] = run_one(small_federation, store, ran(2.0), None)
    assert job.state is JobState.COMPLETED
    assert r.energy_kwh == pytest.approx(2 * 2.805, rel=1e-12)
    assert (r.emissions_g, r.intensity_source) == (
        None, "unavailable: the broker has no carbon source")


def test_a_job_that_never_started_has_no_usage_and_asks_for_no_carbon(
    small_federation: Federation, store: SqlStore,
) -> None:
    carbon = FlatCarbon()
    job, records = run_one(small_federation, store, None, carbon, RemoteState.LOST)
    assert job.state is JobState.FAILED
    assert records == []
    assert past_lookups(carbon) == []
