"""Usage records: one per finished job and site, keyed so a second read is a no-op.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(250), primary_key=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("pool", sa.String(64), nullable=False),
        sa.Column("gpu_model", sa.String(64), nullable=False),
        sa.Column("host_partner", sa.String(64), nullable=False),
        sa.Column("requester_partner", sa.String(64), nullable=True),
        sa.Column("agreement", sa.String(64), nullable=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("start", UTCDateTime, nullable=False),
        sa.Column("end", UTCDateTime, nullable=False),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("gpu_seconds", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("energy_j", sa.Float, nullable=True),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_usage_job", "usage_records", ["job_id"])
    op.create_index("ix_usage_site_start", "usage_records", ["site", "start"])
