"""Jobs and their stories.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("submitted_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("not_before", UTCDateTime, nullable=True),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("pool", sa.String(64), nullable=True),
        sa.Column("agreement", sa.String(64), nullable=True),
        sa.Column("backend_ref", sa.String(200), nullable=True),
        sa.Column("gpu_indices", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_key"),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_submitted", "jobs", ["submitted_at"])
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("before", sa.String(20), nullable=True),
        sa.Column("after", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
    )
