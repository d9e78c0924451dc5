"""Reading stored ledger rows, raw: what both the ledger store (:mod:`.ledger_store`) and the
ledger check (:mod:`.ledger_check`, whose workers read their slices over their own
connections) need, so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from accord.adapters.sql.schema import ledger_entries
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import Unavailable


def rows(store: SqlStore, start: int | None = 0, stop: int | None = None, batch: int = 20_000
         ) -> Iterator[Sequence[tuple[Any, ...]]]:
    """Stored rows with start <= seq < stop as (seq, id, agreement, period, job_id,
    usage_id, body bytes, hash), in sequence order, in batches (raw driver cursor).

    A bound of ``None`` is no bound: ``rows(store, None, None)`` is every stored row,
    whatever its ``seq`` (even one slipped in below 0).

    Raises:
        Unavailable: the database cannot be read.
    """
    sqlite = store.engine.dialect.name == "sqlite"
    body = "CAST(body AS BLOB)" if sqlite else "convert_to(body, 'UTF8')"
    mark = "?" if sqlite else "%s"
    where = [f"seq {op} {mark}" for op, v in ((">=", start), ("<", stop)) if v is not None]
    sql = (f"SELECT seq, id, agreement, period, job_id, usage_id, {body}, hash "
           f"FROM ledger_entries {'WHERE ' if where else ''}{' AND '.join(where)} "
           "ORDER BY seq")
    driver_error = store.engine.dialect.loaded_dbapi.Error
    try:
        raw = store.engine.raw_connection()
    except SQLAlchemyError as exc:
        raise Unavailable(f"cannot read the ledger: {exc}") from exc
    try:
        cur = raw.cursor()
        cur.execute(sql, tuple(v for v in (start, stop) if v is not None))
        while chunk := cur.fetchmany(batch):
            yield chunk  # both drivers give the body as bytes already
    except driver_error as exc:
        raise Unavailable(f"cannot read the ledger: {exc}") from exc
    finally:
        raw.close()


def hash_at(store: SqlStore, seq: int) -> str | None:
    """The stored hash of entry ``seq``, if there is one."""
    with store.transaction() as conn:
        return conn.execute(select(ledger_entries.c.hash).where(
            ledger_entries.c.seq == seq)).scalar_one_or_none()
