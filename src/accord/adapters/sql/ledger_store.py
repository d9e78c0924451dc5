"""Ledger storage: entries as canonical bytes plus their chain hash, in sequence.

The body column holds the exact canonical bytes that were hashed; the other
columns are copies for queries, and ``accord ledger verify`` checks that they
still agree with the body. Appends are serialised by a conditional update of
the single ``ledger_head`` row, so concurrent writers (threads or processes, on
SQLite or PostgreSQL) always build one linear chain: a writer that lost the
race retries on the new head.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from accord.adapters.sql import ledger_rows
from accord.adapters.sql.ledger_check import Parallel, check_store
from accord.adapters.sql.schema import (
    ledger_closures,
    ledger_entries,
    ledger_head,
    ledger_posted,
    usage_records,
)
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Conflict, Unavailable
from accord.domain.ledger.entries import Closure, Entry, from_document, seal
from accord.domain.ledger.usage import UsageRecord
from accord.domain.ledger.verify import ChainCheck

MAX_RETRIES = 50


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A row as stored, for verification: nothing is trusted until checked."""

    seq: int
    id: str
    agreement: str
    period: str
    job_id: str | None
    usage_id: str | None
    body: bytes
    hash: str


class SqlLedger:
    """The ledger's tables in the store's database."""

    def __init__(self, store: SqlStore, parallel: Parallel | None = None) -> None:
        self.store = store
        self.parallel = parallel or Parallel()
        """How :meth:`check_chain` shares out a large ledger (see ledger_check.py)."""

    def append(self, entries: Sequence[Entry], usage_id: str | None = None) -> list[Entry]:
        """Append entries in order, skipping ids already present; returns what is stored.

        With ``usage_id``, also marks that usage record as posted, in the same
        transaction (so a record is posted exactly once, even with no entries).

        Raises:
            Unavailable: the chain head kept moving (heavy contention) or the DB is down.
        """
        return self.append_many([(usage_id, entries)])

    def append_many(self, groups: Sequence[tuple[str | None, Sequence[Entry]]]) -> list[Entry]:
        """Append several groups (a usage record's entries each) in ONE transaction.

        A group whose usage record is already posted is skipped whole; entries whose
        id exists are not appended again. Returns the entries appended or found.

        Raises:
            Unavailable: the chain head kept moving (heavy contention) or the DB is down.
        """
        for _ in range(MAX_RETRIES):
            try:
                with self.store.transaction() as conn:
                    return self._append(conn, groups)
            except _HeadMoved:
                continue
            except IntegrityError:
                continue  # another writer appended one of these ids first: re-read and skip it
        raise Unavailable("the ledger head kept moving; too many concurrent writers")

    def _append(self, conn: Connection, groups: Sequence[tuple[str | None, Sequence[Entry]]]
                ) -> list[Entry]:
        # Take the write lock before reading the head: a row lock on PostgreSQL, the
        # database's write lock on SQLite (waits out the busy timeout instead of failing).
        conn.execute(update(ledger_head).where(ledger_head.c.id == 1)
                     .values(seq=ledger_head.c.seq))
        usage_ids = [u for u, _ in groups if u is not None]
        posted = set(conn.execute(select(ledger_posted.c.usage_id).where(
            ledger_posted.c.usage_id.in_(usage_ids))).scalars()) if usage_ids else set()
        todo = [(u, es) for u, es in groups if u is None or u not in posted]
        head = conn.execute(select(ledger_head.c.seq, ledger_head.c.hash)
                            .where(ledger_head.c.id == 1)).one()
        seq, prev = int(head[0]), str(head[1])
        ids = [e.id for _, es in todo for e in es]
        existing = {r[0]: r for r in conn.execute(
            select(ledger_entries.c.id, ledger_entries.c.body, ledger_entries.c.hash)
            .where(ledger_entries.c.id.in_(ids)))} if ids else {}
        out, rows = [], []
        for e in (e for _, es in todo for e in es):
            if e.id in existing:
                _, body, h = existing[e.id]
                out.append(from_document(json.loads(body), h))
                continue
            seq += 1
            sealed, body_bytes = seal(e, seq, prev)
            prev = sealed.hash
            rows.append({"seq": seq, "id": e.id, "agreement": e.agreement, "period": e.period,
                         "job_id": e.job_id, "usage_id": e.usage_id,
                         "body": body_bytes.decode("utf-8"), "hash": sealed.hash})
            out.append(sealed)
        if rows:
            moved = conn.execute(update(ledger_head).where(
                ledger_head.c.id == 1, ledger_head.c.seq == int(head[0])
            ).values(seq=seq, hash=prev))
            if moved.rowcount != 1:
                raise _HeadMoved
            conn.execute(insert(ledger_entries), rows)
        marks = [{"usage_id": u, "entries": len(es)} for u, es in todo if u is not None]
        if marks:
            conn.execute(insert(ledger_posted), marks)
        if usage_ids:
            conn.execute(update(usage_records).where(usage_records.c.id.in_(usage_ids)).values(posted=1))
        return out

    def unposted_usage(self, limit: int = 500) -> list[UsageRecord]:
        """Usage records that have not been through posting yet, oldest first."""
        query = (select(usage_records).where(usage_records.c.posted == 0)   # ix_usage_unposted
                 .order_by(usage_records.c.recorded_at, usage_records.c.id).limit(limit))
        fields = list(UsageRecord.__dataclass_fields__)
        with self.store.transaction() as conn:
            return [UsageRecord(**{f: r[f] for f in fields}) for r in conn.execute(query).mappings()]

    def is_posted(self, usage_id: str) -> bool:
        """Whether a usage record has been through posting."""
        with self.store.transaction() as conn:
            return conn.execute(select(ledger_posted.c.usage_id).where(
                ledger_posted.c.usage_id == usage_id)).first() is not None

    def entries(self, agreement: str | None = None, period: str | None = None,
                job_id: str | None = None, upto: int | None = None) -> list[Entry]:
        """Entries in sequence order, optionally filtered."""
        query = select(ledger_entries.c.body, ledger_entries.c.hash).order_by(ledger_entries.c.seq)
        if agreement is not None:
            query = query.where(ledger_entries.c.agreement == agreement)
        if period is not None:
            query = query.where(ledger_entries.c.period == period)
        if job_id is not None:
            query = query.where(ledger_entries.c.job_id == job_id)
        if upto is not None:
            query = query.where(ledger_entries.c.seq < upto)
        with self.store.transaction() as conn:
            return [from_document(json.loads(b), h) for b, h in conn.execute(query)]

    def entries_since(self, seq: int) -> list[Entry]:
        """Entries with sequence number >= ``seq``, in order."""
        query = (select(ledger_entries.c.body, ledger_entries.c.hash)
                 .where(ledger_entries.c.seq >= seq).order_by(ledger_entries.c.seq))
        with self.store.transaction() as conn:
            return [from_document(json.loads(b), h) for b, h in conn.execute(query)]

    def entry(self, entry_id: str) -> Entry | None:
        """One entry by id."""
        with self.store.transaction() as conn:
            row = conn.execute(select(ledger_entries.c.body, ledger_entries.c.hash)
                               .where(ledger_entries.c.id == entry_id)).first()
        return None if row is None else from_document(json.loads(row[0]), row[1])

    def rows(self, start: int | None = 0, stop: int | None = None, batch: int = 20_000
             ) -> Iterator[Sequence[tuple[Any, ...]]]:
        """Stored rows with start <= seq < stop, raw, in batches (see
        :func:`accord.adapters.sql.ledger_rows.rows`).

        Raises:
            Unavailable: the database cannot be read.
        """
        return ledger_rows.rows(self.store, start, stop, batch)

    def check_chain(self, size: int) -> ChainCheck:
        """Check every stored entry (in parallel for a large ledger); see ledger_check.py.

        Raises:
            Unavailable: the database cannot be read.
        """
        return check_store(self.store, size, self.parallel)

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of entry ``seq``, if there is one."""
        return ledger_rows.hash_at(self.store, seq)

    def raw(self, batch: int = 20_000) -> Iterator[StoredEntry]:
        """Every stored row in sequence order, streamed."""
        cols = ledger_entries.c
        query = select(cols.seq, cols.id, cols.agreement, cols.period, cols.job_id,
                       cols.usage_id, cols.body, cols.hash).order_by(cols.seq)
        with self.store.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for r in result:
                yield StoredEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6].encode("utf-8"), r[7])

    def leaf_bodies(self, upto: int) -> list[bytes]:
        """Canonical bodies of entries with seq < upto, in order (for Merkle trees)."""
        query = (select(ledger_entries.c.body).where(ledger_entries.c.seq < upto)
                 .order_by(ledger_entries.c.seq))
        with self.store.transaction() as conn:
            return [b.encode("utf-8") for (b,) in conn.execute(query)]

    def head(self) -> tuple[int, str]:
        """(size of the chain, hash of its last entry)."""
        with self.store.transaction() as conn:
            seq, h = conn.execute(select(ledger_head.c.seq, ledger_head.c.hash)).one()
        return int(seq) + 1, str(h)

    def size(self) -> int:
        """Number of stored entry rows (the head may disagree if someone tampered)."""
        with self.store.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())

    def close(self, closure: Closure) -> None:
        """Record a period's closure.

        Raises:
            Conflict: the period is already closed.
        """
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(ledger_closures), [{
                    "period": closure.period, "tree_size": closure.tree_size,
                    "root": closure.root, "signed_head": closure.signed_head,
                    "closed_at": closure.closed_at}])
        except IntegrityError:
            raise Conflict(f"period {closure.period} is already closed") from None

    def closures(self) -> list[Closure]:
        """Closed periods, oldest first."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(ledger_closures).order_by(ledger_closures.c.period))
            return [Closure(r.period, int(r.tree_size), r.root, r.signed_head, r.closed_at)
                    for r in rows]


class _HeadMoved(Exception):
    pass
