"""Nothing the broker keeps in memory matters: a scripted run with a broker restarted before
every pass and every request gives exactly the stories (events, reasons, times, stimulus ids)
and sub-states of a run with one broker throughout. Real SQLite store, scripted sites."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Busy, InDoubt, Unavailable
from accord.domain.federation.model import Federation
from accord.domain.jobs import codec
from accord.domain.jobs.model import Job, JobState, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.placement.records import PoolLoad
from accord.service.broker import Broker
from tests.conftest import T0

STEP = timedelta(minutes=5)


class ScriptedSite:
    """A site that outlives the broker: it takes jobs (refusing the named ones once, or
    taking them without answering once), runs each for one poll, and is down while
    ``down(now)`` says so."""

    def __init__(self, site_id: str, clock: FakeClock, down: Callable[[datetime], bool],
                 busy_once: frozenset[str] = frozenset(), doubt_once: frozenset[str] = frozenset()) -> None:
        self.site_id, self.clock, self.down = site_id, clock, down
        self.busy_once, self.doubt_once = set(busy_once), set(doubt_once)
        self.runs: dict[str, str] = {}        # job id -> ref
        self.polled: dict[str, int] = {}      # ref -> polls seen
        self.cancelled: set[str] = set()
        self.submits = 0

    def _answer(self) -> None:
        if self.down(self.clock.now()):
            raise Unavailable(f"{self.site_id} does not answer")

    def loads(self) -> Mapping[str, PoolLoad]:
        self._answer()
        return {}

    def look_up(self, job: Job) -> Dispatched | None:
        self._answer()
        ref = self.runs.get(job.id)
        return None if ref is None else Dispatched(ref, adopted=True)

    def submit(self, job: Job) -> Dispatched:
        self._answer()
        if job.spec.name in self.busy_once:
            self.busy_once.discard(job.spec.name)
            raise Busy("no free GPU")
        self.submits += 1
        ref = self.runs.setdefault(job.id, f"{self.site_id}-{len(self.runs) + 1}")
        if job.spec.name in self.doubt_once:
            self.doubt_once.discard(job.spec.name)
            raise InDoubt("the answer was lost")
        return Dispatched(ref)

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        self._answer()
        out = {}
        now = self.clock.now()
        for ref in refs:
            seen = self.polled[ref] = self.polled.get(ref, 0) + 1
            if ref in self.cancelled:
                out[ref] = RemoteStatus(RemoteState.CANCELLED, now - STEP,
                                        Outcome(None, now - STEP, now, 300.0))
            elif seen == 1:
                out[ref] = RemoteStatus(RemoteState.RUNNING, now - STEP / 2)
            else:
                out[ref] = RemoteStatus(RemoteState.COMPLETED, now - 2 * STEP,
                                        Outcome(0, now - 2 * STEP, now, 600.0, "", 1))
        return out

    def cancel(self, ref: str) -> None:
        self._answer()
        self.cancelled.add(ref)

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


JOBS: list[dict[str, object]] = [
    {"name": "plain", "site": "bristol"},
    {"name": "later", "site": "bristol", "earliest_start": (T0 + 25 * timedelta(minutes=1)).isoformat()},
    {"name": "busy", "site": "bristol"},
    {"name": "doubt", "site": "paris"},
    {"name": "cancelme", "site": "paris", "time_limit": "2h"},
    {"name": "outage", "site": "paris", "earliest_start": (T0 + 3 * STEP).isoformat()},
]


def scripted_run(fed: Federation, path: Path, restart: bool) -> list[dict[str, Any]]:
    """The scripted run; every job as the API shows it at the end."""
    clock = FakeClock(T0)
    paris_down = lambda t: T0 + 4 * STEP <= t < T0 + 7 * STEP  # noqa: E731
    sites = {"bristol": ScriptedSite("bristol", clock, lambda t: False, busy_once=frozenset({"busy"})),
             "paris": ScriptedSite("paris", clock, paris_down, doubt_once=frozenset({"doubt"}))}
    counter = iter(range(1000))
    store = SqlStore(f"sqlite:///{path}")

    def broker() -> Broker:
        return Broker(fed, store, sites, clock, ids=lambda at: f"j{next(counter):03d}")

    one = broker()
    ids = []
    for doc in JOBS:
        job, _ = (broker() if restart else one).submit({"command": ["x"], **doc}, "ada")
        ids.append(job.id)
    try:
        for k in range(14):
            (broker() if restart else one).step()
            if k == 0:   # the cancel, once the job runs at paris
                (broker() if restart else one).cancel(ids[4], "not needed")
            clock.advance(STEP.total_seconds())
        return [codec.encode_job(store.get_job(i)) for i in ids]
    finally:
        store.close()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "once.db", tmp_path / "restarted.db"


def test_a_broker_restarted_at_every_step_tells_the_same_stories(small_federation: Federation,
                                                                 paths: tuple[Path, Path]) -> None:
    once = scripted_run(small_federation, paths[0], restart=False)
    again = scripted_run(small_federation, paths[1], restart=True)
    states = {j["spec"]["name"]: j["state"] for j in once}
    assert states == {"plain": "completed", "later": "completed", "busy": "completed",
                      "doubt": "completed", "cancelme": "cancelled", "outage": "completed"}
    reasons = {j["spec"]["name"]: [e["reason"] for e in j["story"]] for j in once}
    assert "waiting for capacity: no free GPU" in reasons["busy"]
    assert "dispatch to paris in doubt, will check: the answer was lost" in reasons["doubt"]
    assert "adopted the submission found at paris" in reasons["doubt"]
    assert "cancel requested: not needed" in reasons["cancelme"]
    assert "cannot reach site paris: paris does not answer" in reasons["outage"]
    assert all(e["stimulus"] for j in once for e in j["story"])
    assert once == again
    assert [j["state"] for j in again].count(JobState.COMPLETED.value) == 5
