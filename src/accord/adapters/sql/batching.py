"""Write batches: many store transactions of one thread committed as one.

Inside :meth:`SqlStore.batch <accord.adapters.sql.store.SqlStore.batch>`, every
``transaction()`` of the thread (jobs, usage, agent orders, access: every SQL store over the
same engine) becomes a SAVEPOINT in one database transaction, begun at the first of them: a
failure rolls back only its own piece, and the whole batch commits at once at
:meth:`Batch.flush` (one fence check, one commit, one fsync instead of one per job). The
dispatcher's pass uses it; everything else keeps one transaction per call.

What is committed when: nothing before the batch's owner calls :meth:`Batch.flush` (it does so
before any call to a site outside the store, so a write-ahead record is durable before the
action it guards, and whenever :meth:`Batch.due` says the batch is old or large enough), and
nothing at all if an exception leaves the batch. Hooks registered with
:meth:`Batch.after_commit` (e.g. ringing an agent's order bell) run only once their writes are
committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from accord.adapters.sql.fencing import check_fence
from accord.domain.errors import Unavailable

MAX_WRITES = 100   # savepoints a batch holds before it is due
MAX_OPEN_S = 0.05  # seconds a batch holds its transaction (SQLite: the write lock) before it is due
YIELD_S = 0.1      # at most this long a batch waits for earlier transactions before it begins


class Turns:
    """The other threads' store transactions in flight, so that a batch lets those waiting
    for SQLite's write lock go first (SQLite's busy handler sleeps and retries: a batch that
    took the lock again at once after each commit would starve them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._issued = 0
        self._active: set[int] = set()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Count one transaction in flight while the block runs. Raises nothing itself."""
        with self._cond:
            self._issued += 1
            ticket = self._issued
            self._active.add(ticket)
        try:
            yield
        finally:
            with self._cond:
                self._active.discard(ticket)
                self._cond.notify_all()

    def wait_for_earlier(self, timeout: float = YIELD_S) -> None:
        """Wait (at most ``timeout`` seconds) until every transaction in flight now has
        ended; later ones do not hold the caller back. Raises nothing."""
        with self._cond:
            last = self._issued
            self._cond.wait_for(lambda: not any(t <= last for t in self._active), timeout)


@dataclass
class Batch:
    """One thread's open batch over ``engine`` (see the module's docstring)."""

    engine: Engine
    turns: Turns | None = None
    max_writes: int = MAX_WRITES
    max_open_s: float = MAX_OPEN_S
    conn: Connection | None = None
    opened: float = 0.0
    writes: int = 0
    depth: int = 0
    hooks: list[Callable[[], None]] = field(default_factory=list)

    def connection(self) -> Connection:
        """The batch's connection, its transaction begun (and fenced) on first use.

        Raises:
            Unavailable: the database cannot be reached or stays locked.
            LeaseLost: this thread works under a lease another replica has taken.
        """
        if self.conn is None:
            if self.turns is not None:
                self.turns.wait_for_earlier()
            conn = self.engine.connect()
            try:
                if conn.dialect.name == "sqlite":   # take the write lock now: no upgrade later
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                check_fence(conn)
            except BaseException:
                _close(conn)
                raise
            self.conn, self.opened = conn, time.monotonic()
        return self.conn

    def due(self) -> bool:
        """Whether the batch has held its transaction long enough, or gathered enough."""
        return self.conn is not None and (
            self.writes >= self.max_writes or time.monotonic() - self.opened >= self.max_open_s)

    def flush_if_due(self) -> None:
        """:meth:`flush` if :meth:`due`. Raises as :meth:`flush`."""
        if self.due():
            self.flush()

    def flush(self) -> None:
        """Commit what the batch holds (fenced once more first), then run its hooks; the next
        write begins a new transaction. Nothing to commit: nothing happens.

        Raises:
            Unavailable: the commit failed (nothing of the batch was written).
            LeaseLost: the lease was lost meanwhile (nothing of the batch was written).
        """
        conn, hooks = self.conn, self.hooks
        if conn is None:
            return
        self.conn, self.hooks, self.writes = None, [], 0
        try:
            check_fence(conn)
            conn.commit()
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig}") from exc
        finally:
            _close(conn)
        for hook in hooks:
            hook()

    def rollback(self) -> None:
        """Drop what the batch holds (its hooks too). Raises nothing."""
        conn = self.conn
        self.conn, self.hooks, self.writes = None, [], 0
        if conn is not None:
            _close(conn)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once what the batch holds now is committed (at once if it holds
        nothing). Raises what ``hook`` raises when run at once."""
        if self.conn is None:
            hook()
        else:
            self.hooks.append(hook)

    @contextmanager
    def savepoint(self) -> Iterator[Connection]:
        """One store transaction inside the batch: a SAVEPOINT, rolled back alone on failure.

        Raises:
            Unavailable: the database cannot be reached.
            LeaseLost: as :meth:`connection`.
        """
        conn = self.connection()
        # Plain SQL, not Connection.begin_nested(): SQLAlchemy compiles a fresh SAVEPOINT
        # clause each time, which cost the dispatcher more than the writes it guards.
        name = f"accord_b{self.depth}"
        self.depth += 1
        try:
            conn.exec_driver_sql(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                self._undo(conn, name)
                raise
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig}") from exc
        finally:
            self.depth -= 1
        self.writes += 1

    def _undo(self, conn: Connection, name: str) -> None:
        """Roll back to savepoint ``name`` (a failure there drops the whole batch).

        Raises:
            Unavailable: the rollback failed (the batch is dropped).
        """
        try:
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
        except Exception as exc:
            self.rollback()
            raise Unavailable(f"database unavailable: cannot roll back a write: {exc}") from exc


def _close(conn: Connection) -> None:
    """Roll back whatever is still open and give the connection back. Raises nothing."""
    with suppress(Exception):   # a broken connection: closing it is all that is left
        conn.rollback()
    with suppress(Exception):
        conn.close()


_OPEN: ContextVar[Batch | None] = ContextVar("accord_batch", default=None)


def open_batch(engine: Engine) -> Batch | None:
    """This thread's open batch over ``engine``, if any. Raises nothing."""
    batch = _OPEN.get()
    return batch if batch is not None and batch.engine is engine else None


@contextmanager
def batching(engine: Engine, turns: Turns | None = None) -> Iterator[Batch]:
    """Batch this thread's store transactions over ``engine`` until the block ends (then
    flushed; on an exception rolled back). Nested: the outer batch is used.

    Raises:
        Unavailable, LeaseLost: as :meth:`Batch.flush`.
    """
    existing = open_batch(engine)
    if existing is not None:
        yield existing
        return
    batch = Batch(engine, turns)
    token = _OPEN.set(batch)
    try:
        yield batch
        batch.flush()
    finally:
        batch.rollback()
        _OPEN.reset(token)
