"""Usage records keep their energy and emissions on SQLite and PostgreSQL, and migration
0004 gives records made before it empty figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, insert, text

from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.schema import ledger_posted, usage_records
from accord.adapters.sql.store import MIGRATIONS, SqlStore, make_engine
from accord.domain.ledger.usage import UsageRecord

START = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)


def usage(i: int, start: datetime = START, **kw: object) -> UsageRecord:
    base = UsageRecord(f"paris:{i}", f"j{i}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                       "proj", start, start + timedelta(hours=1), 2, 7200.0, "completed", 0)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def test_energy_emissions_and_source_round_trip(store: SqlStore) -> None:
    full = usage(1, energy_kwh=2.805, emissions_g=561.123456789,
                 intensity_source="profile: GB month x hour means " + "x" * 600)
    measured = usage(2, energy_j=7.2e6, energy_kwh=2.2, emissions_g=None,
                     intensity_source="unavailable: no carbon source answered for KR")
    bare = usage(3)
    for r in (full, measured, bare):
        assert store.add_usage(r) is True
    assert store.add_usage(replace(full, emissions_g=1.0)) is False  # read twice: kept once
    assert {r.id: r for r in store.usage()} == {r.id: r for r in (full, measured, bare)}
    [one] = store.usage(job_id="j1")
    assert one.emissions_g == 561.123456789 and one.intensity_source == full.intensity_source


def test_usage_started_selects_by_the_start_month(store: SqlStore) -> None:
    october = usage(1)  # 23:30 on 31 October, runs into November
    november = usage(2, start=datetime(2026, 11, 1, tzinfo=UTC))
    december = usage(3, start=datetime(2026, 12, 1, tzinfo=UTC))
    for r in (december, november, october):
        store.add_usage(r)
    got = store.usage_started(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert [r.id for r in got] == ["paris:2"]
    oct_nov = store.usage_started(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert [r.id for r in oct_nov] == ["paris:1", "paris:2"]


def _alembic() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@contextmanager
def _at_revision(db_url: str, revision: str) -> Iterator[Connection]:
    """A connection to the database migrated to ``revision`` only, committed when done."""
    engine, cfg = make_engine(db_url), _alembic()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            yield conn
    finally:
        engine.dispose()


def test_migration_0004_keeps_older_records_with_empty_figures(db_url: str) -> None:
    with _at_revision(db_url, "0003") as conn:
        old = {c.name: getattr(usage(7), c.name, None) for c in usage_records.columns
               if c.name not in ("energy_kwh", "emissions_g", "intensity_source", "attestation",
                                 "account", "local_user", "posted")}
        old["recorded_at"] = START
        conn.execute(insert(usage_records), [old])  # only the columns 0003 made
    store = SqlStore(db_url)  # migrates to head
    try:
        [r] = store.usage()
        assert r == usage(7)
        assert (r.energy_kwh, r.emissions_g, r.intensity_source) == (None, None, None)
    finally:
        store.close()


def test_migration_0015_marks_what_was_posted_and_finds_the_rest_by_index(db_url: str) -> None:
    """A database at 0014 with one usage record posted and one not: after the upgrade the
    posting finds only the other, through ``ix_usage_unposted``; down to 0014 and up again."""
    with _at_revision(db_url, "0014") as conn:
        for i in (1, 2):
            row = {c.name: getattr(usage(i), c.name, None)
                   for c in usage_records.columns if c.name != "posted"}
            conn.execute(insert(usage_records), [{**row, "recorded_at": START}])
        conn.execute(insert(ledger_posted), [{"usage_id": usage(1).id, "entries": 2}])
    store = SqlStore(db_url)   # migrates to head
    try:
        ledger = SqlLedger(store)
        assert [r.id for r in ledger.unposted_usage()] == [usage(2).id]
        ledger.append_many([(usage(2).id, [])])
        assert ledger.unposted_usage() == [] and ledger.is_posted(usage(2).id)
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                plan = " ".join(str(r[-1]) for r in conn.execute(text(
                    "EXPLAIN QUERY PLAN SELECT id FROM usage_records WHERE posted = 0 "
                    "ORDER BY recorded_at, id LIMIT 5")))
            assert "ix_usage_unposted" in plan, plan
        with store.engine.begin() as conn:
            cfg = _alembic()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0014")
            command.upgrade(cfg, "head")
        assert ledger.unposted_usage() == []
    finally:
        store.close()
