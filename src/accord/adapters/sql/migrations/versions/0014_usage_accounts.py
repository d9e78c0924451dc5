"""Usage back by account (issue 20): the Slurm account and the site's local user a job ran
as, on each usage record and on what the agent last reported of the job (from the usage
the host signed). See ``docs/design/site-enforcement.md``.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"

TABLES = ("usage_records", "agent_status")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("account", sa.String(120), nullable=True))
            batch.add_column(sa.Column("local_user", sa.String(120), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("local_user")
            batch.drop_column("account")
