"""Witness cosignatures of the ledger (issue 21): per witness, the tree size it last cosigned
and the last attempt's outcome; every cosignature collected.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.adapters.sql.schema import UTCDateTime

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "witness_status",
        sa.Column("witness", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempted_at", UTCDateTime, nullable=False),
        sa.Column("cosigned_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "witness_cosignatures",
        sa.Column("witness", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(300), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("witness", "size", name="pk_witness_cosignatures"),
    )


def downgrade() -> None:
    op.drop_table("witness_cosignatures")
    op.drop_table("witness_status")
