"""The site agent's own small state: a SQLite file in its work directory
(:class:`accord.ports.AgentState`; ``docs/design/site-agent.md``, "Crashes").

It holds every order the agent took (by id: an order delivered twice is taken once), the
site scheduler's id of each job, whether a submission may be in flight (written ahead, so a
crash between ``sbatch`` and the write is looked up, never submitted again), the last state
the hub acknowledged for each job, and how much of each output stream the hub has.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from accord.domain.agent.protocol import HeldJob, Order, OrderKind, Stream
from accord.domain.enforcement.planner import Tree, parse_tree, tree_doc
from accord.domain.jobs.codec import iso, parse_iso
from accord.domain.jobs.site import RemoteState

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, job_id TEXT NOT NULL,
  job TEXT, received_at TEXT NOT NULL, acked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
  ref TEXT PRIMARY KEY, job_id TEXT NOT NULL, job TEXT NOT NULL, local_id TEXT,
  submitting INTEGER NOT NULL DEFAULT 0, cancel INTEGER NOT NULL DEFAULT 0,
  reported TEXT, done INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS kept (
  key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
  ref TEXT NOT NULL, stream TEXT NOT NULL, sent INTEGER NOT NULL, cut INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ref, stream));
"""


class SqliteAgentState:
    """The agent's state in ``work_dir/agent.db`` (one agent per work directory)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def take(self, orders: Sequence[Order], at: datetime) -> list[Order]:
        """Keep the orders (a dispatch also becomes a held job) in one transaction, so one
        answer's orders cost one write to disk; those not taken before, in their order."""
        with self._tx() as db:
            return [o for o in orders if _take(db, o, at)]

    def unacked(self) -> list[tuple[str, str]]:
        """Orders taken but not yet acknowledged to the hub: (order id, local id)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT o.id, COALESCE(j.local_id, '') FROM orders o LEFT JOIN jobs j "
                "ON j.ref = o.ref WHERE o.acked = 0 ORDER BY o.received_at"
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def acked(self, order_ids: list[str]) -> None:
        """The hub has these acknowledgements."""
        with self._tx() as db:
            db.executemany("UPDATE orders SET acked = 1 WHERE id = ?", [(i,) for i in order_ids])

    def held(self) -> list[HeldJob]:
        """Every job not yet reported ended to the hub."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT ref, job_id, job, local_id, submitting, cancel, reported, note "
                "FROM jobs WHERE done = 0 ORDER BY rowid"
            ).fetchall()
        return [
            HeldJob(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                bool(r[4]),
                bool(r[5]),
                RemoteState(r[6]) if r[6] else None,
                r[7],
            )
            for r in rows
        ]

    def submitting(self, ref: str) -> None:
        """A submission of the job may be in flight from now (look it up after a crash)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET submitting = 1 WHERE ref = ?", (ref,))

    def submitted(self, ref: str, local_id: str) -> None:
        """The site's scheduler holds the job as ``local_id``."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET local_id = ?, submitting = 0, note = '' WHERE ref = ?", (local_id, ref)
            )

    def note(self, ref: str, text: str) -> None:
        """Why the job waits at the agent (told to the hub in its next report)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET note = ? WHERE ref = ?", (text[:500], ref))

    def reported(self, ref: str, state: RemoteState) -> None:
        """The hub took a report of ``state`` (a final one ends the agent's care of the job)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET reported = ?, done = ? WHERE ref = ?",
                (state.value, int(state.is_final), ref),
            )

    def log_sent(self, ref: str, stream: Stream) -> tuple[int, bool]:
        """Bytes of the stream the hub has, and whether the agent cut it."""
        with self._tx() as db:
            row = db.execute(
                "SELECT sent, cut FROM logs WHERE ref = ? AND stream = ?", (ref, stream.value)
            ).fetchone()
        return (0, False) if row is None else (int(row[0]), bool(row[1]))

    def set_log_sent(self, ref: str, stream: Stream, sent: int, cut: bool) -> None:
        """Record what the hub has of the stream."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO logs (ref, stream, sent, cut) VALUES (?, ?, ?, ?) ON CONFLICT (ref, stream) "
                "DO UPDATE SET sent = excluded.sent, cut = excluded.cut",
                (ref, stream.value, sent, int(cut)),
            )

    def received_at(self, order_id: str) -> datetime | None:
        """When the agent took the order."""
        with self._tx() as db:
            row = db.execute("SELECT received_at FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else parse_iso(row[0])

    def load_tree(self) -> Tree | None:
        """See :class:`accord.ports.enforcement.AppliedTree` (an unreadable one is None: the
        next sync then treats every difference as a change at the hub)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM kept WHERE key = 'applied_tree'").fetchone()
        try:
            return None if row is None else parse_tree(json.loads(row[0]))
        except ValueError:
            return None

    def save_tree(self, tree: Tree) -> None:
        """See :class:`accord.ports.enforcement.AppliedTree`."""
        doc = json.dumps(tree_doc(tree), separators=(",", ":"))
        with self._tx() as db:
            db.execute("INSERT INTO kept (key, value) VALUES ('applied_tree', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (doc,))

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def _take(db: sqlite3.Connection, order: Order, at: datetime) -> bool:
    cur = db.execute(
        "INSERT OR IGNORE INTO orders (id, kind, ref, job_id, job, received_at) VALUES (?, ?, ?, ?, ?, ?)",
        (order.id, order.kind.value, order.ref, order.job_id, json.dumps(order.job), iso(at)),
    )
    if cur.rowcount == 0:
        return False
    if order.kind is OrderKind.DISPATCH:
        db.execute(
            "INSERT OR IGNORE INTO jobs (ref, job_id, job) VALUES (?, ?, ?)",
            (order.ref, order.job_id, json.dumps(order.job)),
        )
    else:
        db.execute("UPDATE jobs SET cancel = 1 WHERE ref = ?", (order.ref,))
    return True
