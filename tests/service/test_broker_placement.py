"""The broker places with forecasts, quotas and balances: a job whose window allows it is
deferred to its cleanest start, released then and placed with fresh forecasts, and never
misses its deadline because of the deferral. Real SQLite store, fake sites and carbon."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.store import SqlStore
from accord.domain.carbon.series import IntensitySeries, series
from accord.domain.errors import Unavailable
from accord.domain.federation.model import Federation, QuotaPeriod
from accord.domain.jobs.machine import handle
from accord.domain.jobs.machine import placement_spec as _placement_spec
from accord.domain.jobs.model import EventKind, Job, JobSpec, JobState
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.jobs.stimuli import Dispatch, PlacementDecided, Rules
from accord.domain.placement.place import place
from accord.domain.placement.records import PoolLoad, Verdict
from accord.service.broker import Broker
from accord.service.placement_context import build_context, quota_left, quota_period
from tests.conftest import T0

HOUR = timedelta(hours=1)


class Site:
    """A site that takes every job and reports it pending."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        self.submitted: list[str] = []

    def loads(self) -> Mapping[str, PoolLoad]:
        return {}

    def look_up(self, job: Job) -> Dispatched | None:
        return None

    def submit(self, job: Job) -> Dispatched:
        self.submitted.append(job.id)
        return Dispatched(backend_ref=f"r-{job.id}")

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        return {r: RemoteStatus(RemoteState.PENDING) for r in refs}

    def cancel(self, ref: str) -> None:
        pass

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


class Pattern:
    """Hourly intensities by hours since T0 (the first value before T0); flat 250 elsewhere.
    GB is dirty until T0 + 2 h, clean for two hours, then dirty; FR is clean."""

    def __init__(self, fails: set[str] | None = None) -> None:
        self.fails = fails or set()
        self.asked: list[tuple[str, datetime, datetime]] = []
        self.gb = {-1: 300.0, 0: 300.0, 1: 300.0, 2: 100.0, 3: 100.0}
        self.fr: dict[int, float] = {}

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        self.asked.append((zone, start, end))
        if zone in self.fails:
            raise Unavailable(f"no carbon source answered for {zone}")
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = math.ceil((end - first) / HOUR)
        at = [(first + k * HOUR - T0) // HOUR for k in range(hours)]
        values = [self.gb.get(h, 280.0) if zone == "GB" else self.fr.get(h, 50.0) for h in at]
        return series(zone, first, 3600, values, source=f"pattern {zone}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'p.db'}")
    yield s
    s.close()


def broker(fed: Federation, store: SqlStore, carbon: Pattern | None) -> tuple[Broker, FakeClock]:
    clock = FakeClock(T0)
    sites = {"bristol": Site("bristol"), "paris": Site("paris")}
    return Broker(fed, store, sites, clock, carbon=carbon), clock


def uk_job(deadline: datetime, **more: object) -> dict[str, object]:
    return {"command": ["x"], "partner": "uk", "gpu_model": "H100", "time_limit": "1h",
            "deadline": deadline.isoformat(), **more}


def test_a_job_is_deferred_to_its_cleanest_start_then_placed(small_federation: Federation,
                                                             store: SqlStore) -> None:
    b, clock = broker(small_federation, store, Pattern())
    job, _ = b.submit(uk_job(T0 + 6 * HOUR), "u")
    report = b.step()
    deferred = store.get_job(job.id)
    assert deferred.state is JobState.DEFERRED and deferred.not_before == T0 + 2 * HOUR
    event = deferred.story[-1].event
    assert event.kind is EventKind.DEFER and event.get("site") == "bristol"
    assert event.reason.startswith("Deferred to start at 2026-11-02 11:00 UTC (in 2 h 00 min) at "
                                   "bristol/h100")
    assert "less than running now at bristol/h100" in event.reason
    assert (report.placed, report.waiting) == (0, 0)
    clock.advance(3600)
    b.step()
    assert store.get_job(job.id).state is JobState.DEFERRED, "not yet: its start is at 11:00"
    clock.advance(3600)
    b.step()
    placed = store.get_job(job.id)
    assert placed.state is JobState.DISPATCHED and placed.placement is not None
    kinds = [e.event.kind for e in placed.story]
    assert kinds[:5] == [EventKind.SUBMIT, EventKind.DEFER, EventKind.RELEASE, EventKind.PLACE,
                         EventKind.NOTE]
    assert placed.story[3].event.reason.startswith("Placed at bristol/h100 to start now")


def test_a_late_release_never_defers_past_the_deadline(small_federation: Federation,
                                                       store: SqlStore) -> None:
    """Deferred to 11:00 with a deadline of 12:00 for a 1-hour run; the dispatcher only gets
    to it at 11:10: too late to wait for anything, so it is placed at once."""
    b, clock = broker(small_federation, store, Pattern())
    job, _ = b.submit(uk_job(T0 + 3 * HOUR), "u")
    b.step()
    assert store.get_job(job.id).not_before == T0 + 2 * HOUR
    clock.advance(2 * 3600 + 600)
    b.step()
    placed = store.get_job(job.id)
    assert placed.state is JobState.DISPATCHED
    place_event = next(e.event for e in placed.story if e.event.kind is EventKind.PLACE)
    assert place_event.at == T0 + 2 * HOUR + 10 * timedelta(minutes=1)
    assert "too little time is left before its deadline" in place_event.reason
    assert [e.event.kind for e in placed.story].count(EventKind.DEFER) == 1


def test_a_deferral_that_would_miss_the_deadline_is_placed_now(small_federation: Federation,
                                                               store: SqlStore) -> None:
    """Defence in depth: whatever the decision says, releasing at its start must leave the run
    time before the deadline, or the broker places the job now."""
    b, _ = broker(small_federation, store, Pattern())
    job, _ = b.submit(uk_job(T0 + 2.5 * HOUR), "u")
    context = build_context(small_federation, Pattern(), T0)
    roomy = place(replace(job.spec, deadline=T0 + 6 * HOUR), small_federation, {}, T0, context=context)
    assert roomy.verdict is Verdict.DEFER and roomy.start == T0 + 2 * HOUR
    # 11:00 + 1 h is after the 11:30 deadline
    step = handle(job, PlacementDecided("t", T0, roomy), Rules(small_federation, reviews=False))
    placed = step.job
    assert placed.state is JobState.PLACED and placed.not_before is None
    assert placed.story[-2].event.reason.startswith("Placed at bristol/h100 to start now")
    assert "would finish after the deadline" in placed.story[-2].event.reason
    assert step.instructions == (Dispatch(job.id, "bristol", "h100"),)


def test_no_forecast_means_placing_now_with_the_reason(small_federation: Federation,
                                                       store: SqlStore) -> None:
    carbon = Pattern(fails={"GB", "FR"})
    b, _ = broker(small_federation, store, carbon)
    job, _ = b.submit(uk_job(T0 + 6 * HOUR), "u")
    b.step()
    placed = store.get_job(job.id)
    assert placed.state is JobState.DISPATCHED
    assert "No intensity forecast for GB: no carbon source answered for GB" in placed.story[1].event.reason
    assert {z for z, _, _ in carbon.asked} == {"GB"}, "a job that can only run in GB asks for GB only"


def test_one_forecast_per_zone_per_pass(small_federation: Federation, store: SqlStore) -> None:
    carbon = Pattern()
    b, _ = broker(small_federation, store, carbon)
    for _ in range(5):
        b.submit({"command": ["x"], "partner": "uk", "theme": "climate", "time_limit": "30m",
                  "deadline": (T0 + 4 * HOUR).isoformat()}, "u")
    b.step()
    assert sorted(z for z, _, _ in carbon.asked) == ["FR", "GB"]
    _, start, end = carbon.asked[0]
    assert (start, end) == (T0, T0 + 48 * HOUR)   # 48 slots of 30 min, and a day for the run


def test_the_pass_without_a_carbon_source_still_places(small_federation: Federation,
                                                       store: SqlStore) -> None:
    b, _ = broker(small_federation, store, None)
    job, _ = b.submit(uk_job(T0 + 6 * HOUR), "u")
    b.step()
    placed = store.get_job(job.id)
    assert placed.state is JobState.DISPATCHED
    assert "No intensity forecast for GB: no carbon source is configured" in placed.story[1].event.reason


# ─── the context's quota and balance inputs ────────────────────────────────────────────────


def test_quota_used_is_asked_per_agreement_direction_and_period(small_federation: Federation) -> None:
    asked: list[tuple[str, str, str, str]] = []

    def used(agreement: str, requester: str, host: str, period: str) -> Decimal:
        asked.append((agreement, requester, host, period))
        return Decimal("999.5") if requester == "uk" else Decimal(0)

    left = quota_left(small_federation.agreements, T0, used)
    assert left == {("uk-fr", "uk", "fr"): 0.5, ("uk-fr", "fr", "uk"): 1000.0}
    assert sorted(asked) == [("uk-fr", "fr", "uk", "2026"), ("uk-fr", "uk", "fr", "2026")]
    assert quota_left(small_federation.agreements, T0.replace(year=2029)) == {}, "not in force"
    a = small_federation.agreement("uk-fr")
    assert quota_period(a, QuotaPeriod.MONTH, T0) == "2026-11"


def test_a_used_up_quota_keeps_the_job_home_or_waiting(small_federation: Federation) -> None:
    ctx = build_context(small_federation, Pattern(), T0,
                        quota_used=lambda a, r, h, p: Decimal(1000) if r == "uk" else Decimal(0),
                        balance=lambda a: {"uk": Decimal(40), "fr": Decimal(-40)})
    assert ctx.quota_left[("uk-fr", "uk", "fr")] == 0.0 and ctx.balances["uk-fr"]["uk"] == 40.0
    spec = JobSpec("j", 1, 3600, ("x",), gpu_model="A100", partner="uk", theme="climate",
                   deadline=T0 + 6 * HOUR)
    d = place(spec, small_federation, {}, T0, context=ctx)
    assert d.verdict is Verdict.WAIT
    assert "agreement uk-fr has 0.00 H100-hour of uk's quota at fr left this year" in d.explain()


def test_a_deferred_job_is_reconsidered_when_the_forecast_changes(
    small_federation: Federation, store: SqlStore
) -> None:
    carbon = Pattern()
    b, clock = broker(small_federation, store, carbon)
    job, _ = b.submit(uk_job(T0 + 6 * HOUR), "u")
    b.step()
    assert store.get_job(job.id).not_before == T0 + 2 * HOUR
    clock.advance(300)
    b.step()
    quiet = store.get_job(job.id)
    assert len(quiet.story) == 2, "an unchanged decision leaves no trace"
    carbon.gb[1] = 20.0  # the next hour turns out to be the cleanest
    clock.advance(600)
    b.step()
    moved = store.get_job(job.id)
    assert moved.state is JobState.DEFERRED
    assert moved.not_before == T0 + HOUR
    kinds = [e.event.kind for e in moved.story]
    assert kinds == [EventKind.SUBMIT, EventKind.DEFER, EventKind.RELEASE, EventKind.DEFER]
    assert "reconsidered: forecasts or queues changed" in moved.story[2].event.reason


def test_a_job_released_at_its_chosen_start_runs_then_and_is_not_deferred_again(
        small_federation: Federation, store: SqlStore) -> None:
    """Deferred to 11:00; by then the forecast has moved the clean hours to 14:00. Deferring
    again would let a moving window chase ahead of the job: it runs at 11:00, saying why."""
    pattern = Pattern()
    b, clock = broker(small_federation, store, pattern)
    job, _ = b.submit(uk_job(T0 + 10 * HOUR), "u")
    b.step()
    assert store.get_job(job.id).not_before == T0 + 2 * HOUR
    pattern.gb = dict.fromkeys(range(-1, 5), 300.0) | {5: 20.0}
    clock.advance(2 * 3600)
    b.step()
    placed = store.get_job(job.id)
    assert placed.state is JobState.DISPATCHED
    kinds = [e.event.kind for e in placed.story]
    assert kinds.count(EventKind.DEFER) == 1
    release = next(e.event for e in placed.story if e.event.kind is EventKind.RELEASE)
    assert release.get("released") == "start"
    place_event = next(e.event for e in placed.story if e.event.kind is EventKind.PLACE)
    assert "a job is shifted in time once" in place_event.reason
    assert place_event.at == T0 + 2 * HOUR


def test_a_job_without_a_deadline_keeps_the_window_of_its_first_deferral(
        small_federation: Federation, store: SqlStore) -> None:
    """Abroad, a job without a deadline may start up to the agreement's default flexibility
    (6 h here) late. Deferred to Paris's clean hour, the end of that window goes in its
    story, and every later placement of the job (a reconsideration, its release) sees it as
    the job's deadline: the window cannot move ahead of the job."""
    fed = replace(small_federation, agreements=tuple(replace(a, default_flexibility_hours=6.0)
                                                     for a in small_federation.agreements))
    pattern = Pattern()
    pattern.fr = dict.fromkeys(range(-1, 48), 250.0) | {3: 10.0}
    b, clock = broker(fed, store, pattern)
    job, _ = b.submit({"command": ["x"], "partner": "uk", "time_limit": "1h", "theme": "climate"}, "u")
    b.step()
    deferred = store.get_job(job.id)
    defer = deferred.story[-1].event
    assert (deferred.state, deferred.not_before, defer.get("site")) == (JobState.DEFERRED, T0 + 3 * HOUR,
                                                                         "paris")
    assert defer.get("window_end") == (T0 + 7 * HOUR).isoformat()
    assert job.spec.deadline is None and _placement_spec(deferred).deadline == T0 + 7 * HOUR
    clock.advance(2 * 3600)   # reconsidered with the kept window: unchanged, still at 3:00
    b.step()
    assert store.get_job(job.id).not_before == T0 + 3 * HOUR
