"""The ledger: hash-chained entries, the chain head, posted usage, closed periods.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(300), nullable=False, unique=True),
        sa.Column("agreement", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("usage_id", sa.String(250), nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ledger_agreement_period", "ledger_entries", ["agreement", "period"])
    op.create_index("ix_ledger_job", "ledger_entries", ["job_id"])
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute("INSERT INTO ledger_head (id, seq, hash) VALUES (1, -1, '" + "0" * 64 + "')")
    op.create_table(
        "ledger_posted",
        sa.Column("usage_id", sa.String(250), primary_key=True),
        sa.Column("entries", sa.Integer, nullable=False),
    )
    op.create_table(
        "ledger_closures",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("signed_head", sa.Text, nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=False),
    )
