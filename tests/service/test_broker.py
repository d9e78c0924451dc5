"""The broker's dispatcher pass, with a real store and fake backends in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Unavailable
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job, JobState, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.placement.records import PoolLoad
from accord.service.broker import Broker
from tests.conftest import T0


class ScriptedBackend:
    """A site whose jobs finish on the next poll; ``broken`` job names blow up on submit."""

    def __init__(self, site_id: str, gpus: int, broken: tuple[str, ...] = ()) -> None:
        self.site_id = site_id
        self.gpus = gpus
        self.broken = broken
        self.down = False
        self.submitted: list[str] = []
        self.lookups = 0

    def loads(self) -> Mapping[str, PoolLoad]:
        if self.down:
            raise Unavailable("slurmctld not answering")
        return {}

    def look_up(self, job: Job) -> Dispatched | None:
        self.lookups += 1
        if self.down:
            raise Unavailable("slurmctld not answering")
        return Dispatched(backend_ref=f"r-{job.id}", adopted=True) if job.id in self.submitted else None

    def submit(self, job: Job) -> Dispatched:
        if self.down:
            raise Unavailable("slurmctld not answering")
        if job.spec.name in self.broken:
            raise RuntimeError("disk full")
        self.submitted.append(job.id)
        return Dispatched(backend_ref=f"r-{job.id}")

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        if self.down:
            raise Unavailable("slurmctld not answering")
        out = Outcome(0, T0, T0.replace(minute=10), 600.0, "", 1)
        return {r: RemoteStatus(RemoteState.COMPLETED, T0, out) for r in refs}

    def cancel(self, ref: str) -> None:
        pass

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'b.db'}")
    yield s
    s.close()


def _broker(fed: Federation, store: SqlStore, **backends: ScriptedBackend) -> Broker:
    return Broker(fed, store, backends, FakeClock(T0))


def test_one_failing_job_does_not_stop_the_others(small_federation: Federation,
                                                   store: SqlStore) -> None:
    uk = ScriptedBackend("bristol", 4, broken=("bad",))
    broker = _broker(small_federation, store, bristol=uk, paris=ScriptedBackend("paris", 8))
    bad, _ = broker.submit({"command": ["x"], "name": "bad", "site": "bristol"}, "u")
    good, _ = broker.submit({"command": ["x"], "name": "good", "site": "bristol"}, "u")
    broker.step()
    broker.step()
    assert store.get_job(good.id).state is JobState.COMPLETED
    stuck = store.get_job(bad.id)
    assert stuck.state is JobState.PLACED
    assert "internal error, retrying: RuntimeError: disk full" in stuck.reason


def test_site_down_requeues_and_waits_with_the_reason_then_flows(
    small_federation: Federation, store: SqlStore
) -> None:
    uk = ScriptedBackend("bristol", 4)
    broker = _broker(small_federation, store, bristol=uk, paris=ScriptedBackend("paris", 8))
    uk.down = True
    job, _ = broker.submit({"command": ["x"], "site": "bristol"}, "u")
    broker.step()
    waiting = store.get_job(job.id)
    assert waiting.state is JobState.SUBMITTED
    assert "slurmctld not answering" in waiting.reason
    for _ in range(3):
        broker.step()
    assert len(store.get_job(job.id).story) == len(waiting.story), "the same note was repeated"
    uk.down = False
    broker.step()
    broker.step()
    assert store.get_job(job.id).state is JobState.COMPLETED


def test_usage_is_recorded_once_even_if_polled_again(small_federation: Federation,
                                                      store: SqlStore) -> None:
    uk = ScriptedBackend("bristol", 4)
    broker = _broker(small_federation, store, bristol=uk, paris=ScriptedBackend("paris", 8))
    job, _ = broker.submit({"command": ["x"], "site": "bristol", "gpus": 1}, "u")
    broker.step()
    broker.step()
    done = store.get_job(job.id)
    [record] = store.usage(job_id=job.id)
    assert (record.gpu_seconds, record.site, record.gpu_model) == (600.0, "bristol", "H100")
    from accord.domain.ledger.usage import usage_from_job

    again = usage_from_job(done, small_federation)
    assert again is not None
    assert store.add_usage(again) is False
    assert len(store.usage()) == 1


def test_write_ahead_intent_means_look_up_before_resubmitting(
    small_federation: Federation, store: SqlStore
) -> None:
    uk = ScriptedBackend("bristol", 4)
    broker = _broker(small_federation, store, bristol=uk, paris=ScriptedBackend("paris", 8))
    job, _ = broker.submit({"command": ["x"], "site": "bristol"}, "u")
    broker.step()
    assert uk.lookups == 0, "a first dispatch must not pay for a look-up"
    kinds = [(e.event.kind.value, e.event.reason) for e in store.get_job(job.id).story]
    assert kinds[2] == ("note", "dispatching to bristol")
    # A job whose intent was recorded but whose dispatch was not (a crash in between):
    from accord.domain.jobs.model import DispatchStatus, Event, EventKind, Placement, apply

    crashed, _ = broker.submit({"command": ["x"], "site": "bristol", "name": "c"}, "u")
    crashed = store.save_job(apply(crashed, Event(EventKind.PLACE, T0, "p"),
                                   placement=Placement("bristol", "h100")))
    crashed = store.save_job(apply(crashed, Event(EventKind.NOTE, T0, "dispatching to bristol",
                                                  (("intent", "dispatch"),)), dispatch=DispatchStatus.SENT))
    broker.step()
    assert uk.lookups == 1
    assert store.get_job(crashed.id).state is JobState.COMPLETED


def test_a_dispatch_in_doubt_stays_at_its_site_and_is_looked_up(
    small_federation: Federation, store: SqlStore
) -> None:
    from accord.domain.errors import InDoubt

    class TimesOut(ScriptedBackend):
        def submit(self, job: Job) -> Dispatched:
            if not self.submitted:
                self.submitted.append("timed-out")
                raise InDoubt("sbatch did not answer within 30 s")
            return super().submit(job)

    uk = TimesOut("bristol", 4)
    broker = _broker(small_federation, store, bristol=uk, paris=ScriptedBackend("paris", 8))
    job, _ = broker.submit({"command": ["x"], "partner": "uk"}, "u")
    broker.step()
    doubtful = store.get_job(job.id)
    assert doubtful.state is JobState.PLACED
    assert doubtful.placement is not None
    assert doubtful.placement.site == "bristol"
    assert "in doubt" in doubtful.reason
    broker.step()
    assert uk.lookups == 1, "the retry must look the job up first"
