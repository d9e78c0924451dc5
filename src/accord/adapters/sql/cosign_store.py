"""The hub's record of its witnesses' cosignatures (tables of migration 0012).

``witness_status`` holds, per witness, the tree size it last cosigned — the ``old`` size the
hub sends it next (C2SP tlog-witness) — and the last attempt's error; ``witness_cosignatures``
every cosignature collected, one per witness and size. A witness's size only grows: a
cosignature of a smaller tree than the stored one (two collections racing) is stored but does
not move the size back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, RowMapping, and_, delete, func, select, update

from accord.adapters.sql.schema import witness_cosignatures, witness_status
from accord.adapters.sql.store import SqlStore
from accord.adapters.sql.upsert import insert_ignore
from accord.domain.ledger.merkle import EMPTY_ROOT
from accord.ports.witnesses import StoredCosignature, WitnessStatus


class SqlCosignatures:
    """:class:`~accord.ports.witnesses.CosignatureStore` over the store's database."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def statuses(self) -> dict[str, WitnessStatus]:
        """Every witness the hub has tried, by name.

        Raises:
            Unavailable: the database cannot be reached.
        """
        with self.store.transaction() as conn:
            rows = conn.execute(select(witness_status)).mappings().all()
        return {r["witness"]: WitnessStatus(r["witness"], int(r["size"]), bytes.fromhex(r["root"]),
                                            r["error"], r["attempted_at"], r["cosigned_at"])
                for r in rows}

    def record_failure(self, witness: str, error: str, at: datetime) -> None:
        """The last attempt at ``witness`` failed (its size is kept).

        Raises:
            Unavailable: the database cannot be reached.
        """
        with self.store.transaction() as conn:
            _ensure(conn, witness, at)
            conn.execute(update(witness_status).where(witness_status.c.witness == witness)
                         .values(error=error[:2000], attempted_at=at))

    def record_cosignature(self, cosignature: StoredCosignature, at: datetime) -> None:
        """Store ``cosignature`` (once per witness and size) and advance the witness's size.

        Raises:
            Unavailable: the database cannot be reached.
        """
        c = cosignature
        with self.store.transaction() as conn:
            _ensure(conn, c.witness, at)
            insert_ignore(conn, witness_cosignatures, [{
                "witness": c.witness, "size": c.size, "root": c.root.hex(), "origin": c.origin,
                "signature": c.signature, "timestamp": c.timestamp}], "witness", "size")
            conn.execute(update(witness_status).where(witness_status.c.witness == c.witness)
                         .values(error=None, attempted_at=at, cosigned_at=at))
            conn.execute(update(witness_status).where(
                witness_status.c.witness == c.witness, witness_status.c.size <= c.size)
                .values(size=c.size, root=c.root.hex()))

    def covering(self, size: int) -> dict[str, StoredCosignature]:
        """Per witness, its cosignature of the smallest tree of at least ``size`` entries.

        Raises:
            Unavailable: the database cannot be reached.
        """
        t = witness_cosignatures.c
        smallest = (select(t.witness, func.min(t.size).label("size")).where(t.size >= size)
                    .group_by(t.witness).subquery())
        query = select(witness_cosignatures).join(
            smallest, and_(t.witness == smallest.c.witness, t.size == smallest.c.size))
        with self.store.transaction() as conn:
            return {r["witness"]: _cosignature(r) for r in conn.execute(query).mappings()}

    def cosignatures(self) -> list[StoredCosignature]:
        """Every stored cosignature, by witness then size.

        Raises:
            Unavailable: the database cannot be reached.
        """
        t = witness_cosignatures.c
        with self.store.transaction() as conn:
            rows = conn.execute(select(witness_cosignatures).order_by(t.witness, t.size)).mappings()
            return [_cosignature(r) for r in rows]


    def prune(self, closed_sizes: Sequence[int]) -> int:
        """Delete the cosignatures no statement and no check needs: per witness, all but its
        largest and, for each closed size, its smallest of at least that size. At most
        ``len(closed_sizes) + 1`` rows per witness remain; how many were deleted.

        Raises:
            Unavailable: the database cannot be reached.
        """
        t = witness_cosignatures.c
        with self.store.transaction() as conn:
            rows = conn.execute(select(t.witness, t.size).order_by(t.witness, t.size)).all()
            by_witness: dict[str, list[int]] = {}
            for witness, size in rows:
                by_witness.setdefault(witness, []).append(int(size))
            gone = [(w, n) for w, sizes in by_witness.items() for n in sizes
                    if n not in _kept(sizes, closed_sizes)]
            for w, n in gone:
                conn.execute(delete(witness_cosignatures).where(t.witness == w, t.size == n))
        return len(gone)


def _kept(sizes: list[int], closed_sizes: Sequence[int]) -> set[int]:
    """The largest of ``sizes`` (sorted) and the smallest at least each closed size."""
    kept = {sizes[-1]}
    for closed in closed_sizes:
        kept |= {next((n for n in sizes if n >= closed), sizes[-1])}
    return kept


def _ensure(conn: Connection, witness: str, at: datetime) -> None:
    """A status row for ``witness`` (size 0) if it has none."""
    if conn.execute(select(witness_status.c.witness).where(witness_status.c.witness == witness)).first():
        return
    insert_ignore(conn, witness_status, [{
        "witness": witness, "size": 0, "root": EMPTY_ROOT.hex(), "error": None, "attempted_at": at,
        "cosigned_at": None}], "witness")


def _cosignature(r: RowMapping) -> StoredCosignature:
    return StoredCosignature(r["witness"], int(r["size"]), bytes.fromhex(r["root"]), r["origin"],
                             r["signature"], int(r["timestamp"]))



