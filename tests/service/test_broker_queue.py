"""The broker's queues under load: each pass takes at most ``BATCH`` jobs of a kind, first
come first served; a deferred job is released when due however many others are deferred;
jobs waiting for quota leave the queue to the jobs behind them until the day turns; every
deferred job is reconsidered in turn. Real SQLite store, fake sites."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.store import SqlStore
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import DeferKind, Deferral, EventKind, Job, JobState
from accord.domain.jobs.stimuli import Instruction, Reconsider, Stimulus
from accord.service import broker as broker_module
from accord.service.broker import Broker, _Pass
from tests.conftest import T0
from tests.service.test_broker import ScriptedBackend

HOUR = timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'q.db'}")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module, "BATCH", 2)


def make(fed: Federation, store: SqlStore, **kw: object) -> tuple[Broker, FakeClock]:
    clock = FakeClock(T0)
    sites = {"bristol": ScriptedBackend("bristol", 4), "paris": ScriptedBackend("paris", 8)}
    return Broker(fed, store, sites, clock, **kw), clock  # type: ignore[arg-type]


def submit(b: Broker, clock: FakeClock, doc: dict[str, object], n: int = 1) -> list[str]:
    """``n`` jobs, a second apart (so their order of submission is clear)."""
    ids = []
    for _ in range(n):
        job, _ = b.submit({"command": ["x"], "time_limit": "1h", **doc}, "u")
        ids.append(job.id)
        clock.advance(1)
    return ids


def states(store: SqlStore, ids: list[str]) -> list[JobState]:
    return [store.get_job(i).state for i in ids]


def test_a_pass_places_the_oldest_jobs_first(small_federation: Federation, store: SqlStore) -> None:
    b, clock = make(small_federation, store)
    ids = submit(b, clock, {"site": "paris"}, 5)
    b.step()
    assert states(store, ids) == [JobState.COMPLETED] * 2 + [JobState.SUBMITTED] * 3
    b.step()
    assert states(store, ids)[2:] == [JobState.COMPLETED] * 2 + [JobState.SUBMITTED]


def test_a_deferred_job_is_released_when_due_however_many_newer_ones_are_deferred(
        small_federation: Federation, store: SqlStore) -> None:
    """j0 waits for 10:00; two newer jobs, a batch of them, wait for 14:00. At 10:00 j0 is
    released and runs (the pass once looked only at the newest batch of deferred jobs, so
    j0 stayed deferred while they did)."""
    b, clock = make(small_federation, store)
    first = submit(b, clock, {"site": "paris", "earliest_start": (T0 + HOUR).isoformat()})
    later = submit(b, clock, {"site": "paris", "earliest_start": (T0 + 5 * HOUR).isoformat()}, 2)
    b.step()
    b.step()
    assert states(store, first + later) == [JobState.DEFERRED] * 3
    clock.advance((T0 + HOUR - clock.now()).total_seconds())
    b.step()
    assert states(store, first + later) == [JobState.COMPLETED, JobState.DEFERRED, JobState.DEFERRED]


def test_jobs_waiting_for_quota_leave_the_queue_to_the_jobs_behind_them(
        small_federation: Federation, store: SqlStore) -> None:
    """uk's quota in France is used up, so uk's A100 jobs (only Paris has A100s) wait; they
    are tried again at midnight, when the day turns, and until then the H100 job behind them
    is placed at home."""
    b, clock = make(small_federation, store, quota_used=lambda *_: Decimal(10_000))
    waiting = submit(b, clock, {"partner": "uk", "theme": "climate", "gpu_model": "A100"}, 3)
    home = submit(b, clock, {"partner": "uk", "theme": "climate", "gpu_model": "H100"})
    b.step()
    assert states(store, waiting + home) == [JobState.SUBMITTED] * 4
    b.step()
    assert states(store, waiting + home) == [JobState.SUBMITTED] * 3 + [JobState.COMPLETED]
    midnight = datetime.combine((T0 + timedelta(days=1)).date(), datetime.min.time(), UTC)
    for job in (store.get_job(i) for i in waiting):
        assert job.not_before == midnight
        note = job.story[-1].event
        assert note.kind is EventKind.NOTE and "quota" in note.reason
        assert note.reason.endswith(f"Tried again at {midnight:%Y-%m-%d} 00:00 UTC, when the day turns.")
    notes = len(store.get_job(waiting[0]).story)
    clock.advance((midnight - timedelta(minutes=1) - clock.now()).total_seconds())
    b.step()
    assert len(store.get_job(waiting[0]).story) == notes, "not tried before midnight"
    clock.advance(60)
    b.step()
    assert len(store.get_job(waiting[0]).story) == notes + 1, "tried again when the day turned"
    assert store.get_job(waiting[0]).not_before == midnight + timedelta(days=1)


def test_every_deferred_job_is_reconsidered_in_turn(small_federation: Federation, store: SqlStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Five jobs placement deferred, all due to be looked at again, two a pass: the longest
    due first, so in three passes each is looked at once (and then not for REPLAN_S)."""
    b, clock = make(small_federation, store)
    ids = submit(b, clock, {"site": "paris"}, 5)
    for k, job_id in enumerate(ids):
        job = store.get_job(job_id)
        store.save_job(replace(job, state=JobState.DEFERRED, not_before=T0 + 5 * HOUR,
                               deferral=Deferral(DeferKind.PLACEMENT, T0 + 5 * HOUR, "paris",
                                                 T0 + (5 - k) * timedelta(seconds=1))))
    seen: list[str] = []
    real = b._execute

    def spy(job: Job, i: Instruction, p: _Pass) -> Stimulus | None:
        if isinstance(i, Reconsider):
            seen.append(job.id)
        return real(job, i, p)

    monkeypatch.setattr(b, "_execute", spy)
    passes = []
    for _ in range(3):
        b.step()
        passes.append(list(seen))
    assert [len(x) for x in passes] == [2, 4, 5]
    assert passes[0] == [ids[4], ids[3]], "the longest due first"
    assert sorted(seen) == sorted(ids)


def test_a_job_waiting_for_its_earliest_start_is_not_reconsidered(small_federation: Federation,
                                                                  store: SqlStore) -> None:
    """Reconsideration once released it every 10 minutes and deferred it again at once:
    two story events per check for nothing."""
    b, clock = make(small_federation, store)
    [job] = submit(b, clock, {"site": "paris", "earliest_start": (T0 + 5 * HOUR).isoformat()})
    for _ in range(4):
        b.step()
        clock.advance(601)
    kinds = [e.event.kind for e in store.get_job(job).story]
    assert kinds == [EventKind.SUBMIT, EventKind.DEFER]


def test_allocation_checks_count_every_active_job(small_federation: Federation, store: SqlStore) -> None:
    """The use not yet in the ledger is read from every placed, dispatched or running job,
    a page at a time (it once stopped at the newest 10 × BATCH)."""
    b, clock = make(small_federation, store)
    ids = submit(b, clock, {"site": "paris"}, 45)
    for _ in range(23):
        b.step()
    assert states(store, ids) == [JobState.COMPLETED] * 45
    for job in (store.get_job(i) for i in ids):   # back to running, as if the sites had not ended them
        store.save_job(replace(job, state=JobState.RUNNING))

    class Counting:
        def committed(self, jobs: list[object], at: datetime) -> dict[tuple[str, str, str], float]:
            self.seen = len(jobs)
            return {}

    b.gate = gate = Counting()  # type: ignore[assignment]
    b._committed(_Pass(clock.now()))
    assert gate.seen == 45
