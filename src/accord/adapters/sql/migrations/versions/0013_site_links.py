"""Site enforcement (issue 20): ``site_links``, what each site's agent last said of its
visitors' local identities, its allocations' Slurm accounts and the drift it found. See
``docs/design/site-enforcement.md``.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_table(
        "site_links",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("value", sa.String(120), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("site", "kind", "subject", name="pk_site_links"),
    )


def downgrade() -> None:
    op.drop_table("site_links")
