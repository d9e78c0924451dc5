"""Usage records get the job's energy, emissions and the intensity data they used.

All three are nullable: records made before this revision have no figures, and a
job whose grid intensity could not be had keeps its energy with emissions NULL.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("energy_kwh", sa.Float, nullable=True))
        batch.add_column(sa.Column("emissions_g", sa.Float, nullable=True))
        batch.add_column(sa.Column("intensity_source", sa.Text, nullable=True))
    op.create_index("ix_usage_start", "usage_records", ["start"])


def downgrade() -> None:
    op.drop_index("ix_usage_start", "usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("intensity_source")
        batch.drop_column("emissions_g")
        batch.drop_column("energy_kwh")
