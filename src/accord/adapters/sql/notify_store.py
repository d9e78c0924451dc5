"""Notifications in the SQL store: preferences, the outbox of notices, and their deliveries
(see :class:`accord.ports.NotifyStore` and ``docs/design/notifications.md``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from accord.adapters.sql import notify_rows
from accord.adapters.sql.schema import (
    allocations,
    notify_deliveries,
    notify_notices,
    notify_prefs,
    projects,
    role_grants,
    users,
)
from accord.adapters.sql.store import SqlStore
from accord.adapters.sql.upsert import insert_ignore
from accord.domain.notify.rules import (
    Channel,
    Delivery,
    DeliveryState,
    Notice,
    NoticeKind,
    Preferences,
    delivery_id,
)


class SqlNotifications:
    """The notification tables of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # ------------------------------------------------------------ preferences
    def prefs(self, user: str) -> Preferences | None:
        """The person's preferences, or None if never set."""
        with self.store.transaction() as conn:
            row = conn.execute(select(notify_prefs).where(notify_prefs.c.user_id == user)).mappings().first()
        if row is None:
            return None
        return Preferences(user, row["email"], bool(row["email_on"]), row["webhook_url"],
                           row["webhook_secret"], frozenset(NoticeKind(k) for k in json.loads(row["kinds"])))

    def save_prefs(self, p: Preferences, at: datetime) -> None:
        """Store the person's preferences (replacing any)."""
        values = {"email": p.email, "email_on": int(p.email_on), "webhook_url": p.webhook_url,
                  "webhook_secret": p.webhook_secret, "updated_at": at,
                  "kinds": json.dumps(sorted(k.value for k in p.kinds))}
        with self.store.transaction() as conn:
            done = conn.execute(update(notify_prefs).where(notify_prefs.c.user_id == p.user).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(notify_prefs).values(user_id=p.user, **values))

    def user_email(self, user: str) -> str | None:
        """The address the person was enrolled with, if any."""
        with self.store.transaction() as conn:
            return conn.execute(select(users.c.email).where(users.c.id == user)).scalar_one_or_none()

    def operators(self, site: str) -> list[str]:
        """The users holding the site operator role of ``site``."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(role_grants.c.user_id).where(
                role_grants.c.role == "site_operator", role_grants.c.target == site)).scalars()
            return sorted(set(rows))

    # ------------------------------------------------------------ the outbox
    def add_notices(self, notices: Iterable[Notice], at: datetime) -> int:
        """Write the notices whose keys are new; how many were."""
        with self.store.transaction() as conn:
            return notify_rows.add_notices(conn, list(notices), at)

    def unfanned(self, limit: int = 200) -> list[Notice]:
        """Notices whose deliveries are not made yet, oldest first."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(notify_notices).where(notify_notices.c.fanned_out == 0)
                                .order_by(notify_notices.c.created_at).limit(limit)).mappings().all()
        return [_notice(r) for r in rows]

    def fan_out(self, fans: Mapping[str, Sequence[tuple[str, Channel, str]]], at: datetime) -> None:
        """For each notice key, make one pending delivery per (user, channel, target) and mark
        the notice fanned out; all in one transaction (a delivery already made is kept as it is)."""
        if not fans:
            return
        rows = [{"id": delivery_id(key, u, c), "notice_key": key, "user_id": u, "channel": c.value,
                 "target": t, "state": DeliveryState.PENDING.value, "attempts": 0, "next_at": at,
                 "created_at": at} for key, targets in fans.items() for u, c, t in targets]
        with self.store.transaction() as conn:
            insert_ignore(conn, notify_deliveries, rows, "id")
            keys = list(fans)
            for i in range(0, len(keys), 500):
                conn.execute(update(notify_notices).where(notify_notices.c.key.in_(keys[i:i + 500]))
                             .values(fanned_out=1))

    def due(self, now: datetime, limit: int = 50) -> list[Delivery]:
        """Pending deliveries whose next try is due, soonest first."""
        return self._deliveries(lambda q: q.where(notify_deliveries.c.state == DeliveryState.PENDING.value,
                                                  notify_deliveries.c.next_at <= now)
                                .order_by(notify_deliveries.c.next_at).limit(limit))

    def deliveries(self, user: str, limit: int = 100) -> list[Delivery]:
        """A person's deliveries, newest first."""
        return self._deliveries(lambda q: q.where(notify_deliveries.c.user_id == user)
                                .order_by(notify_deliveries.c.created_at.desc()).limit(limit))

    def sent(self, delivery: str, at: datetime) -> None:
        """Mark a delivery sent."""
        self._set(delivery, state=DeliveryState.SENT.value, sent_at=at, next_at=at)

    def failed(self, delivery: str, attempts: int, error: str, next_at: datetime, give_up: bool) -> None:
        """Record a failed try: its reason, the next try, or that it is given up."""
        state = DeliveryState.GIVEN_UP if give_up else DeliveryState.PENDING
        self._set(delivery, state=state.value, attempts=attempts, last_error=error[:2000], next_at=next_at)

    def _set(self, delivery: str, **values: Any) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(notify_deliveries).where(notify_deliveries.c.id == delivery).values(**values))

    def _deliveries(self, shape: Any) -> list[Delivery]:
        n = notify_notices.c
        q = select(notify_deliveries, n.key, n.kind, n.recipients, n.subject, n.text, n.data,
                   n.operators_of).join(
            notify_notices, notify_notices.c.key == notify_deliveries.c.notice_key)
        with self.store.transaction() as conn:
            rows = conn.execute(shape(q)).mappings().all()
        return [Delivery(r["id"], _notice(r), r["user_id"], Channel(r["channel"]), r["target"],
                         DeliveryState(r["state"]), r["attempts"], r["next_at"], r["last_error"],
                         r["sent_at"])
                for r in rows]

    # ------------------------------------------------------------ facts notices derive from
    def allocation_facts(self) -> list[dict[str, Any]]:
        """Every allocation with who hears of it (who applied and the project's PI)."""
        q = select(allocations, projects.c.pi).join(projects, projects.c.id == allocations.c.project)
        with self.store.transaction() as conn:
            rows = conn.execute(q).mappings().all()
        return [{**dict(r), "recipients": sorted({r["requested_by"], r["pi"]})} for r in rows]


def _notice(r: Any) -> Notice:
    return Notice(r["key"], NoticeKind(r["kind"]), tuple(json.loads(r["recipients"])), r["subject"],
                  r["text"], json.loads(r["data"]), r["operators_of"])
