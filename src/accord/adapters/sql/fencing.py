"""Fencing: the check every store transaction makes first when its thread works under a
lease (see :mod:`accord.adapters.sql.lease` and ``docs/design/replicas.md``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Connection, text

from accord.domain.errors import LeaseLost


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a thread's transactions must still hold: its name, holder and epoch, with
    at least ``margin_s`` left on the database's clock."""

    name: str
    holder: str
    epoch: int
    margin_s: float = 0.0


_FENCE: ContextVar[Fence | None] = ContextVar("accord_fence", default=None)


def now_sql(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return "extract(epoch from clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


@contextmanager
def fenced(fence: Fence) -> Iterator[None]:
    """Within this block, every transaction of this thread checks ``fence`` first."""
    token = _FENCE.set(fence)
    try:
        yield
    finally:
        _FENCE.reset(token)


def check_fence(conn: Connection) -> None:
    """At the start of a transaction: if this thread works under a fence, hold the lease row
    (a share lock until commit, so no takeover commits meanwhile) and check it is still ours
    with more than the margin left, so that what the thread does right after the commit (a
    call to a site) starts before anyone else may take over.

    Raises:
        LeaseLost: the lease has another holder or epoch now.
    """
    fence = _FENCE.get()
    if fence is None:
        return
    lock = " FOR SHARE" if conn.dialect.name == "postgresql" else ""
    row = conn.execute(text(f"SELECT holder, epoch, expires_at - {now_sql(conn)} "
                            f"FROM hub_leases WHERE name = :n{lock}"), {"n": fence.name}).first()
    if row is None or row[0] != fence.holder or int(row[1]) != fence.epoch:
        held = "nobody" if row is None else f"{row[0]} (epoch {row[1]})"
        raise LeaseLost(f"lease {fence.name!r} is held by {held}, not by this replica "
                        f"({fence.holder}, epoch {fence.epoch}); nothing was written")
    if float(row[2]) <= fence.margin_s:
        raise LeaseLost(f"lease {fence.name!r} has {float(row[2]):.1f} s left, under the "
                        f"{fence.margin_s} s margin (not renewed in time); nothing was written")
