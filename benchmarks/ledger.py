"""Ledger speed: postings per second, verify over a large ledger, proof size and time.

1. Postings/s: usage records posted by the dispatcher's sweep (up to 500 records per
   transaction, each with its "posted" mark), on SQLite and PostgreSQL. Baseline in the
   same run: inserting the same usage records, one per transaction.
2. ``verify`` over N entries (default 1,000,000) on SQLite, after closing a period
   (so the Merkle root is recomputed and the signature checked too). Baseline:
   reading the same rows and hashing their bodies once (the floor any verifier pays).
3. Inclusion proof for the N-entry tree: size and mean time to build + verify.

    uv run python benchmarks/ledger.py [--entries 1000000] [--postings 2000] [--verify-runs 1]

By default everything is built in a temporary directory and thrown away. To time
``verify`` again without rebuilding the large ledger (~2 minutes for a million
entries), pass ``--db PATH``: the ledger is built and closed there the first time
(its signing key kept in ``PATH.key``) and reused, as it is, by later runs;
``--postings 0`` skips the postings part.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import SMALL_FEDERATION, fresh_pg_schema

from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.ledger import merkle, signing
from accord.domain.ledger.entries import usage_entries
from accord.domain.ledger.usage import UsageRecord
from accord.service.ledger import LedgerService

PG_ADMIN = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FED = parse_federation_text(SMALL_FEDERATION)
START = datetime(2026, 10, 1, tzinfo=UTC)


def usage(i: int) -> UsageRecord:
    start = START + timedelta(seconds=i * 7)
    return UsageRecord(f"paris:{i}", f"j{i}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                       f"p{i % 50}", start, start + timedelta(hours=1), 2, 7200.0,
                       "completed", 0)


def service(url: str, key: bytes | None = None) -> LedgerService:
    store = SqlStore(url)
    return LedgerService(FED, SqlLedger(store), FakeClock(START + timedelta(days=45)),
                         key or signing.generate_private_key(), "bench")


def postings(url: str, n: int, label: str) -> None:
    svc = service(url)
    assert isinstance(svc.ledger, SqlLedger)
    store = svc.ledger.store
    t = time.perf_counter()
    for i in range(n):
        store.add_usage(usage(i))
    base = time.perf_counter() - t
    t = time.perf_counter()
    while svc.post_pending(limit=500):
        pass
    elapsed = time.perf_counter() - t
    assert svc.ledger.size() == n
    print(f"  {label:<11} {n / elapsed:8.0f} postings/s  (posting sweeps of up to 500 records "
          f"per transaction; baseline: usage inserts, one per transaction: {n / base:6.0f}/s)")
    store.close()


def build_large(url: str, n: int, key: bytes) -> LedgerService:
    svc = service(url, key)
    batch = 20_000
    now = START + timedelta(days=45)
    for first in range(0, n, batch):
        entries = [e for i in range(first, min(n, first + batch))
                   for e in usage_entries(usage(i), FED, now)]
        svc.ledger.append(entries)
    return svc


def baseline_read_hash(svc: LedgerService) -> float:
    assert isinstance(svc.ledger, SqlLedger)
    t = time.perf_counter()
    for row in svc.ledger.raw():
        hashlib.sha256(row.body).digest()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--postings", type=int, default=2000, help="0 skips the postings part")
    parser.add_argument("--db", type=Path, help="keep the large ledger in this SQLite file, "
                        "and reuse it if it exists (default: a temporary one)")
    parser.add_argument("--verify-runs", type=int, default=1,
                        help="time verify this many times and report each and the median")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.postings:
            postings_both(tmp, args.postings)
        svc = large_ledger(args.db or Path(tmp) / "big.db", args.entries)
        time_verify(svc, args.verify_runs)
        proofs(svc, args.entries)


def postings_both(tmp: str, n: int) -> None:
    print("postings (the dispatcher's sweep: unposted usage records, priced and chained):")
    postings(f"sqlite:///{tmp}/p.db", n, "SQLite")
    name = f"accord_ledger_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        postings(fresh_pg_schema(PG_ADMIN.rsplit("/", 1)[0] + "/" + name), n, "PostgreSQL")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def large_ledger(db: Path, n: int) -> LedgerService:
    key_file = db.with_name(db.name + ".key")
    if db.exists() and key_file.exists():
        svc = service(f"sqlite:///{db}", key_file.read_bytes())
        print(f"reusing the ledger in {db}: {svc.ledger.head()[0]:,} entries (--entries ignored)")
        return svc
    key = signing.generate_private_key()
    t = time.perf_counter()
    svc = build_large(f"sqlite:///{db}", n, key)
    print(f"built a {n:,}-entry ledger on SQLite in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    svc.close_period("2026-10")
    print(f"closed a period (Merkle root over {n:,} entries + signature): "
          f"{time.perf_counter() - t:.1f} s")
    key_file.write_bytes(key)
    return svc


def time_verify(svc: LedgerService, runs: int) -> None:
    base = baseline_read_hash(svc)
    times, cpus = [], []
    for _ in range(runs):
        cpu, t = _cpu(), time.perf_counter()
        report = svc.verify()
        times.append(time.perf_counter() - t)
        cpus.append(_cpu() - cpu)
        assert report.ok, report
    elapsed = statistics.median(times)
    each = f"; runs: {', '.join(f'{x:.2f}' for x in times)} s" if runs > 1 else ""
    print(f"verify: {elapsed:.1f} s for {report.entries:,} entries and {report.closures} "
          f"closure (median of {runs}{each}; CPU {statistics.median(cpus):.1f} s in all "
          f"processes) = {elapsed / base:.1f} x the floor of reading + hashing them once in one "
          f"process: {base:.1f} s; target <= 10 s: {'met' if elapsed <= 10 else 'NOT met'}; "
          f"load average now {os.getloadavg()[0]:.2f}")


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (the workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def proofs(svc: LedgerService, n: int) -> None:
    n = min(n, svc.ledger.head()[0])
    leaves = [merkle.leaf_hash(b) for b in svc.ledger.leaf_bodies(n)]
    t = time.perf_counter()
    tree = merkle.MerkleTree.build(leaves)
    built = time.perf_counter() - t
    rng = random.Random(1)
    root = tree.root()
    t = time.perf_counter()
    sizes = []
    for _ in range(1000):
        i = rng.randrange(n)
        proof = tree.inclusion_proof(i)
        assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
        sizes.append(len(proof) * 32)
    per = (time.perf_counter() - t) / 1000 * 1e6
    print(f"inclusion proofs in a {n:,}-entry tree: {max(sizes)} bytes "
          f"({max(sizes) // 32} hashes); build tree {built:.1f} s once, then "
          f"{per:.0f} us per proof built and verified")


if __name__ == "__main__":
    main()
