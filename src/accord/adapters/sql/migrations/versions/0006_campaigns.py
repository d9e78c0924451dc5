"""Campaigns: definitions, the job of each (task, model) pair, the Inspect logs
collected from the sites (bytes, SHA-256, summary) and release approvals.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from accord.adapters.sql.schema import campaign_approvals, campaign_logs, campaign_runs, campaigns

revision = "0006"
down_revision = "0005"
TABLES = (campaigns, campaign_runs, campaign_logs, campaign_approvals)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
