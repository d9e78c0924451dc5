"""What a witness remembers, per log: the size and root it last cosigned (SQLAlchemy Core).

One table, ``witness_logs (origin PRIMARY KEY, size, root, updated_at)``, in a database of
the witness's own: SQLite by default (a file path), PostgreSQL by URL. The table is created
on first use; there is nothing to migrate.

The only write is :meth:`SqlWitnessState.advance`, a compare-and-swap in one transaction:
it changes the row only if it still holds the state the request was judged against, so
two concurrent requests can never roll the witness back (tlog-witness's race, where B
stores N+K and then A stores N). A lost race returns False and the caller judges again.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import BigInteger, Column, Float, LargeBinary, MetaData, String, Table, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from accord.adapters.sql.store import make_engine
from accord.domain.errors import Unavailable
from accord.domain.ledger.witness import EMPTY_STATE, LogState

METADATA = MetaData()
WITNESS_LOGS = Table(
    "witness_logs",
    METADATA,
    Column("origin", String(1024), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("updated_at", Float, nullable=False),
)


def state_url(state: str) -> str:
    """The database URL of ``--state``: a URL as given, else a SQLite file at that path."""
    if "://" in state:
        return state
    return f"sqlite:///{Path(state).expanduser().resolve()}"


class SqlWitnessState:
    """The witness's per-log state in a SQL database (see the module docstring)."""

    def __init__(self, url: str) -> None:
        """Open (and create the table of) the database at ``url``.

        Raises:
            Unavailable: the database cannot be reached or the table cannot be created.
        """
        self.engine: Engine = make_engine(url)
        try:
            METADATA.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise Unavailable(f"witness state {url.split('@')[-1]!r}: {exc}") from exc

    def get(self, origin: str) -> LogState:
        """The size and root last cosigned for ``origin`` (:data:`EMPTY_STATE` if none).

        Raises:
            Unavailable: the database cannot be reached.
        """
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(WITNESS_LOGS.c.size, WITNESS_LOGS.c.root)
                                   .where(WITNESS_LOGS.c.origin == origin)).first()
        except SQLAlchemyError as exc:
            raise Unavailable(f"witness state: {exc}") from exc
        return EMPTY_STATE if row is None else LogState(int(row[0]), bytes(row[1]))

    def advance(self, origin: str, old: LogState, new: LogState) -> bool:
        """Store ``new`` for ``origin`` if it still holds ``old``, in one transaction.

        Returns False, changing nothing, if another request moved the state first.

        Raises:
            Unavailable: the database cannot be reached.
        """
        values = {"o": origin, "os": old.size, "or": old.root, "ns": new.size, "nr": new.root,
                  "t": time.time()}
        try:
            with self.engine.begin() as conn:
                moved = conn.execute(text(
                    "UPDATE witness_logs SET size = :ns, root = :nr, updated_at = :t "
                    "WHERE origin = :o AND size = :os AND root = :or"), values).rowcount
                if moved == 0 and old == EMPTY_STATE:
                    moved = conn.execute(text(
                        "INSERT INTO witness_logs (origin, size, root, updated_at) "
                        "VALUES (:o, :ns, :nr, :t) ON CONFLICT (origin) DO NOTHING"), values).rowcount
        except SQLAlchemyError as exc:
            raise Unavailable(f"witness state: {exc}") from exc
        return bool(moved == 1)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
