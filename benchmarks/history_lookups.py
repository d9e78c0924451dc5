"""Two look-ups the hub makes all the time, as the federation's history accumulates.

1. **Usage still to post.** Each dispatcher pass asks the ledger for usage records not yet
   through posting (:meth:`accord.adapters.sql.ledger_store.SqlLedger.unposted_usage`). Up to
   revision 0014 that was ``NOT IN ledger_posted`` over every usage record ever stored; from
   0015 it reads ``usage_records.posted = 0`` through the index ``ix_usage_unposted``.
2. **A report's dispatch orders.** Each batch of an agent's reports (and each log chunk, and
   the dispatcher's status look-ups) finds the dispatch orders of the job references it names.
   Before this change by ``ref`` and ``kind``, which no index covers: a scan of every order
   ever written; now by the primary key (``<ref>/dispatch``,
   :func:`accord.domain.agent.protocol.order_id`).

For each N this fills a fresh store (SQLite file, or ``--store postgres``: a database of its
own on ``$ACCORD_TEST_PG``'s server, dropped afterwards) with N posted usage records and 10
unposted ones, and N acknowledged dispatch orders; then times, on the same data in the same
run, each look-up as the hub makes it now and as it made it before (the baseline): the
median of ``--repeat`` calls, the report look-up for 10 references.

    uv run python benchmarks/history_lookups.py [--records 1000 10000 100000] [--store sqlite|postgres]
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

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.schema import agent_orders, ledger_posted, usage_records
from accord.adapters.sql.store import SqlStore
from accord.domain.agent.protocol import OrderKind, order_id
from benchmarks.agent_orders import pg_database

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


def order(i: int) -> dict[str, object]:
    """Dispatch order ``i``, acknowledged, for job reference ``j{i}.1`` at site ``s{i % 7}``."""
    ref = f"j{i:08d}.1"
    return {"id": order_id(ref, OrderKind.DISPATCH), "site": f"s{i % 7}", "kind": "dispatch", "ref": ref,
            "job_id": f"j{i:08d}", "job": "{}", "created_at": T0, "acked_at": T0, "local_id": str(i)}


def fill(store: SqlStore, n: int) -> None:
    """``n`` posted records (each with its ``ledger_posted`` mark), then the unposted ones;
    ``n`` dispatch orders."""
    for lo in range(0, n, 5000):
        ids = range(lo, min(n, lo + 5000))
        with store.transaction() as conn:
            conn.execute(insert(usage_records), [row(i, True) for i in ids])
            conn.execute(insert(ledger_posted), [{"usage_id": f"u{i:08d}", "entries": 2} for i in ids])
            conn.execute(insert(agent_orders), [order(i) for i in ids])
    with store.transaction() as conn:
        conn.execute(insert(usage_records), [row(n + i, False) for i in range(UNPOSTED)])


def owners_before(store: SqlStore, refs: list[str]) -> dict[str, str]:
    """The report's look-up of its references' dispatch orders before this change."""
    q = select(agent_orders.c.ref, agent_orders.c.site).where(
        agent_orders.c.ref.in_(refs), agent_orders.c.kind == OrderKind.DISPATCH.value)
    with store.transaction() as conn:
        return {str(r): str(s) for r, s in conn.execute(q).all()}


def owners_now(store: SqlStore, refs: list[str]) -> dict[str, str]:
    """The same look-up as ``SqlAgents`` makes it now (by primary key)."""
    q = select(agent_orders.c.ref, agent_orders.c.site).where(
        agent_orders.c.id.in_([order_id(r, OrderKind.DISPATCH) for r in refs]))
    with store.transaction() as conn:
        return {str(r): str(s) for r, s in conn.execute(q).all()}


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
    with pg_database(f"accord_ledger_bench_{os.getpid()}_{n}") as url:
        store = SqlStore(url)
        try:
            yield store
        finally:
            store.close()


def compare(store: SqlStore, n: int, repeat: int) -> None:
    """Print both look-ups' figures for a store filled with ``n``."""
    ledger = SqlLedger(store)
    assert [r.id for r in ledger.unposted_usage()] == old_query(store), "the two disagree"
    assert len(old_query(store)) == UNPOSTED
    refs = [f"j{i:08d}.1" for i in range(n // 2, n // 2 + 10)]
    assert owners_before(store, refs) == owners_now(store, refs)
    assert len(owners_now(store, refs)) == 10
    pairs: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("usage still to post", partial(old_query, store), ledger.unposted_usage),
        ("a report's 10 orders", partial(owners_before, store, refs), partial(owners_now, store, refs)),
    ]
    for what, before_call, now_call in pairs:
        before, now = timed(before_call, repeat), timed(now_call, repeat)
        print(f"  {what:26s} {n:9,d} {before:12.2f} {now:9.2f} {before / now:6.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    print(f"store {args.store}; N usage records posted and {UNPOSTED} not, N dispatch orders; "
          f"median of {args.repeat} calls; load average {os.getloadavg()[0]:.1f}")
    print(f"\n  {'look-up':26s} {'N':>9s} {'before (ms)':>12s} {'now (ms)':>9s} {'ratio':>7s}")
    with tempfile.TemporaryDirectory() as name:
        for n in args.records:
            with store_of(args.store, Path(name), n) as store:
                fill(store, n)
                compare(store, n, args.repeat)


if __name__ == "__main__":
    main()
