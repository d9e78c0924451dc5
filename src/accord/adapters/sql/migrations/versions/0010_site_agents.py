"""Site agents: ``agent_orders`` (what the hub asks each agent site to do), ``agent_status``
(what its agent last reported of each job), ``agent_usage`` (usage the host signed),
``agent_nonces`` (replay protection), ``agent_sites`` (last seen, loads) and ``agent_logs``
(output the agents streamed home), ``stored_files`` (a job's input files, uploaded by people,
and its declared output files, by agents: by SHA-256) and ``job_outputs`` (which output file
of which job is which); ``usage_records.attestation`` names the signed usage a
record was made of. See ``docs/design/site-agent.md``.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import (
    UTCDateTime,
    agent_logs,
    agent_nonces,
    agent_orders,
    agent_sites,
    agent_usage,
    job_outputs,
    stored_files,
)

revision = "0010"
down_revision = "0009"
TABLES = (agent_orders, agent_usage, agent_nonces, agent_sites, agent_logs, stored_files, job_outputs)


def _agent_status() -> None:
    """``agent_status`` as this revision made it (later revisions add columns to it)."""
    op.create_table(
        "agent_status",
        sa.Column("ref", sa.String(200), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("local_id", sa.String(200), nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("gpu_seconds", sa.Float, nullable=False),
        sa.Column("energy_j", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attestation", sa.String(64), nullable=True),
        sa.Column("lost", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)
    _agent_status()
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("attestation", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("attestation")
    op.drop_table("agent_status")
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
