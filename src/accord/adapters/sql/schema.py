"""Table definitions (SQLAlchemy Core); Alembic migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("spec_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime, nullable=True),
    Column("site", String(64), nullable=True),
    Column("pool", String(64), nullable=True),
    Column("agreement", String(64), nullable=True),
    Column("backend_ref", String(200), nullable=True),
    Column("gpu_indices", Text, nullable=False, default="[]"),
    Column("outcome", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("substate", Text, nullable=False, server_default="{}"),   # the machine's sub-states (JSON)
    Column("recheck_at", UTCDateTime, nullable=True),   # when placement looks again at a deferred job
    UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_key"),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_state_site", "state", "site"),   # 0011: the metrics' count by state and site
    Index("ix_jobs_submitted", "submitted_at"),
    Index("ix_jobs_recheck", "recheck_at"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("job_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("before", String(20), nullable=True),
    Column("after", String(20), nullable=False),
    Column("stimulus", String(200), nullable=False, server_default=""),   # what caused it
    PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(250), primary_key=True),
    Column("job_id", String(40), nullable=False),
    Column("site", String(64), nullable=False),
    Column("pool", String(64), nullable=False),
    Column("gpu_model", String(64), nullable=False),
    Column("host_partner", String(64), nullable=False),
    Column("requester_partner", String(64), nullable=True),
    Column("agreement", String(64), nullable=True),
    Column("project", String(64), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("gpu_seconds", Float, nullable=False),
    Column("state", String(20), nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("energy_j", Float, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
    # Set when the job ends (0004); emissions_g is NULL when no intensity was had.
    Column("energy_kwh", Float, nullable=True),
    Column("emissions_g", Float, nullable=True),
    Column("intensity_source", Text, nullable=True),
    Column("attestation", String(64), nullable=True),      # 0010: SHA-256 of the host-signed usage
    Column("account", String(120), nullable=True),         # 0014: the Slurm account it ran under
    Column("local_user", String(120), nullable=True),      # 0014: the site's local user it ran as
    Column("posted", Integer, nullable=False, server_default="0"),  # 0015: 1 once through posting
    Index("ix_usage_job", "job_id"),
    Index("ix_usage_unposted", "posted", "recorded_at", "id"),
    Index("ix_usage_site_start", "site", "start"),
    Index("ix_usage_start", "start"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(300), nullable=False, unique=True),
    Column("agreement", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("job_id", String(40), nullable=True),
    Column("usage_id", String(250), nullable=True),
    Column("body", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_ledger_agreement_period", "agreement", "period"),
    Index("ix_ledger_job", "job_id"),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

ledger_posted = Table(
    "ledger_posted",
    metadata,
    Column("usage_id", String(250), primary_key=True),
    Column("entries", Integer, nullable=False),
)

ledger_closures = Table(
    "ledger_closures",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),
    Column("signed_head", Text, nullable=False),
    Column("closed_at", UTCDateTime, nullable=False),
)

# ── witnesses (0012): what each partner's witness last cosigned, and every cosignature ──
witness_status = Table(
    "witness_status",
    metadata,
    Column("witness", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),            # the size it last cosigned (0: none)
    Column("root", String(64), nullable=False),
    Column("error", Text, nullable=True),                  # why the last attempt failed; NULL: it did not
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("cosigned_at", UTCDateTime, nullable=True),
)

witness_cosignatures = Table(
    "witness_cosignatures",
    metadata,
    Column("witness", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),            # hex
    Column("origin", String(300), nullable=False),
    Column("signature", Text, nullable=False),             # the cosignature line, as the witness sent it
    Column("timestamp", BigInteger, nullable=False),       # the cosignature's POSIX time
    PrimaryKeyConstraint("witness", "size", name="pk_witness_cosignatures"),
)

# ── access (0005): people, roles, tokens, projects, allocations, compliance, audit ──
users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("institution", String(64), nullable=False),
    Column("oidc_issuer", String(500), nullable=True),
    Column("oidc_subject", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),
)

affiliations = Table(
    "affiliations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("institution", String(64), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("start", String(10), nullable=True),
    Column("end", String(10), nullable=True),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("user_id", String(64), nullable=False),
    Column("role", String(30), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("target", String(64), nullable=False),
    PrimaryKeyConstraint("user_id", "role", "scope", "target", name="pk_role_grants"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("pi", String(64), nullable=False),
    Column("partner", String(64), nullable=False),
    Column("theme", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project", String(64), nullable=False),
    Column("user_id", String(64), nullable=False, index=True),
    PrimaryKeyConstraint("project", "user_id", name="pk_project_members"),
)

allocations = Table(
    "allocations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project", String(64), nullable=False, index=True),
    Column("agreement", String(64), nullable=False),
    Column("host", String(64), nullable=False),
    Column("units", Float, nullable=False),
    Column("start", String(7), nullable=False),
    Column("end", String(7), nullable=False),
    Column("sites", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
)

compliance_decisions = Table(
    "compliance_decisions",
    metadata,
    Column("job_id", String(40), nullable=False),
    Column("site", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("approved", Integer, nullable=False),
    Column("by", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    PrimaryKeyConstraint("job_id", "site", name="pk_compliance_decisions"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("via", String(64), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=False),
    Column("partners", String(300), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("status", Integer, nullable=False),
    Column("source", String(100), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_audit_at", "at"),
)

# ── campaigns (0006): Inspect campaigns, their jobs, collected logs, release approvals ──
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("doc", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

campaign_runs = Table(
    "campaign_runs",
    metadata,
    Column("campaign", String(64), nullable=False),
    Column("task", String(64), nullable=False),
    Column("model", String(64), nullable=False),
    Column("job_id", String(40), nullable=False, index=True),
    Column("submitted_by", String(64), nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("collected_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("campaign", "task", "model", name="pk_campaign_runs"),
    Index("ix_campaign_runs_uncollected", "collected_at", "submitted_at"),   # 0015
)

campaign_logs = Table(
    "campaign_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(64), nullable=False, index=True),
    Column("task", String(64), nullable=False),
    Column("model", String(64), nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("name", String(300), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("summary", Text, nullable=False),
    Column("collected_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "name", name="uq_campaign_logs_job_name"),
)

campaign_approvals = Table(
    "campaign_approvals",
    metadata,
    Column("campaign", String(64), nullable=False),
    Column("partner", String(64), nullable=False),
    Column("by", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("campaign", "partner", name="pk_campaign_approvals"),
)

# ── replicas (0008): the leases that make a hub's single work single, the hub's identity ──
hub_leases = Table(
    "hub_leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),          # the fencing token: +1 per new holder
    Column("expires_at", Float, nullable=False),          # the database's clock, seconds
)

hub_identity = Table(
    "hub_identity",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("value", Text, nullable=False),
)

# ── notifications (0009): preferences, the outbox of notices, one delivery per channel ──
notify_prefs = Table(
    "notify_prefs",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=True),
    Column("email_on", Integer, nullable=False),
    Column("webhook_url", String(2000), nullable=True),
    Column("webhook_secret", String(100), nullable=True),
    Column("kinds", Text, nullable=False),                 # JSON list of notice kinds
    Column("updated_at", UTCDateTime, nullable=False),
)

notify_notices = Table(
    "notify_notices",
    metadata,
    Column("key", String(300), primary_key=True),          # the idempotency key of its messages
    Column("kind", String(40), nullable=False),
    Column("recipients", Text, nullable=False),            # JSON list of user ids
    Column("operators_of", String(64), nullable=True),     # and every operator of this site
    Column("subject", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("fanned_out", Integer, nullable=False),         # 0 until its deliveries exist
    Index("ix_notify_notices_fanned", "fanned_out"),
)

notify_deliveries = Table(
    "notify_deliveries",
    metadata,
    Column("id", String(500), primary_key=True),           # notice key / user / channel
    Column("notice_key", String(300), nullable=False),
    Column("user_id", String(64), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("state", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_notify_deliveries_due", "state", "next_at"),
)

# ── site agents (0010): orders for each agent site, what its agent reports, signed usage ──
agent_orders = Table(
    "agent_orders",
    metadata,
    Column("id", String(300), primary_key=True),           # ref/kind: one order of a kind per job ref
    Column("site", String(64), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("ref", String(200), nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("job", Text, nullable=True),                    # JSON the agent rebuilds the job from
    Column("created_at", UTCDateTime, nullable=False),
    Column("acked_at", UTCDateTime, nullable=True),        # NULL: still to be delivered
    Column("local_id", String(200), nullable=True),
    Index("ix_agent_orders_pending", "site", "acked_at"),
    Index("ix_agent_orders_job", "job_id"),
)

agent_status = Table(
    "agent_status",
    metadata,
    Column("ref", String(200), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("local_id", String(200), nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("gpus", Integer, nullable=False),
    Column("gpu_seconds", Float, nullable=False),
    Column("energy_j", Float, nullable=True),
    Column("reason", Text, nullable=False),
    Column("attestation", String(64), nullable=True),      # SHA-256 of the signed usage body
    Column("account", String(120), nullable=True),         # 0014: from the signed usage
    Column("local_user", String(120), nullable=True),      # 0014: from the signed usage
    Column("lost", Integer, nullable=False),               # 1: the agent said it does not hold it
    Column("updated_at", UTCDateTime, nullable=False),
)

agent_usage = Table(
    "agent_usage",
    metadata,
    Column("digest", String(64), primary_key=True),        # SHA-256 (hex) of body
    Column("ref", String(200), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

agent_nonces = Table(
    "agent_nonces",
    metadata,
    Column("site", String(64), nullable=False),
    Column("nonce", String(100), nullable=False),
    Column("expires_at", Float, nullable=False),           # seconds since the epoch
    PrimaryKeyConstraint("site", "nonce", name="pk_agent_nonces"),
    Index("ix_agent_nonces_expiry", "expires_at"),
)

agent_sites = Table(
    "agent_sites",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("loads", Text, nullable=False),                 # JSON {pool: {free_gpus, queued_gpus}}
    Column("key_id", String(64), nullable=False),
    Column("synced_at", UTCDateTime, nullable=True),       # the last full resynchronisation
)

agent_logs = Table(
    "agent_logs",
    metadata,
    Column("ref", String(200), nullable=False),
    Column("stream", String(10), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),            # bytes the agent sent (offset of the next)
    Column("truncated", Integer, nullable=False),
    PrimaryKeyConstraint("ref", "stream", name="pk_agent_logs"),
)

stored_files = Table(
    "stored_files",
    metadata,
    Column("sha256", String(64), primary_key=True),        # content-addressed: stored once
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("uploaded_by", String(200), nullable=False),
)

job_outputs = Table(
    "job_outputs",
    metadata,
    Column("ref", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("job_id", String(40), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("ref", "name", name="pk_job_outputs"),
)

# ── site enforcement (0013): what each agent says of its accounts, identities and drift ──
site_links = Table(
    "site_links",
    metadata,
    Column("site", String(64), nullable=False),
    Column("kind", String(20), nullable=False),            # identity, grant, sync
    Column("subject", String(120), nullable=False),        # user id, allocation id, "" (sync)
    Column("state", String(20), nullable=False),           # a LinkState, a GrantStatus, ok/error
    Column("value", String(120), nullable=False),          # the local user, the Slurm account
    Column("reason", Text, nullable=False),                # why (an error), or the drift lines
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("site", "kind", "subject", name="pk_site_links"),
)
