"""Leases in the shared database: which replica of a hub does the work only one may do
(dispatching, polling sites, posting to the ledger, collecting logs), until when, and under
which fencing epoch. See ``docs/design/replicas.md``.

Time is the database's clock, never a replica's: a lease row holds its expiry in the
database's seconds, and a replica takes it over only once the database says it has expired.
Each new holder increments ``epoch``; :func:`fenced` makes every store transaction of the
calling thread first check, under a share lock on the lease row, that the epoch is still its
own, so a replica that lost the lease (paused, partitioned) cannot write after another took
over: its transaction raises :class:`~accord.domain.errors.LeaseLost` and changes nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import text

from accord.adapters.sql.fencing import Fence, fenced, now_sql
from accord.adapters.sql.store import SqlStore


class SqlLease:
    """One named lease in ``store``'s database; see :class:`accord.ports.Lease`."""

    def __init__(self, store: SqlStore, name: str, margin_s: float = 0.0) -> None:
        self.store = store
        self.name = name
        self.margin_s = margin_s

    def acquire(self, holder: str, ttl_s: float) -> int | None:
        """Take the lease if it is free or expired (by the database's clock), with a new
        epoch; the epoch, or None while another holds it."""
        with self.store.transaction() as conn:
            now = now_sql(conn)
            row = conn.execute(text(
                "INSERT INTO hub_leases (name, holder, epoch, expires_at) "
                f"VALUES (:n, :h, 1, {now} + :ttl) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "epoch = hub_leases.epoch + 1, expires_at = excluded.expires_at "
                f"WHERE hub_leases.expires_at < {now} OR hub_leases.holder = excluded.holder "
                "RETURNING epoch"), {"n": self.name, "h": holder, "ttl": ttl_s}).first()
        return None if row is None else int(row[0])

    def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        """Extend the lease by ``ttl_s`` from now; False if it is no longer ours."""
        with self.store.transaction() as conn:
            row = conn.execute(text(
                f"UPDATE hub_leases SET expires_at = {now_sql(conn)} + :ttl "
                "WHERE name = :n AND holder = :h AND epoch = :e RETURNING epoch"),
                {"n": self.name, "h": holder, "e": epoch, "ttl": ttl_s}).first()
        return row is not None

    def release(self, holder: str, epoch: int) -> None:
        """Give the lease up now (a clean stop), so a standby need not wait for it to expire."""
        with self.store.transaction() as conn:
            conn.execute(text("UPDATE hub_leases SET expires_at = 0 "
                              "WHERE name = :n AND holder = :h AND epoch = :e"),
                         {"n": self.name, "h": holder, "e": epoch})

    def fenced(self, holder: str, epoch: int) -> AbstractContextManager[None]:
        """See :meth:`accord.ports.Lease.fenced`."""
        return fenced(Fence(self.name, holder, epoch, self.margin_s))

    def holder(self) -> tuple[str, int, float] | None:
        """The current holder, its epoch and the seconds its lease has left (negative:
        expired), by the database's clock; None if never taken."""
        with self.store.transaction() as conn:
            row = conn.execute(text(f"SELECT holder, epoch, expires_at - {now_sql(conn)} "
                                    "FROM hub_leases WHERE name = :n"), {"n": self.name}).first()
        return None if row is None else (str(row[0]), int(row[1]), float(row[2]))
