"""Replicas: ``hub_leases`` (who does the single work, until when, under which fencing
epoch) and ``hub_identity`` (facts every replica of one hub must share: the ledger's
signing key, the admin token's digest, each local site's job directory).
See ``docs/design/replicas.md``.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from accord.adapters.sql.schema import hub_identity, hub_leases

revision = "0008"
down_revision = "0007"
TABLES = (hub_leases, hub_identity)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
