"""The job store, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Conflict, NotFound
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, JobSpec, JobState, Placement, apply, new_job
from tests.conftest import T0

SPEC = JobSpec(name="t", gpus=2, time_limit_s=60, command=("echo", "hi"), partner="uk",
               earliest_start=T0, data_residency=("GB",))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def test_round_trip_keeps_every_field(store: SqlStore) -> None:
    job = new_job("j1", SPEC, T0, idempotency_key="k1", owner="alice")
    store.add_job(job, codec.spec_hash(SPEC))
    placed = apply(job, Event(EventKind.PLACE, T0 + timedelta(seconds=1), "why",
                              (("site", "bristol"),)), placement=Placement("bristol", "h100", None))
    store.save_job(placed)
    got = store.get_job("j1")
    assert got.spec == SPEC
    assert got.state is JobState.PLACED and got.placement == Placement("bristol", "h100", None)
    assert got.story == placed.story
    assert got.version == 1
    assert got.submitted_at == T0 and got.submitted_at.tzinfo is not None


def test_same_key_gives_the_same_job_and_a_different_spec_conflicts(store: SqlStore) -> None:
    first = store.add_job(new_job("j1", SPEC, T0, idempotency_key="k"), codec.spec_hash(SPEC))
    again = store.add_job(new_job("j2", SPEC, T0, idempotency_key="k"), codec.spec_hash(SPEC))
    assert again.id == first.id == "j1"
    other = replace(SPEC, gpus=3)
    with pytest.raises(Conflict, match="already used for job j1 with a different spec"):
        store.add_job(new_job("j3", other, T0, idempotency_key="k"), codec.spec_hash(other))
    assert [j.id for j in store.list_jobs()] == ["j1"]


def test_stale_writer_loses(store: SqlStore) -> None:
    job = store.add_job(new_job("j1", SPEC, T0), codec.spec_hash(SPEC))
    a = apply(job, Event(EventKind.CANCEL, T0, "a"))
    b = apply(job, Event(EventKind.HOLD, T0, "b"))
    store.save_job(a)
    with pytest.raises(Conflict, match="changed by someone else"):
        store.save_job(b)
    assert store.get_job("j1").state is JobState.CANCELLED


def test_failed_save_writes_nothing(store: SqlStore) -> None:
    job = store.add_job(new_job("j1", SPEC, T0), codec.spec_hash(SPEC))
    naive = datetime(2026, 1, 1)  # the store refuses naive times, after the UPDATE ran
    bad = apply(job, Event(EventKind.PLACE, naive, "x"), placement=Placement("b", "p"))
    with pytest.raises(Exception, match="naive datetime"):
        store.save_job(bad)
    got = store.get_job("j1")
    assert (got.state, got.version, len(got.story)) == (JobState.SUBMITTED, 0, 1)


def test_list_filters_and_orders_newest_first(store: SqlStore) -> None:
    for i in range(5):
        store.add_job(new_job(f"j{i}", SPEC, T0 + timedelta(seconds=i)), codec.spec_hash(SPEC))
    store.save_job(apply(store.get_job("j2"), Event(EventKind.CANCEL, T0, "x")))
    assert [j.id for j in store.list_jobs()] == ["j4", "j3", "j2", "j1", "j0"]
    assert [j.id for j in store.list_jobs([JobState.CANCELLED])] == ["j2"]
    assert [j.id for j in store.list_jobs(limit=2, before="j3")] == ["j2", "j1"]
    assert store.count_by_state() == {"submitted": 4, "cancelled": 1}


def test_jobs_are_counted_by_state_and_site(store: SqlStore) -> None:
    for i in range(3):
        store.add_job(new_job(f"j{i}", SPEC, T0), codec.spec_hash(SPEC))
    for i, site in ((0, "b"), (1, "b")):
        store.save_job(apply(store.get_job(f"j{i}"), Event(EventKind.PLACE, T0, "x"),
                             placement=Placement(site, "p")))
    assert store.count_by_state_and_site() == {("placed", "b"): 2, ("submitted", None): 1}


def test_the_work_queue_is_first_come_first_served_and_pages(store: SqlStore) -> None:
    """Oldest submission first, then id; ``due_by`` leaves out jobs not due; ``after`` pages
    on from a (submitted at, id)."""
    at = [T0 + timedelta(seconds=s) for s in (30, 10, 20, 20, 0)]
    for i, t in enumerate(at):
        store.add_job(new_job(f"j{i}", SPEC, t), codec.spec_hash(SPEC))
    later = store.get_job("j1")
    store.save_job(apply(later, Event(EventKind.NOTE, T0, "waits"), not_before=T0 + timedelta(hours=1)))
    gone = store.get_job("j4")
    store.save_job(apply(gone, Event(EventKind.CANCEL, T0, "no")))
    submitted = [JobState.SUBMITTED]
    assert [j.id for j in store.queue(submitted, 10)] == ["j1", "j2", "j3", "j0"]
    assert [j.id for j in store.queue(submitted, 10, due_by=T0)] == ["j2", "j3", "j0"]
    assert [j.id for j in store.queue(submitted, 10, due_by=T0 + timedelta(hours=1))] == \
        ["j1", "j2", "j3", "j0"]
    first = store.queue(submitted, 2)
    assert [j.id for j in first] == ["j1", "j2"]
    rest = store.queue(submitted, 2, after=(first[-1].submitted_at, first[-1].id))
    assert [j.id for j in rest] == ["j3", "j0"]
    assert store.queue(submitted, 2, after=(rest[-1].submitted_at, rest[-1].id)) == []
    assert [j.id for j in store.queue([JobState.CANCELLED, JobState.SUBMITTED], 1)] == ["j4"]
    bare = store.queue(submitted, 10, story=False)
    assert [(j.id, j.spec, j.story) for j in bare] == [(j.id, j.spec, ()) for j in store.queue(submitted, 10)]


def test_unknown_job_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="no job 'nope'"):
        store.get_job("nope")


def test_migrations_are_idempotent(db_url: str) -> None:
    SqlStore(db_url).close()
    again = SqlStore(db_url)
    assert again.list_jobs() == []
    again.close()
