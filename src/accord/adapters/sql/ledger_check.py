"""Run the ledger check over a SQL store, on every core for a large ledger.

The sequence range is split into one contiguous slice per worker; each worker reads
its slice over its own connection and checks it with
:func:`accord.domain.ledger_verify.verify_rows`, starting from the stored hash of
the entry just before its slice. The parent joins the slices in order: a break at
a slice boundary shows as a bad hash in the later slice, so nothing is missed.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass

from accord.domain.ledger_verify import ChainCheck, verify_rows

PARALLEL_FROM = 200_000


@dataclass(frozen=True, slots=True)
class SliceResult:
    """What one worker found in [start, stop)."""

    start: int
    count: int
    last_hash: str
    leaves: bytes
    bad_seq: int | None
    problem: str


def check_store(url: str, size: int, workers: int | None = None) -> ChainCheck:
    """Check every entry of the ledger in the database at ``url`` (``size`` from its head)."""
    n = workers or os.cpu_count() or 1
    if size < PARALLEL_FROM or n == 1:
        return _join([_check_slice(url, 0, None)])
    bounds = [size * i // n for i in range(n)] + [None]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(n) as pool:
        parts = pool.starmap(_check_slice, [(url, bounds[i], bounds[i + 1]) for i in range(n)])
    return _join(parts)


def _check_slice(url: str, start: int, stop: int | None) -> SliceResult:
    from accord.adapters.sql.ledger_store import SqlLedger
    from accord.adapters.sql.store import SqlStore

    store = SqlStore(url, auto_migrate=False)
    try:
        ledger = SqlLedger(store)
        check = ChainCheck(count=start)
        if start:
            before = ledger.hash_at(start - 1)
            if before is None:
                return SliceResult(start, start, "", b"", start - 1,
                                   f"entry at position {start - 1} is missing")
            check.last_hash = before
        for batch in ledger.rows(start, stop):
            verify_rows(batch, check)
            if not check.ok:
                break
        return SliceResult(start, check.count, check.last_hash, b"".join(check.leaves),
                           check.bad_seq, check.problem)
    finally:
        store.close()


def _join(parts: list[SliceResult]) -> ChainCheck:
    joined = ChainCheck()
    for part in parts:
        if part.bad_seq is not None:
            joined.bad_seq, joined.problem = part.bad_seq, part.problem
            joined.count = part.count
            return joined
        if part.start != joined.count:
            joined.bad_seq = joined.count
            joined.problem = f"entries {joined.count}..{part.start - 1} are missing"
            return joined
        joined.count = part.count
        joined.last_hash = part.last_hash or joined.last_hash
        joined.leaves += [part.leaves[i:i + 32] for i in range(0, len(part.leaves), 32)]
    return joined
