"""The migrations build exactly the tables that ``schema.py`` declares (SQLite and
PostgreSQL): a column added to one and not the other fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from accord.adapters.sql.schema import metadata
from accord.adapters.sql.store import SqlStore


def test_migrations_match_the_declared_schema(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        store.close()
    assert diff == [], diff
