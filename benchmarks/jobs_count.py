"""What the metrics' job count costs: ``SqlStore.count_by_state_and_site`` (``/metrics`` reads
it at most every 5 s) over a store of ``--jobs`` jobs, timed ``--repeat`` times, on SQLite
(a fresh file) and PostgreSQL (a fresh schema in ``$ACCORD_TEST_PG`` or the local ``test``
database, dropped afterwards). Migration 0011's index on (state, site) answers it.

    uv run python benchmarks/jobs_count.py [--jobs 30000] [--repeat 20] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import fresh_pg_schema

from accord.adapters.sql.store import SqlStore
from accord.domain.jobs import codec
from accord.domain.jobs.model import JobSpec, new_job

PG = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def fill(db: SqlStore, jobs: int) -> None:
    """``jobs`` submitted jobs, written 2,000 to a transaction."""
    now = datetime.now(UTC)
    batch = []
    for i in range(jobs):
        j = new_job(f"j{i:08d}", JobSpec("n", 1, 3600, ("true",)), now)
        batch.append((j, codec.spec_hash(j.spec)))
        if len(batch) == 2000:
            db.add_jobs(batch)
            batch = []
    if batch:
        db.add_jobs(batch)


def timed(url: str, jobs: int, repeat: int) -> list[float]:
    """The count's wall times in ms over a fresh store at ``url``."""
    db = SqlStore(url)
    try:
        fill(db, jobs)
        out = []
        for _ in range(repeat):
            t = time.perf_counter()
            db.count_by_state_and_site()
            out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=30000)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--stores", default="sqlite,postgresql")
    args = p.parse_args()
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/count.db" if store == "sqlite" else fresh_pg_schema(PG)
            try:
                ms = timed(url, args.jobs, args.repeat)
            finally:
                if store != "sqlite":
                    schema = url.rsplit("%3D", 1)[1]
                    with psycopg.connect(PG, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        median = statistics.median(ms)
        print(f"{store:<11} count_by_state_and_site over {args.jobs:,} jobs: median {median:.1f} ms, "
              f"min {min(ms):.1f} ms ({args.repeat} counts)")


if __name__ == "__main__":
    main()
