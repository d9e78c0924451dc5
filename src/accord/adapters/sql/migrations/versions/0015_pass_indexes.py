"""What the dispatcher looks up at every pass, found by an index instead of a scan of history.

* ``usage_records.posted`` (0 until the record has been through posting, then 1: set in the
  transaction that writes its ``ledger_posted`` mark) and the index ``(posted, recorded_at,
  id)``: the ledger's posting reads the records still to post and no others. Before, each
  pass scanned every usage record ever stored (``NOT IN ledger_posted``). Existing records
  are marked from ``ledger_posted``.
* ``ix_campaign_runs_uncollected`` ``(collected_at, submitted_at)``: the campaign runs whose
  logs are still to collect, without reading every run ever made.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("posted", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE usage_records SET posted = 1 WHERE id IN (SELECT usage_id FROM ledger_posted)")
    op.create_index("ix_usage_unposted", "usage_records", ["posted", "recorded_at", "id"])
    # 0006 makes campaign_runs from schema.py as it is now, so a new database has it already
    op.create_index("ix_campaign_runs_uncollected", "campaign_runs", ["collected_at", "submitted_at"],
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_campaign_runs_uncollected", table_name="campaign_runs", if_exists=True)
    op.drop_index("ix_usage_unposted", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("posted")
