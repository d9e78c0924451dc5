"""An index on the jobs' (state, site): ``/metrics`` counts jobs by state and site at each
scrape (at most every 5 s), which the index answers without reading the table.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_index("ix_jobs_state_site", "jobs", ["state", "site"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_site", table_name="jobs")
