"""Run the ledger check over a SQL store, on every core for a large ledger.

The sequence range is split into one contiguous slice per worker; each worker reads
its slice over its own connection and checks it with
:func:`accord.domain.ledger.verify.verify_rows`, starting from the stored hash of
the entry just before its slice. The first slice has no lower bound and the last
no upper bound, so every stored row is read by exactly one worker, whatever its
``seq``. The parent joins the slices in order: a break at a slice boundary shows
as a bad hash in the later slice or as rows missing between slices, so nothing
is missed.

Slices start on multiples of ``2**align_bits`` entries, so each worker also hashes
the lower levels of the Merkle tree over its own leaves (complete subtrees never
cross a slice boundary; RFC 9162 trees split at powers of two) and the parent only
joins them (:meth:`accord.domain.ledger.merkle.MerkleTree.join`).

Workers are forked when the calling process runs no other thread (the CLI), which
saves importing Accord again in each (about a second); otherwise (``accord up``,
whose API calls verify from a thread pool) they are spawned, because forking a
threaded process can leave a lock held forever in the child.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from dataclasses import dataclass
from multiprocessing.context import BaseContext

from accord.adapters.sql.ledger_rows import hash_at, rows
from accord.adapters.sql.store import SqlStore
from accord.domain.ledger.merkle import MerkleTree, lower_levels
from accord.domain.ledger.verify import ChainCheck, is_digest, verify_rows


@dataclass(frozen=True, slots=True)
class Parallel:
    """How :func:`check_store` shares the work out.

    ``workers``: processes (default: one per core); ``from_size``: below this many
    entries one process checks everything (starting workers costs more);
    ``align_bits``: slices start on multiples of ``2**align_bits`` entries.
    """

    workers: int | None = None
    from_size: int = 200_000
    align_bits: int = 14


@dataclass(frozen=True, slots=True)
class SliceResult:
    """What one worker found in its slice, from ``start``; ``levels`` only if all good."""

    start: int
    count: int
    last_hash: str
    levels: tuple[bytes, ...]
    bad_seq: int | None
    problem: str


def check_store(store: SqlStore, size: int, parallel: Parallel | None = None) -> ChainCheck:
    """Check every ledger entry stored in ``store`` (``size``: how many there should be).

    For a large ledger (see :class:`Parallel`) slices are checked in worker
    processes, each with its own connection to the store's database; otherwise
    in this process, over the store's own. Returns the joined result: a bad
    entry is data in it, not an exception.

    Raises:
        Unavailable: the database cannot be read.
    """
    parallel = parallel or Parallel()
    n = parallel.workers or os.cpu_count() or 1
    step = 1 << parallel.align_bits
    starts = sorted({0} | {size * i // n // step * step for i in range(1, n)}) \
        if size >= parallel.from_size else [0]
    if len(starts) == 1:
        check = ChainCheck()
        for batch in rows(store, None, None):
            if not verify_rows(batch, check).ok:
                break
        return check
    slices = [(store.url, start, stop, parallel.align_bits)
              for start, stop in zip(starts, [*starts[1:], None], strict=True)]
    with _context().Pool(len(slices)) as pool:
        return _join(pool.starmap(_check_slice, slices))


def _context() -> BaseContext:
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _check_slice(url: str, start: int, stop: int | None, align_bits: int) -> SliceResult:
    """Check seq in [start, stop) in a worker (the first slice: everything below ``stop``)."""
    gc.disable()  # a worker process: its rows hold no cycles, and it exits when done
    store = SqlStore(url, auto_migrate=False)
    try:
        check = ChainCheck(count=start)
        if start:
            before = hash_at(store, start - 1)
            if not is_digest(before):  # the slice before says why, unless the row is gone
                return SliceResult(start, start, "", (), start - 1,
                                   f"entry at position {start - 1} is missing" if before is None
                                   else f"entry {start - 1}: its stored hash is not a digest")
            check.last_hash = str(before)
        for batch in rows(store, start or None, stop):
            if not verify_rows(batch, check).ok:
                return SliceResult(start, check.count, check.last_hash, (), check.bad_seq,
                                   check.problem)
        return SliceResult(start, check.count, check.last_hash,
                           tuple(lower_levels(bytes(check.leaves), align_bits)), None, "")
    finally:
        store.close()


def _join(parts: list[SliceResult]) -> ChainCheck:
    joined = ChainCheck()
    for part in parts:
        if part.start != joined.count:  # the slice before ended early: rows are missing
            joined.bad_seq = joined.count
            joined.problem = f"entries {joined.count}..{part.start - 1} are missing"
            return joined
        if part.bad_seq is not None:
            joined.bad_seq, joined.problem = part.bad_seq, part.problem
            joined.count = part.count
            return joined
        joined.count, joined.last_hash = part.count, part.last_hash
    joined.tree = MerkleTree.join([part.levels for part in parts])
    return joined
