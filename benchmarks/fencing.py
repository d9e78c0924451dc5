"""What the dispatch lease's fence costs: the same job writes (``save_job``, the broker's
write per lifecycle step) unfenced (baseline, measured in the same run) and fenced by a
held lease, on SQLite and on PostgreSQL. Under a fence each transaction first reads the
lease row (``FOR SHARE`` on PostgreSQL); docs/design/replicas.md.

    uv run python benchmarks/fencing.py [--writes 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accord.adapters.clock import SystemClock
from accord.adapters.sql.lease import SqlLease
from accord.adapters.sql.store import SqlStore
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, JobSpec, apply, new_job

SPEC = JobSpec("b", 1, 3600, ("true",))


def writes_per_s(store: SqlStore, n: int, fenced: bool) -> float:
    """Job writes per second: n saves, each a lifecycle step with one new event (20 steps
    per job, so stories stay the length real ones have; the jobs are stored beforehand)."""
    now = SystemClock().now()
    jobs = [new_job(f"j{secrets.token_hex(6)}", SPEC, now) for _ in range(n // 20 + 1)]
    store.add_jobs([(j, codec.spec_hash(SPEC)) for j in jobs])
    lease = SqlLease(store, "dispatch", margin_s=2.0)
    epoch = lease.acquire("bench", ttl_s=600)
    assert epoch is not None
    start = time.perf_counter()
    for i in range(n):
        job = jobs[i // 20]
        step = apply(job, Event(EventKind.NOTE, now, f"step {i}"))
        if fenced:
            with lease.fenced("bench", epoch):
                jobs[i // 20] = store.save_job(replace(step, version=job.version))
        else:
            jobs[i // 20] = store.save_job(replace(step, version=job.version))
    return n / (time.perf_counter() - start)


def pg_url(admin: str) -> tuple[str, str]:
    name = f"accord_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin.rsplit('/', 1)[0]}/{name}", name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url, name = pg_url(args.pg)
        try:
            for label, db in (("SQLite", f"sqlite:///{d}/bench.db"), ("PostgreSQL", url)):
                store = SqlStore(db)
                writes_per_s(store, args.writes // 10, False)   # warm up
                # alternating rounds, medians: a neighbour's load hits both sides alike
                rounds = [(writes_per_s(store, args.writes // 10, False),
                           writes_per_s(store, args.writes // 10, True)) for _ in range(10)]
                base = statistics.median(r[0] for r in rounds)
                fenced = statistics.median(r[1] for r in rounds)
                store.close()
                print(f"{label:10s} job writes/s (median of 10 alternating rounds): "
                      f"unfenced {base:7.0f}  fenced {fenced:7.0f}  ratio {fenced / base:.2f}  "
                      f"(+{(1 / fenced - 1 / base) * 1e3:.2f} ms per write)")
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
