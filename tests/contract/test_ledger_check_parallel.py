"""The ledger check shared out across worker processes (SQLite and PostgreSQL).

Split into slices, the check finds exactly what one pass finds, at the same entry,
for every kind of tampering, wherever it falls relative to the slice boundaries;
the Merkle tree it joins from the slices is the one the entries hash to; and rows
slipped in outside the sequence range (below 0, beyond any bound) are found too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from accord.adapters.clock import FakeClock
from accord.adapters.sql import ledger_check
from accord.adapters.sql.ledger_check import Parallel, check_store
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.federation.model import Federation
from accord.domain.ledger import merkle, signing
from accord.domain.ledger.entries import usage_entries
from accord.domain.ledger.usage import UsageRecord
from accord.service.ledger import LedgerService, VerifyReport
from tests.contract.ledger_tamper import TAMPER, stray, tamper

START = datetime(2026, 10, 3, 8, tzinfo=UTC)
N = 40
SLICED = Parallel(workers=3, from_size=0, align_bits=2)
"""Slices start at 0, 12 and 24: boundaries between entries 11|12 and 23|24."""
ONE_PASS = Parallel(workers=1)
EDGES = [0, 1, 11, 12, 13, 23, 24, 38, 39]


def usage(i: int) -> UsageRecord:
    start = START + timedelta(hours=i)
    return UsageRecord(f"paris:{i}", f"j{i}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                       "proj", start, start + timedelta(hours=1), 2, 7200.0, "completed", 0)


def build(url: str, federation: Federation, closed: bool = True) -> SqlStore:
    """A ledger of N entries (one per usage record), its first 30 closed as a period."""
    store = SqlStore(url)
    ledger = SqlLedger(store)
    now = START + timedelta(days=40)
    for first in range(0, N, 10):
        ledger.append([e for i in range(first, first + 10)
                       for e in usage_entries(usage(i), federation, now)])
        if closed and first + 10 == 30:
            service(store, federation, ONE_PASS).close_period("2026-10")
    return store


KEY = signing.generate_private_key()


def service(store: SqlStore, federation: Federation, parallel: Parallel) -> LedgerService:
    return LedgerService(federation, SqlLedger(store, parallel), FakeClock(START + timedelta(days=40)),
                         KEY, "t")


def both(store: SqlStore, federation: Federation) -> tuple[VerifyReport, VerifyReport]:
    return (service(store, federation, ONE_PASS).verify(),
            service(store, federation, SLICED).verify())


@pytest.fixture
def store(db_url: str, small_federation: Federation) -> Iterator[SqlStore]:
    s = build(db_url, small_federation)
    yield s
    s.close()


def test_slices_join_into_the_same_chain_and_merkle_tree(store: SqlStore) -> None:
    ledger = SqlLedger(store)
    single, sliced = check_store(store, N, ONE_PASS), check_store(store, N, SLICED)
    assert single.ok and sliced.ok
    assert (sliced.count, sliced.last_hash) == (single.count, single.last_hash) == (N, ledger.head()[1])
    leaves = [merkle.leaf_hash(b) for b in ledger.leaf_bodies(N)]
    expected = merkle.MerkleTree.build(leaves)
    assert sliced.merkle_tree().levels == single.merkle_tree().levels == expected.levels
    assert [sliced.merkle_tree().root(n) for n in range(N + 1)] == \
        [merkle.root(leaves[:n]) for n in range(N + 1)]


def test_a_good_ledger_with_a_closure_verifies_either_way(store: SqlStore,
                                                         small_federation: Federation) -> None:
    single, sliced = both(store, small_federation)
    assert single == sliced == VerifyReport(True, N, 1)


@pytest.mark.parametrize("where", [11, 12, 24])
def test_a_row_deleted_at_a_slice_boundary_is_named(store: SqlStore, small_federation: Federation,
                                                    where: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": where})
    single, sliced = both(store, small_federation)
    assert not single.ok and not sliced.ok
    assert single.first_bad_seq == sliced.first_bad_seq == where
    assert "missing" in single.problem and "missing" in sliced.problem


@pytest.mark.parametrize(("seq", "bad"), [(-1, -1), (-(2**40), -(2**40)), (2**62 + 1, N),
                                          (2**63 - 1, N)])
def test_a_row_slipped_in_outside_the_sequence_is_found(store: SqlStore,
                                                         small_federation: Federation,
                                                         seq: int, bad: int) -> None:
    with store.engine.begin() as conn:
        stray(conn, seq)
    single, sliced = both(store, small_federation)
    assert not single.ok and not sliced.ok, (single, sliced)
    assert single.first_bad_seq == sliced.first_bad_seq == bad


def test_a_verify_while_other_threads_run_spawns_its_workers(store: SqlStore) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert ledger_check._context().get_start_method() == "spawn"
        sliced = check_store(store, N, SLICED)
    finally:
        stop.set()
        other.join()
    assert sliced.ok and sliced.merkle_tree().root() == check_store(
        store, N, ONE_PASS).merkle_tree().root()
    if threading.active_count() == 1:
        assert ledger_check._context().get_start_method() == "fork"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(TAMPER), st.sampled_from(EDGES) | st.integers(0, N - 1))
def test_any_tampering_is_named_at_the_same_entry_with_or_without_slices(
    tmp_path_factory: pytest.TempPathFactory, small_federation: Federation, how: str, where: int
) -> None:
    db = tmp_path_factory.mktemp("tamper") / "l.db"
    store = build(f"sqlite:///{db}", small_federation)
    with store.engine.begin() as conn:
        tamper(conn, how, where, N)
    single, sliced = both(store, small_federation)
    store.close()
    assert not single.ok and not sliced.ok, (how, where, single, sliced)
    assert single.first_bad_seq == sliced.first_bad_seq == _expected(how, where), \
        (how, where, single, sliced)


def _expected(how: str, where: int) -> int:
    if how == "swap" and where == N - 1:
        return 0  # entries N-1 and 0 swapped: position 0 is the first wrong
    return {"insert": where + 1, "edit_head": N, "stray_below": -1, "stray_text": N}.get(how, where)
