"""Access: users, affiliations, role grants, API tokens, projects and members,
allocations, compliance decisions and the audit log.

The audit log is append-only: Accord never updates or deletes its rows, and on
PostgreSQL a trigger refuses UPDATE and DELETE outright.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from accord.adapters.sql.schema import (
    affiliations,
    allocations,
    api_tokens,
    audit_log,
    compliance_decisions,
    project_members,
    projects,
    role_grants,
    users,
)

revision = "0005"
down_revision = "0004"
TABLES = (users, affiliations, role_grants, api_tokens, projects, project_members, allocations,
          compliance_decisions, audit_log)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)
    if bind.dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION accord_audit_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION accord_audit_append_only();
        """)
    else:
        op.execute("""
            CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """)
        op.execute("""
            CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION accord_audit_append_only()")
    for table in reversed(TABLES):
        table.drop(bind)
