"""Site agents: ``agent_orders`` (what the hub asks each agent site to do), ``agent_status``
(what its agent last reported of each job), ``agent_usage`` (usage the host signed),
``agent_nonces`` (replay protection), ``agent_sites`` (last seen, loads) and ``agent_logs``
(output the agents streamed home); ``usage_records.attestation`` names the signed usage a
record was made of. See ``docs/design/site-agent.md``.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import (
    agent_logs,
    agent_nonces,
    agent_orders,
    agent_sites,
    agent_status,
    agent_usage,
)

revision = "0010"
down_revision = "0009"
TABLES = (agent_orders, agent_status, agent_usage, agent_nonces, agent_sites, agent_logs)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("attestation", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("attestation")
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
