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
    # 0010 creates agent_status from the schema module, so a database made from scratch
    # already has the columns there: add only what is missing.
    inspector = sa.inspect(op.get_bind())
    for table in TABLES:
        have = {c["name"] for c in inspector.get_columns(table)}
        with op.batch_alter_table(table) as batch:
            for name in ("account", "local_user"):
                if name not in have:
                    batch.add_column(sa.Column(name, sa.String(120), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("local_user")
            batch.drop_column("account")
