"""Open a store that must already exist, creating and changing nothing: for commands that
only read (``accord ledger verify``), where opening the wrong URL must be an error, never a
new empty database that then "verifies" (:class:`~accord.adapters.sql.store.SqlStore`
creates and migrates what it opens)."""

from __future__ import annotations

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from accord.adapters.sql.store import MIGRATIONS, SqlStore, normalise_url
from accord.domain.errors import NotFound, Unavailable


def shown(url: str) -> str:
    """``url`` with its password hidden, to print.

    >>> shown("postgresql://accord:s3cret@db.example/accord")
    'postgresql://accord:***@db.example/accord'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database, or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_existing(url: str) -> SqlStore:
    """The Accord store at ``url``, which must exist and hold Accord's schema at the
    revision this version of Accord writes; nothing is created or migrated.

    Raises:
        NotFound: no database there (a SQLite file that does not exist, SQLite in memory), or
            one that holds no Accord ledger, or one at another schema revision.
        Unavailable: the URL is not usable, or the database cannot be reached.
    """
    file = sqlite_file(url)
    if normalise_url(url).startswith("sqlite") and (file is None or not file.is_file()):
        raise NotFound(f"no database at {shown(url)}: "
                       + (f"{file} does not exist" if file else "SQLite in memory holds nothing"))
    store = SqlStore(url, auto_migrate=False)
    try:
        _check_schema(store, url)
    except BaseException:
        store.close()
        raise
    return store


def _check_schema(store: SqlStore, url: str) -> None:
    """Raises:
        NotFound: no ledger table, or another schema revision than this Accord's.
        Unavailable: the database cannot be reached."""
    try:
        with store.engine.connect() as conn:
            tables = inspect(conn).has_table("ledger_entries")
            revision = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise Unavailable(f"cannot read the database at {shown(url)}: "
                          f"{str(getattr(exc, 'orig', exc)).strip()}") from None
    if not tables:
        raise NotFound(f"the database at {shown(url)} holds no Accord ledger (no ledger_entries table)")
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if revision != head:
        raise NotFound(f"the database at {shown(url)} is at schema revision {revision}, this Accord "
                       f"reads {head}: start 'accord up' of this version on it once (it migrates), or "
                       "verify with the Accord that wrote it")
