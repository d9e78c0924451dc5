"""``INSERT ... ON CONFLICT DO NOTHING`` as one cached statement per table, dialect and key.

A statement built with ``.values(rows)`` is compiled afresh on every call (its shape depends
on the rows); this one is built once and executed with the rows as parameters, so SQLAlchemy
compiles it once per set of columns.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert


@cache
def _statement(dialect: str, table: Table, keys: tuple[str, ...]) -> ReturningInsert[tuple[Any]]:
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[keys[0]])
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[keys[0]])


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], *keys: str) -> list[Any]:
    """Insert the rows whose ``keys`` are new; the first key of each row that was (counted by
    RETURNING: a driver's rowcount for ``ON CONFLICT DO NOTHING`` is not to be trusted,
    psycopg's is -1). Raises what the database raises for other constraint failures."""
    if not rows:
        return []
    return [r[0] for r in conn.execute(_statement(conn.dialect.name, table, keys), rows).all()]
