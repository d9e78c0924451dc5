"""Write batches (the dispatcher's): one transaction, one savepoint a write, on SQLite and
PostgreSQL alike (see ``accord.adapters.sql.batching``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from accord.adapters.sql.agent_store import SqlAgents
from accord.adapters.sql.lease import SqlLease
from accord.adapters.sql.store import SqlStore
from accord.domain.agent.protocol import Order, OrderKind, order_id
from accord.domain.errors import Conflict, LeaseLost
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, Job, JobSpec, JobState, apply, new_job
from tests.conftest import T0

SPEC = JobSpec(name="t", gpus=1, time_limit_s=60, command=("true",), partner="uk")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def _add(store: SqlStore, job_id: str) -> Job:
    return store.add_job(new_job(job_id, SPEC, T0), codec.spec_hash(SPEC))


def _cancel(job: Job, why: str = "stop") -> Job:
    return apply(job, Event(EventKind.CANCEL, T0 + timedelta(seconds=1), why))


def _seen_elsewhere(store: SqlStore, job_id: str) -> JobState:
    """The job's state as another thread (another connection) reads it."""
    out: list[JobState] = []
    t = threading.Thread(target=lambda: out.append(store.get_job(job_id).state))
    t.start()
    t.join(30)
    return out[0]


def test_nothing_is_visible_to_others_before_the_flush_and_everything_after(store: SqlStore) -> None:
    jobs = [_add(store, f"j{i}") for i in range(3)]
    with store.batch() as batch:
        for job in jobs:
            store.save_job(_cancel(job))
        assert store.get_job("j0").state is JobState.CANCELLED          # this thread sees its writes
        assert _seen_elsewhere(store, "j0") is JobState.SUBMITTED        # others do not, yet
        batch.flush()
        assert _seen_elsewhere(store, "j0") is JobState.CANCELLED
    assert [store.get_job(j.id).state for j in jobs] == [JobState.CANCELLED] * 3


def test_a_failed_write_rolls_back_alone(store: SqlStore) -> None:
    a, b = _add(store, "a"), _add(store, "b")
    with store.batch():
        store.save_job(_cancel(a))
        with pytest.raises(Conflict):
            store.save_job(_cancel(a))            # stale: read before the first save
        store.save_job(_cancel(b))
    assert store.get_job("a").state is JobState.CANCELLED and store.get_job("a").version == 1
    assert store.get_job("b").state is JobState.CANCELLED
    assert len(store.get_job("a").story) == 2


def test_an_exception_leaving_the_batch_drops_what_it_held_since_the_last_flush(store: SqlStore) -> None:
    a, b = _add(store, "a"), _add(store, "b")
    def crash() -> None:
        with store.batch() as batch:
            store.save_job(_cancel(a))
            batch.flush()
            store.save_job(_cancel(b))
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash()
    assert store.get_job("a").state is JobState.CANCELLED
    assert store.get_job("b").state is JobState.SUBMITTED and store.get_job("b").version == 0


def test_hooks_run_only_once_their_writes_are_committed(store: SqlStore) -> None:
    agents = SqlAgents(store)
    rung: list[int] = []
    order = Order(order_id("r1", OrderKind.DISPATCH), "bristol", OrderKind.DISPATCH, "r1", "j1", T0, {"x": 1})
    with store.batch() as batch:
        before = agents.generation("bristol")
        agents.add_order(order)
        store.after_commit(lambda: rung.append(1))
        assert agents.generation("bristol") == before and not rung   # not committed: no bell
        batch.flush()
        assert agents.generation("bristol") == before + 1 and rung == [1]
    dropped = Order(order_id("r2", OrderKind.DISPATCH), "bristol", OrderKind.DISPATCH, "r2", "j2", T0, {})
    def crash() -> None:
        with store.batch():
            agents.add_order(dropped)
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash()
    assert agents.generation("bristol") == before + 1                 # the dropped order rang nothing
    assert [o.id for o in agents.pending("bristol", 10)] == [order.id]


def test_batches_are_per_thread_and_nested_ones_join_the_outer(store: SqlStore) -> None:
    _add(store, "a")
    with store.batch() as outer:
        with store.batch() as inner:
            assert inner is outer
            store.save_job(_cancel(store.get_job("a")))
        assert _seen_elsewhere(store, "a") is JobState.SUBMITTED   # the inner block did not commit
    assert store.get_job("a").state is JobState.CANCELLED


def test_a_batch_under_a_lease_it_does_not_hold_writes_nothing(store: SqlStore) -> None:
    lease = SqlLease(store, "dispatch")
    epoch = lease.acquire("other", ttl_s=30)
    assert epoch is not None
    a = _add(store, "a")
    with pytest.raises(LeaseLost), lease.fenced("me", epoch), store.batch():
        store.save_job(_cancel(a))
    assert store.get_job("a").state is JobState.SUBMITTED


def test_a_batch_fenced_by_its_own_lease_commits(store: SqlStore) -> None:
    lease = SqlLease(store, "dispatch")
    epoch = lease.acquire("me", ttl_s=30)
    assert epoch is not None
    a = _add(store, "a")
    with lease.fenced("me", epoch), store.batch():
        store.save_job(_cancel(a))
    assert store.get_job("a").state is JobState.CANCELLED
