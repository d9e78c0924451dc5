"""The witness's state store on SQLite and PostgreSQL: a compare-and-swap that never rolls back."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from accord.adapters.witness_state import SqlWitnessState, state_url
from accord.domain.ledger.merkle import MerkleTree
from accord.domain.ledger.witness import EMPTY_STATE, LogState

TREE = MerkleTree.from_leaves([bytes([i]) for i in range(64)])


def at(size: int) -> LogState:
    return LogState(size, TREE.root(size))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlWitnessState]:
    state = SqlWitnessState(db_url)
    yield state
    state.close()


def test_a_new_log_is_empty_and_advances_from_empty(store: SqlWitnessState) -> None:
    assert store.get("o") == EMPTY_STATE
    assert store.advance("o", EMPTY_STATE, at(3))
    assert store.get("o") == at(3)
    assert store.get("other") == EMPTY_STATE


def test_advance_from_a_state_no_longer_held_changes_nothing(store: SqlWitnessState) -> None:
    assert store.advance("o", EMPTY_STATE, at(3))
    assert not store.advance("o", EMPTY_STATE, at(2))
    assert not store.advance("o", at(2), at(9))
    assert not store.advance("o", LogState(3, TREE.root(4)), at(9))   # right size, wrong root
    assert store.get("o") == at(3)
    assert store.advance("o", at(3), at(9))
    assert store.get("o") == at(9)


def test_concurrent_swaps_from_one_state_let_exactly_one_win(store: SqlWitnessState) -> None:
    assert store.advance("o", EMPTY_STATE, at(1))
    barrier = threading.Barrier(16)
    wins: list[int] = []

    def attempt(size: int) -> None:
        barrier.wait()
        if store.advance("o", at(1), at(size)):
            wins.append(size)

    threads = [threading.Thread(target=attempt, args=(2 + i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.get("o") == at(wins[0])


def test_state_url_takes_paths_and_urls() -> None:
    assert state_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert state_url("/tmp/w.db") == "sqlite:////tmp/w.db"
