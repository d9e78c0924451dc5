"""The audit writer never drops a record: a batch the store refuses is written again record
by record, a record that still cannot be stored is kept in the spool file (and logged) and
stored once the store takes it, a database that is down loses nothing, and a spool left by
an earlier run is stored when the writer starts."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.domain.access.audit import AuditRecord, Outcome, to_json
from accord.domain.errors import Unavailable
from accord.service.audit import SPOOL_FILE, AuditSpool, AuditWriter

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def rec(i: int, target: str = "") -> AuditRecord:
    return AuditRecord(T0 + timedelta(seconds=i), f"user{i}", "oidc", "job.submit", target or f"job j{i}",
                       ("uk",), Outcome.OK, 201, "10.0.0.1")


class Store:
    """A store that refuses a whole batch holding a record ``bad`` picks (as PostgreSQL does
    a NUL), or every write while ``down``."""

    def __init__(self, bad: Callable[[AuditRecord], bool] = lambda r: False) -> None:
        self.bad, self.down = bad, False
        self.stored: list[AuditRecord] = []
        self.calls = 0

    def write_many(self, recs: list[AuditRecord]) -> None:
        self.calls += 1
        if self.down:
            raise Unavailable("database unavailable: connection refused")
        if any(self.bad(r) for r in recs):
            raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        self.stored += recs


def wait_until(what: str, ok: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not ok():
        assert time.monotonic() < deadline, f"waited {within} s for {what}"
        time.sleep(0.01)


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / SPOOL_FILE


@pytest.fixture
def writers() -> Iterator[list[AuditWriter]]:
    made: list[AuditWriter] = []
    yield made
    for w in made:
        w.close()


def spool_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_one_bad_record_never_takes_the_others_with_it(spool_path: Path, writers: list[AuditWriter],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    store = Store(bad=lambda r: r.target == "poison")
    writer = AuditWriter(store.write_many, AuditSpool(spool_path), retry_s=3600)
    writers.append(writer)
    with caplog.at_level(logging.WARNING, "accord.audit"):
        for i in range(5):
            writer.add(rec(i, "poison" if i == 2 else ""))
        writer.flush()
    assert [r.actor for r in store.stored] == ["user0", "user1", "user3", "user4"]
    assert writer.spooled == 1
    [kept] = spool_lines(spool_path)
    assert kept["record"] == to_json(rec(2, "poison"))
    assert "NUL" in str(kept["error"])
    assert "audit record kept in the spool" in caplog.text and "job.submit poison by user2" in caplog.text


def test_a_spooled_record_is_stored_once_the_store_takes_it(spool_path: Path,
                                                            writers: list[AuditWriter]) -> None:
    store = Store(bad=lambda r: r.target == "poison")
    writer = AuditWriter(store.write_many, AuditSpool(spool_path), retry_s=0.05)
    writers.append(writer)
    writer.add(rec(1, "poison"))
    writer.flush()
    assert writer.spooled == 1
    store.bad = lambda r: False           # e.g. the column was widened, the database fixed
    wait_until("the spooled record to be stored", lambda: writer.spooled == 0)
    assert [r.target for r in store.stored] == ["poison"]
    assert spool_lines(spool_path) == []


def test_a_database_that_is_down_loses_nothing(spool_path: Path, writers: list[AuditWriter]) -> None:
    store = Store()
    store.down = True
    writer = AuditWriter(store.write_many, AuditSpool(spool_path), retry_s=3600)
    writers.append(writer)
    for i in range(50):
        writer.add(rec(i))
    writer.flush()
    assert writer.spooled == 50 and len(spool_lines(spool_path)) == 50
    assert store.calls <= 4     # the batch(es), then one record each: not 50 more attempts
    writer.close()
    # the next start stores the spool first
    store.down = False
    again = AuditWriter(store.write_many, AuditSpool(spool_path), retry_s=3600)
    writers.append(again)
    again.flush()
    assert [r.actor for r in store.stored] == [f"user{i}" for i in range(50)]
    assert again.spooled == 0 and spool_lines(spool_path) == []


def test_unreadable_spool_lines_are_set_aside_not_deleted(spool_path: Path,
                                                          writers: list[AuditWriter]) -> None:
    good = json.dumps({"record": to_json(rec(7)), "error": "x", "kept_at": ""})
    spool_path.write_text(f"{good}\nnot json at all\n{{\"record\": {{}}}}\n")
    store = Store()
    writer = AuditWriter(store.write_many, AuditSpool(spool_path), retry_s=3600)
    writers.append(writer)
    writer.flush()
    assert [r.actor for r in store.stored] == ["user7"]
    aside = spool_path.with_name(SPOOL_FILE + ".unreadable").read_text().splitlines()
    assert aside == ["not json at all", '{"record": {}}']
    assert spool_lines(spool_path) == []


def test_records_are_cleaned_before_they_are_queued(writers: list[AuditWriter]) -> None:
    store = Store()
    writer = AuditWriter(store.write_many)
    writers.append(writer)
    writer.add(AuditRecord(T0, "ana\x00", "oidc", "POST /x\x00y", "/x\x00y\n" + "z" * 400, ("uk", "f\x00r"),
                           Outcome.INVALID, 422, "\ud800"))
    writer.flush()
    [r] = store.stored
    assert (r.actor, r.action, r.partners) == ("ana\\x00", "POST /x\\x00y", ("uk", "f\\x00r"))
    assert r.source == "\ufffd"
    assert r.target.startswith("/x\\x00y\\x0azzz") and len(r.target) == 300 and r.target.endswith("…")
