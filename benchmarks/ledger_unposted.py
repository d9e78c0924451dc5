"""What the dispatcher's every pass pays to find usage still to post, as usage accumulates.

Each dispatcher pass asks the ledger for usage records not yet through posting
(:meth:`accord.adapters.sql.ledger_store.SqlLedger.unposted_usage`). Up to revision 0014 that
was ``NOT IN ledger_posted`` over every usage record ever stored: a scan that grows with the
federation's history. From 0015 it reads ``usage_records.posted = 0`` through the index
``ix_usage_unposted``. This fills a fresh store (SQLite file, or ``--store postgres``: a
database of its own on ``$ACCORD_TEST_PG``'s server, dropped afterwards) with N posted usage
records and 10 unposted ones, then times, on the same data in the same run, the query as
``unposted_usage`` makes it now and the query before 0015 (the baseline), each the median of
``--repeat`` calls.

    uv run python benchmarks/ledger_unposted.py [--records 1000 10000 100000] [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import fresh_pg_schema

from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.schema import ledger_posted, usage_records
from accord.adapters.sql.store import SqlStore

PG_ADMIN = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNPOSTED = 10


def row(i: int, posted: bool) -> dict[str, object]:
    """Usage record ``i`` (one GPU-hour at site ``s{i % 7}``), posted or not."""
    start = T0 + timedelta(seconds=i)
    return {"id": f"u{i:08d}", "job_id": f"j{i:08d}", "site": f"s{i % 7}", "pool": "h100",
            "gpu_model": "H100", "host_partner": "uk", "requester_partner": "fr", "agreement": "uk-fr",
            "project": "p", "start": start, "end": start + timedelta(hours=1), "gpus": 1,
            "gpu_seconds": 3600.0, "state": "completed", "exit_code": 0, "energy_j": None,
            "recorded_at": start, "posted": int(posted)}


def fill(store: SqlStore, n: int) -> None:
    """``n`` posted records (each with its ``ledger_posted`` mark), then the unposted ones."""
    for lo in range(0, n, 5000):
        ids = range(lo, min(n, lo + 5000))
        with store.transaction() as conn:
            conn.execute(insert(usage_records), [row(i, True) for i in ids])
            conn.execute(insert(ledger_posted), [{"usage_id": f"u{i:08d}", "entries": 2} for i in ids])
    with store.transaction() as conn:
        conn.execute(insert(usage_records), [row(n + i, False) for i in range(UNPOSTED)])


def old_query(store: SqlStore) -> list[str]:
    """The look-up before revision 0015."""
    q = (select(usage_records.c.id).where(~usage_records.c.id.in_(select(ledger_posted.c.usage_id)))
         .order_by(usage_records.c.recorded_at, usage_records.c.id).limit(500))
    with store.transaction() as conn:
        return list(conn.execute(q).scalars())


def timed(call: Callable[[], object], repeat: int) -> float:
    """The median milliseconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


@contextmanager
def store_of(kind: str, tmp: Path, n: int) -> Iterator[SqlStore]:
    """A fresh store at the newest revision (PostgreSQL: a database of its own, dropped after)."""
    if kind == "sqlite":
        store = SqlStore(f"sqlite:///{tmp / f'ledger-{n}.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    name = f"accord_ledger_bench_{os.getpid()}_{n}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    store = SqlStore(fresh_pg_schema(PG_ADMIN.rsplit("/", 1)[0] + "/" + name))
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    print(f"store {args.store}; {UNPOSTED} unposted records after N posted; median of {args.repeat} calls; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"\n  {'posted records N':>16s} {'before 0015 (ms)':>17s} {'now (ms)':>9s} {'ratio':>7s}")
    with tempfile.TemporaryDirectory() as name:
        for n in args.records:
            with store_of(args.store, Path(name), n) as store:
                fill(store, n)
                ledger = SqlLedger(store)
                assert [r.id for r in ledger.unposted_usage()] == old_query(store), "the two disagree"
                assert len(old_query(store)) == UNPOSTED
                before = timed(partial(old_query, store), args.repeat)
                now = timed(ledger.unposted_usage, args.repeat)
                print(f"  {n:16,d} {before:17.2f} {now:9.2f} {before / now:6.0f}x")


if __name__ == "__main__":
    main()
