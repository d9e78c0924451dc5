"""The agent tables' bookkeeping of signed requests (SQLite and PostgreSQL): a nonce is taken
once, and the site's ``last_seen`` is written at most once a second by one process unless
its key changes (every signed request would otherwise write it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from accord.adapters.sql.agent_store import SEEN_EVERY_S, SqlAgents
from accord.adapters.sql.store import SqlStore
from tests.conftest import T0


@pytest.fixture
def agents(db_url: str) -> Iterator[SqlAgents]:
    store = SqlStore(db_url)
    yield SqlAgents(store)
    store.close()


def _expiry(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def test_a_nonce_is_taken_once_and_last_seen_is_written_at_most_once_a_second(agents: SqlAgents) -> None:
    assert agents.accept("bristol", "n1", _expiry(300), T0, "k1")
    assert not agents.accept("bristol", "n1", _expiry(300), T0 + timedelta(seconds=2), "k1"), "a replay"
    assert agents.accept("bristol", "n2", _expiry(300), T0 + timedelta(seconds=0.5), "k1")
    seen = agents.last_seen("bristol")
    assert seen is not None and (seen.last_seen, seen.key_id) == (T0, "k1"), "within the second: not written"
    assert agents.accept("bristol", "n3", _expiry(300), T0 + timedelta(seconds=0.6), "k2")
    seen = agents.last_seen("bristol")
    assert seen is not None and (seen.last_seen, seen.key_id) == (T0 + timedelta(seconds=0.6), "k2"), \
        "a new key is written at once"
    later = T0 + timedelta(seconds=0.6 + SEEN_EVERY_S)
    assert agents.accept("bristol", "n4", _expiry(300), later, "k2")
    seen = agents.last_seen("bristol")
    assert seen is not None and seen.last_seen == later
    assert agents.accept("paris", "n1", _expiry(300), later, "k9"), "nonces are per site"
    assert agents.last_seen("paris") is not None
