"""The dispatch lease and its fence, on SQLite and PostgreSQL alike: who may do the single
work of a hub, takeover only after expiry by the database's clock, a new epoch per holder,
and writes refused once the lease is another's (docs/design/replicas.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from accord.adapters.sql import identity
from accord.adapters.sql.lease import SqlLease
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Conflict, LeaseLost
from accord.domain.jobs import codec
from accord.domain.jobs.model import JobSpec, new_job
from tests.conftest import T0

SPEC = JobSpec(name="t", gpus=1, time_limit_s=60, command=("true",), partner="uk", earliest_start=T0)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def test_only_one_holder_until_the_lease_expires(store: SqlStore) -> None:
    a, b = SqlLease(store, "dispatch"), SqlLease(store, "dispatch")
    first = a.acquire("a", ttl_s=0.6)
    assert first is not None
    assert b.acquire("b", ttl_s=0.6) is None
    assert a.renew("a", first, ttl_s=0.6)
    time.sleep(0.8)
    second = b.acquire("b", ttl_s=5)
    assert second == first + 1
    assert not a.renew("a", first, ttl_s=5), "the old holder must learn it lost the lease"
    held = b.holder()
    assert held is not None and held[:2] == ("b", second) and 4 < held[2] <= 5


def test_a_released_lease_is_taken_at_once(store: SqlStore) -> None:
    a, b = SqlLease(store, "dispatch"), SqlLease(store, "dispatch")
    epoch = a.acquire("a", ttl_s=60)
    assert epoch is not None
    a.release("a", epoch)
    assert b.acquire("b", ttl_s=60) == epoch + 1


def test_leases_are_independent_by_name(store: SqlStore) -> None:
    assert SqlLease(store, "dispatch").acquire("a", 60) == 1
    assert SqlLease(store, "witness").acquire("b", 60) == 1


def test_a_fenced_write_is_refused_after_a_takeover(store: SqlStore) -> None:
    a, b = SqlLease(store, "dispatch"), SqlLease(store, "dispatch")
    epoch = a.acquire("a", ttl_s=0.3)
    assert epoch is not None
    with a.fenced("a", epoch):
        store.add_job(new_job("j1", SPEC, T0), codec.spec_hash(SPEC))   # still ours: written
    time.sleep(0.5)
    assert b.acquire("b", ttl_s=60) is not None
    with a.fenced("a", epoch), pytest.raises(LeaseLost, match="held by b"):
        store.add_job(new_job("j2", SPEC, T0), codec.spec_hash(SPEC))
    assert [j.id for j in store.list_jobs()] == ["j1"]
    store.add_job(new_job("j3", SPEC, T0), codec.spec_hash(SPEC))    # unfenced (the API): fine


def test_a_fenced_write_needs_more_than_the_margin_left(store: SqlStore) -> None:
    lease = SqlLease(store, "dispatch", margin_s=30)
    epoch = lease.acquire("a", ttl_s=10)
    assert epoch is not None
    with lease.fenced("a", epoch), pytest.raises(LeaseLost, match="under the 30"):
        store.add_job(new_job("j1", SPEC, T0), codec.spec_hash(SPEC))
    assert store.list_jobs() == []


def test_the_fence_only_binds_the_thread_that_holds_it(store: SqlStore) -> None:
    lease = SqlLease(store, "dispatch")
    errors: list[BaseException] = []

    def api_write() -> None:
        try:
            store.add_job(new_job("api", SPEC, T0), codec.spec_hash(SPEC))
        except BaseException as exc:
            errors.append(exc)

    with lease.fenced("nobody", 1):   # a lease never taken: this thread may not write
        t = threading.Thread(target=api_write)
        t.start()
        t.join()
        with pytest.raises(LeaseLost, match="held by nobody"):
            store.get_job("api")
    assert errors == [] and store.get_job("api").id == "api"


def test_identity_is_recorded_once_and_a_different_replica_refused(store: SqlStore) -> None:
    facts = {"ledger signing key": ("k1", "use the same key"), "admin token (SHA-256)": ("t1", "same")}
    identity.claim(store, facts)
    identity.claim(store, facts)             # the same replica again (a restart): fine
    other = {**facts, "ledger signing key": ("k2", "give every replica the same key file")}
    with pytest.raises(Conflict) as exc:
        identity.claim(store, other)
    assert "ledger signing key: this replica has 'k2', the hub's is 'k1'" in str(exc.value)
    assert "give every replica the same key file" in str(exc.value)
    assert "admin token" not in str(exc.value)
    identity.claim(store, other, adopt=True)    # after rotating on purpose
    identity.claim(store, other)
