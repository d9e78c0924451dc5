"""Notifications: ``notify_prefs`` (each person's channels), ``notify_notices`` (the outbox:
one row per event worth telling, keyed so it is written once) and ``notify_deliveries`` (one
per notice, person and channel: attempts, next try, last error). See
``docs/design/notifications.md``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

from accord.adapters.sql.schema import notify_deliveries, notify_notices, notify_prefs

revision = "0009"
down_revision = "0008"
TABLES = (notify_prefs, notify_notices, notify_deliveries)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
