"""The hub's side of the site-agent protocol in the SQL store: orders, the agents' reports,
host-signed usage, replay nonces, last-seen and loads, streamed logs
(see :class:`accord.ports.AgentStore` and ``docs/design/site-agent.md``).

Every write is idempotent by its id, so an order written twice, an acknowledgement or a
report delivered twice, or a chunk sent again after a lost answer changes nothing more.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from accord.adapters.sql.schema import (
    agent_logs,
    agent_nonces,
    agent_orders,
    agent_sites,
    agent_status,
    agent_usage,
)
from accord.adapters.sql.store import SqlStore
from accord.adapters.sql.upsert import insert_ignore
from accord.domain.agent.protocol import (
    LOG_JOB_BYTES,
    Ack,
    AgentSeen,
    AgentStatus,
    CheckedReport,
    LogChunk,
    Order,
    OrderKind,
    SignedUsage,
    Stream,
    order_id,
)
from accord.domain.errors import Conflict, Forbidden, NotFound
from accord.domain.jobs.site import RemoteState

PURGE_EVERY_S = 30.0  # how often expired nonces are deleted
SEEN_EVERY_S = 1.0  # a site's last_seen is written at most this often by one process (same key)


class SqlAgents:
    """The agent tables of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._changes: dict[str, int] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._purged = 0.0
        self._noted: dict[str, tuple[float, str]] = {}  # site -> (last_seen written, with key)

    # ------------------------------------------------------------ orders
    def add_order(self, order: Order) -> Order:
        """Store the order unless one with its id exists; the stored one.

        Raises:
            ValueError: the order's id is not :func:`order_id` of its reference and kind (the
                look-ups by reference go through the id, the table's primary key).
        """
        if order.id != order_id(order.ref, order.kind):
            raise ValueError(f"order id {order.id!r} is not {order_id(order.ref, order.kind)!r}")
        row = {
            "id": order.id,
            "site": order.site,
            "kind": order.kind.value,
            "ref": order.ref,
            "job_id": order.job_id,
            "created_at": order.created_at,
            "job": None if order.job is None else json.dumps(order.job, sort_keys=True),
        }
        with self.store.transaction() as conn:
            if insert_ignore(conn, agent_orders, [row], "id"):
                found = None
            else:
                found = (
                    conn.execute(select(agent_orders).where(agent_orders.c.id == order.id)).mappings().one()
                )
        if found is not None:
            return _order(found)
        self.store.after_commit(lambda: self._ring(order.site))
        return order

    def _ring(self, site: str) -> None:
        """Tell the site's long polls an order was committed for it. Raises nothing."""
        with self._lock:
            self._generation[site] = self._generation.get(site, 0) + 1
            listeners = list(self._listeners)
        self._changed(site)
        for listener in listeners:
            listener(site)

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(site)`` (from the committing thread) whenever :meth:`generation`
        of a site changes. It must return at once and raise nothing."""
        with self._lock:
            self._listeners.append(listener)

    def _changed(self, site: str) -> None:
        """Note that the site's orders or statuses changed (see :meth:`changes`). Raises nothing."""
        with self._lock:
            self._changes[site] = self._changes.get(site, 0) + 1

    def changes(self, site: str) -> int:
        """A number that changes whenever this process commits an order, acknowledgement,
        report or loss for ``site`` (the broker's poll re-reads statuses only then; changes
        another replica makes are found by its periodic look)."""
        return self._changes.get(site, 0)

    def generation(self, site: str) -> int:
        """A number that changes whenever this process writes an order for ``site`` (a long
        poll waits on it instead of asking the database; orders another replica writes are
        found by the poll's periodic look)."""
        return self._generation.get(site, 0)

    def live_dispatch(self, site: str, job_id: str) -> Order | None:
        """The latest dispatch order of the job at ``site`` that its agent has not disowned."""
        q = (
            select(agent_orders)
            .select_from(agent_orders.outerjoin(agent_status, agent_status.c.ref == agent_orders.c.ref))
            .where(
                agent_orders.c.site == site,
                agent_orders.c.job_id == job_id,
                agent_orders.c.kind == OrderKind.DISPATCH.value,
                (agent_status.c.lost.is_(None)) | (agent_status.c.lost == 0),
            )
            .order_by(agent_orders.c.created_at.desc())
            .limit(1)
        )
        with self.store.transaction() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else _order(row)

    def pending(self, site: str, limit: int) -> list[Order]:
        """Orders of ``site`` not yet acknowledged, oldest first."""
        q = (
            select(agent_orders)
            .where(agent_orders.c.site == site, agent_orders.c.acked_at.is_(None))
            .order_by(agent_orders.c.created_at, agent_orders.c.id)
            .limit(limit)
        )
        with self.store.transaction() as conn:
            return [_order(r) for r in conn.execute(q).mappings()]

    def backlog(self, site: str) -> int:
        """How many orders of ``site`` are not yet acknowledged."""
        q = select(func.count()).where(agent_orders.c.site == site, agent_orders.c.acked_at.is_(None))
        with self.store.transaction() as conn:
            return int(conn.execute(q).scalar_one())

    def ack(self, site: str, acks: Sequence[Ack], at: datetime) -> int:
        """Mark the orders delivered (again: no change); how many were new.

        Raises:
            NotFound: an order id the hub never issued (nothing is stored).
            Forbidden: an order of another site (nothing is stored).
        """
        return self.exchange(site, acks, [], at)[0]

    def report(self, site: str, reports: Sequence[CheckedReport], at: datetime) -> int:
        """Store what the agent says of its jobs, each with the digest of its signed usage
        (checked by the caller; kept with the report, once), in one transaction; a report no
        newer than the stored one changes nothing. How many changed.

        Raises:
            NotFound: a reference the hub never dispatched here. Forbidden: another site's.
            Conflict: a job already reported ended is reported ended differently.
        """
        return self.exchange(site, [], reports, at)[1]

    def exchange(
        self, site: str, acks: Sequence[Ack], reports: Sequence[CheckedReport], at: datetime
    ) -> tuple[int, int]:
        """:meth:`ack` and then :meth:`report` in one transaction (all or nothing): how many
        acknowledgements were new and how many reports changed something.

        Raises:
            NotFound, Forbidden, Conflict: as :meth:`ack` and :meth:`report` (nothing is stored).
        """
        if not acks and not reports:
            return 0, 0
        with self.store.transaction() as conn:
            new = _ack(conn, site, acks, at) if acks else 0
            changed = _report(conn, site, reports, at) if reports else 0
        if new or changed:
            self.store.after_commit(lambda: self._changed(site))
        return new, changed

    def signed_usage(self, digest: str) -> tuple[str, SignedUsage] | None:
        """The site and signed usage with this digest, if stored."""
        with self.store.transaction() as conn:
            r = conn.execute(select(agent_usage).where(agent_usage.c.digest == digest)).mappings().first()
        return None if r is None else (r["site"], SignedUsage(r["body"], r["key_id"], r["signature"]))

    def statuses(self, refs: Sequence[str]) -> dict[str, AgentStatus]:
        """What the agents last said of these references (and whether each was acknowledged)."""
        out: dict[str, AgentStatus] = {}
        with self.store.transaction() as conn:
            for part in _chunks(list(refs), 500):
                acked = dict(
                    conn.execute(
                        select(agent_orders.c.ref, agent_orders.c.acked_at).where(
                            agent_orders.c.id.in_(_dispatch_ids(part))
                        )
                    ).all()
                )
                rows = {
                    r["ref"]: r
                    for r in conn.execute(select(agent_status).where(agent_status.c.ref.in_(part))).mappings()
                }
                for ref in part:
                    if ref in acked:
                        out[ref] = _status(rows.get(ref), acked[ref] is not None)
        return out

    # ------------------------------------------------------------ liveness and resynchronisation
    def seen(
        self,
        site: str,
        at: datetime,
        key_id: str,
        loads: Mapping[str, Any] | None = None,
        synced: bool = False,
    ) -> None:
        """Note a request of the site's agent (with its loads, from a heartbeat)."""
        values: dict[str, Any] = {"last_seen": at, "key_id": key_id}
        if loads is not None:
            values["loads"] = json.dumps(loads, sort_keys=True)
        if synced:
            values["synced_at"] = at
        with self.store.transaction() as conn:
            if (
                conn.execute(update(agent_sites).where(agent_sites.c.site == site).values(**values)).rowcount
                == 0
            ):
                insert_ignore(conn, agent_sites, [{"site": site, "loads": "{}", **values}], "site")

    def last_seen(self, site: str) -> AgentSeen | None:
        """When the site's agent was last heard from, with the loads it last reported."""
        with self.store.transaction() as conn:
            r = conn.execute(select(agent_sites).where(agent_sites.c.site == site)).mappings().first()
        if r is None:
            return None
        return AgentSeen(site, r["last_seen"], json.loads(r["loads"]), r["key_id"], r["synced_at"])

    def expected(self, site: str) -> list[str]:
        """References the hub expects the site to hold: acknowledged and not reported ended."""
        q = (
            select(agent_orders.c.ref)
            .select_from(agent_orders.outerjoin(agent_status, agent_status.c.ref == agent_orders.c.ref))
            .where(
                agent_orders.c.site == site,
                agent_orders.c.kind == OrderKind.DISPATCH.value,
                agent_orders.c.acked_at.is_not(None),
            )
            .where((agent_status.c.state.is_(None)) | (agent_status.c.state.in_(["pending", "running"])))
            .where((agent_status.c.lost.is_(None)) | (agent_status.c.lost == 0))
        )
        with self.store.transaction() as conn:
            return sorted(conn.execute(q).scalars())

    def mark_lost(self, site: str, refs: Sequence[str], at: datetime) -> None:
        """The agent said, resynchronising, that it holds none of these (acknowledged) jobs."""
        with self.store.transaction() as conn:
            for ref in refs:
                row = {
                    "ref": ref,
                    "site": site,
                    "state": RemoteState.LOST.value,
                    "gpus": 0,
                    "gpu_seconds": 0.0,
                    "reason": "the site's agent no longer holds the job",
                    "lost": 1,
                    "updated_at": at,
                }
                if (
                    conn.execute(
                        update(agent_status)
                        .where(agent_status.c.ref == ref)
                        .values(lost=1, reason=row["reason"], updated_at=at)
                    ).rowcount
                    == 0
                ):
                    insert_ignore(conn, agent_status, [row], "ref")
        self.store.after_commit(lambda: self._changed(site))

    def accept(self, site: str, nonce: str, expires_at: float, at: datetime, key_id: str) -> bool:
        """Record a request's nonce and that the site's agent was heard from, in one
        transaction; False (and nothing recorded) if the nonce was seen before: a replay.
        ``last_seen`` is written at most every :data:`SEEN_EVERY_S` by this process unless the
        key changed; expired nonces are purged every :data:`PURGE_EVERY_S`."""
        now = at.timestamp()
        with self.store.transaction() as conn:
            if now - self._purged > PURGE_EVERY_S:
                conn.execute(delete(agent_nonces).where(agent_nonces.c.expires_at < now))
                self._purged = now
            if not insert_ignore(
                conn,
                agent_nonces,
                [{"site": site, "nonce": nonce, "expires_at": expires_at}],
                "site",
                "nonce",
            ):
                return False
            noted = self._noted.get(site)
            seen = noted is None or noted[1] != key_id or not 0 <= now - noted[0] < SEEN_EVERY_S
            if seen:
                _note_seen(conn, site, at, key_id)
        if seen:  # committed (or, inside a batch, once the batch is)
            self.store.after_commit(lambda: self._noted.__setitem__(site, (now, key_id)))
        return True

    def append_log(self, site: str, chunk: LogChunk) -> int:
        """Append a chunk at its offset (a chunk already held changes nothing; a gap is refused);
        the stream's size after it. Bytes past :data:`LOG_JOB_BYTES` are dropped and the
        stream marked cut.

        Raises:
            NotFound/Forbidden: a reference not dispatched to this site.
            Conflict: the chunk starts past the end of what is held (its expected offset said).
        """
        with self.store.transaction() as conn:
            dispatch = order_id(chunk.ref, OrderKind.DISPATCH)
            owner = conn.execute(select(agent_orders.c.site).where(agent_orders.c.id == dispatch)).scalar()
            _owned(site, [chunk.ref], {chunk.ref: owner} if owner else {}, "job reference")
            key = (agent_logs.c.ref == chunk.ref) & (agent_logs.c.stream == chunk.stream.value)
            row = conn.execute(select(agent_logs).where(key)).mappings().first()
            size = 0 if row is None else row["size"]
            if chunk.offset > size:
                raise Conflict(
                    f"log chunk at offset {chunk.offset}: the hub holds {size} bytes; send from {size}"
                )
            return _append(conn, chunk, row, size)

    def logs(self, ref: str) -> dict[Stream, tuple[bytes, bool]]:
        """Each stream's bytes held at the hub and whether it was cut."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(agent_logs).where(agent_logs.c.ref == ref)).mappings()
            return {Stream(r["stream"]): (bytes(r["data"]), bool(r["truncated"])) for r in rows}


def _add_usage(conn: Connection, site: str, ref: str, digest: str, signed: SignedUsage, at: datetime) -> None:
    """Keep the signed usage once (the same body again is no change).

    Raises:
        Conflict: the job already has a different signed usage.
    """
    old = conn.execute(select(agent_usage.c.digest).where(agent_usage.c.ref == ref)).scalar()
    if old is None:
        insert_ignore(
            conn,
            agent_usage,
            [
                {
                    "digest": digest,
                    "ref": ref,
                    "site": site,
                    "body": signed.body,
                    "key_id": signed.key_id,
                    "signature": signed.signature,
                    "received_at": at,
                }
            ],
            "digest",
        )
    elif old != digest:
        raise Conflict(f"job {ref} already has signed usage {old[:12]}…; a second, different one is refused")


def _append(conn: Connection, chunk: LogChunk, row: RowMapping | None, size: int) -> int:
    new = chunk.data[size - chunk.offset :]
    if not new and not (chunk.truncated and row is not None and not row["truncated"]):
        return size
    held = b"" if row is None else bytes(row["data"])
    room = max(0, LOG_JOB_BYTES - len(held))
    values = {
        "data": held + new[:room],
        "size": size + len(new),
        "truncated": int(chunk.truncated or len(new) > room or bool(row and row["truncated"])),
    }
    if row is None:
        conn.execute(insert(agent_logs), [{"ref": chunk.ref, "stream": chunk.stream.value, **values}])
    else:
        conn.execute(
            update(agent_logs)
            .where((agent_logs.c.ref == chunk.ref) & (agent_logs.c.stream == chunk.stream.value))
            .values(**values)
        )
    return size + len(new)


def _apply(
    conn: Connection, site: str, checked: CheckedReport, old: Mapping[str, Any] | None, at: datetime
) -> dict[str, Any] | None:
    """Store one report if it says something new (the same report again, or one of an
    earlier state, does not); the row stored, or None if nothing changed.

    Raises:
        Conflict: an ended job reported ended with other figures.
    """
    rep, digest = checked.report, checked.digest
    row = {
        "ref": rep.ref,
        "site": site,
        "state": rep.state.value,
        "local_id": rep.local_id or None,
        "started_at": rep.started_at,
        "ended_at": rep.ended_at,
        "exit_code": rep.exit_code,
        "gpus": rep.gpus,
        "gpu_seconds": rep.gpu_seconds,
        "energy_j": rep.energy_j,
        "reason": rep.reason,
        "attestation": digest,
        "account": checked.account or None,
        "local_user": checked.local_user or None,
        "lost": 0,
        "updated_at": at,
    }
    if old is None:
        insert_ignore(conn, agent_status, [row], "ref")
        return row
    was = RemoteState(old["state"])
    if was.is_final and was is not RemoteState.LOST:
        if rep.state.is_final and (old["attestation"] != digest or old["state"] != rep.state.value):
            raise Conflict(f"job {rep.ref} was reported {old['state']} before; a different end is refused")
        return None
    if _rank(rep.state) < _rank(was) or _same(old, row):
        return None
    conn.execute(update(agent_status).where(agent_status.c.ref == rep.ref).values(**row))
    return row


def _same(old: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether a report says nothing the stored one did not (its time of arrival aside)."""
    return all(old[k] == v for k, v in row.items() if k != "updated_at")


def _rank(state: RemoteState) -> int:
    return {RemoteState.PENDING: 0, RemoteState.RUNNING: 1}.get(state, 2)



def _ack(conn: Connection, site: str, acks: Sequence[Ack], at: datetime) -> int:
    ids = [a.order for a in acks]
    rows = {
        r["id"]: r
        for r in conn.execute(
            select(agent_orders.c.id, agent_orders.c.site, agent_orders.c.acked_at).where(
                agent_orders.c.id.in_(ids)
            )
        ).mappings()
    }
    _owned(site, ids, {i: r["site"] for i, r in rows.items()}, "order")
    new = 0
    for a in {a.order: a for a in reversed(acks)}.values():  # an order twice: its first ack
        if rows[a.order]["acked_at"] is None:
            conn.execute(
                update(agent_orders)
                .where(agent_orders.c.id == a.order)
                .values(acked_at=at, local_id=a.local_id or None)
            )
            new += 1
    return new


def _report(conn: Connection, site: str, reports: Sequence[CheckedReport], at: datetime) -> int:
    refs = [c.report.ref for c in reports]
    owners = dict(
        conn.execute(
            select(agent_orders.c.ref, agent_orders.c.site).where(agent_orders.c.id.in_(_dispatch_ids(refs)))
        ).all()
    )
    _owned(site, refs, owners, "job reference")
    current: dict[str, Any] = {
        r["ref"]: r for r in conn.execute(select(agent_status).where(agent_status.c.ref.in_(refs))).mappings()
    }
    changed = 0
    for checked in reports:
        rep, digest = checked.report, checked.digest
        if digest is not None and rep.usage is not None:
            _add_usage(conn, site, rep.ref, digest, rep.usage, at)
        row = _apply(conn, site, checked, current.get(rep.ref), at)
        if row is not None:  # a later report of the same job in this batch sees this one
            current[rep.ref], changed = row, changed + 1
    return changed


def _note_seen(conn: Connection, site: str, at: datetime, key_id: str) -> None:
    values = {"last_seen": at, "key_id": key_id}
    if conn.execute(update(agent_sites).where(agent_sites.c.site == site).values(**values)).rowcount == 0:
        insert_ignore(conn, agent_sites, [{"site": site, "loads": "{}", **values}], "site")


def _dispatch_ids(refs: Sequence[str]) -> list[str]:
    """The ids of the dispatch orders of ``refs`` (found by the primary key, not a scan)."""
    return [order_id(r, OrderKind.DISPATCH) for r in refs]


def _owned(site: str, ids: Sequence[str], owners: Mapping[str, str], what: str) -> None:
    missing = [i for i in ids if i not in owners]
    if missing:
        raise NotFound(f"{what} {missing[0]!r} was never sent to site {site!r}")
    foreign = [i for i in ids if owners[i] != site]
    if foreign:
        raise Forbidden(f"{what} {foreign[0]!r} belongs to another site; agent of {site!r} may not touch it")


def _status(row: RowMapping | None, acked: bool) -> AgentStatus:
    if row is None:
        return AgentStatus(RemoteState.PENDING, acked)
    return AgentStatus(
        RemoteState.LOST if row["lost"] else RemoteState(row["state"]),
        acked,
        row["local_id"] or "",
        row["started_at"],
        row["ended_at"],
        row["exit_code"],
        row["gpus"],
        row["gpu_seconds"],
        row["energy_j"],
        row["reason"],
        row["attestation"],
        row["account"] or "",
        row["local_user"] or "",
    )


def _order(r: RowMapping) -> Order:
    return Order(
        r["id"],
        r["site"],
        OrderKind(r["kind"]),
        r["ref"],
        r["job_id"],
        r["created_at"],
        None if r["job"] is None else json.loads(r["job"]),
        r["acked_at"],
    )


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
