"""The composition root: every service of a running Accord, built once, in one record.

:func:`compose` wires the store, the ledger, access, the gate, the broker, the submissions,
campaigns, the group committer, the audit writer and the rate limiters around a federation,
a store, site backends and a clock. ``accord up`` (:func:`accord.runtime.build`) calls it
with the real adapters and hands the same record to the API
(:func:`accord.api.app.create_app`) and to the dispatcher thread; tests call it with fakes
of their choosing. Nothing else makes a service: the API only reads this record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from accord.adapters import keys, request_signing
from accord.adapters.agent_backend import AgentBackend
from accord.adapters.notify_channels import senders
from accord.adapters.sql.access_store import SqlAccess
from accord.adapters.sql.agent_store import SqlAgents
from accord.adapters.sql.campaign_store import SqlCampaigns
from accord.adapters.sql.cosign_store import SqlCosignatures
from accord.adapters.sql.file_store import SqlFiles
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.link_store import SqlSiteLinks
from accord.adapters.sql.notify_store import SqlNotifications
from accord.adapters.sql.store import SqlStore
from accord.adapters.witness_client import HttpWitnessClient
from accord.domain.federation.model import BackendKind, Federation
from accord.domain.ledger import signing
from accord.domain.ledger.checkpoint import default_origin
from accord.domain.ledger.statement import key_id
from accord.domain.notify.rules import release_notice
from accord.ports import CarbonSource, Clock, SiteBackend
from accord.service.access import AccessService, RateLimiter
from accord.service.agents import AgentService
from accord.service.audit import SPOOL_FILE, AuditSpool, AuditWriter
from accord.service.broker import Broker
from accord.service.campaigns import CampaignService
from accord.service.cosigning import Cosigner
from accord.service.enforcement import EnforcementService
from accord.service.files import FileService
from accord.service.gate import Gate
from accord.service.group_commit import GroupCommitter
from accord.service.hub_state import hub_sources
from accord.service.ledger import LedgerService
from accord.service.notify import NotifyService
from accord.service.services import Services
from accord.service.submissions import Submissions
from accord.service.telemetry import Telemetry

Verifier = Callable[[str], tuple[str, str]]   # an OIDC JWT -> (issuer, subject); raises if invalid
AUTH_FAILURES = (60, 60.0)   # failed authentications per client address, per this many seconds
TOKEN_MINTING = (10, 60.0)   # tokens a user may mint, per this many seconds


def ledger_service(federation: Federation, store: SqlStore, clock: Clock,
                   private_key: bytes) -> LedgerService:
    """The ledger over ``store``, signing with ``private_key`` (its log id derived from the key),
    with the hosts' signed usage of the agent store, and, when the federation names witnesses,
    their cosigner (``docs/design/witnesses.md``)."""
    log_id = key_id(signing.public_key(private_key))[:16]
    w = federation.witnessing
    cosigner = None if w is None else Cosigner(
        w, SqlCosignatures(store), HttpWitnessClient(), clock, private_key,
        w.origin or default_origin(log_id))
    return LedgerService(federation, SqlLedger(store), clock, private_key, log_id, cosigner=cosigner,
                         attestations=SqlAgents(store).signed_usage)


def compose(federation: Federation, store: SqlStore | str, backends: Mapping[str, SiteBackend],
            clock: Clock, token: str, *, carbon: CarbonSource | None = None,
            oidc: Verifier | None = None, data_dir: Path | None = None,
            token_limiter: RateLimiter | None = None, signing_key: bytes | None = None,
            notify_env: Mapping[str, str] | None = None) -> Services:
    """Every service of Accord over ``store`` (a :class:`SqlStore` or a database URL to open).

    ``backends`` drive the sites, ``clock`` is the time of every service, ``token`` the local
    admin token, ``carbon`` the grid-intensity source (None: placement without carbon),
    ``oidc`` verifies OIDC JWTs (None: no OIDC issuer), ``signing_key`` is the ledger's
    private key (None: the one in ``data_dir``, created on first use; no ``data_dir``
    either: a fresh key, kept in memory only), and
    ``token_limiter`` limits token minting (default :data:`TOKEN_MINTING`), ``notify_env``
    configures the notification channels (:mod:`accord.adapters.notify_channels`; None: no
    SMTP server, webhooks only). Audit records
    the database cannot take wait in ``data_dir``'s ``audit-spool.jsonl`` (in memory
    without a ``data_dir``) until it does.

    Raises:
        Unavailable: the database cannot be reached (a URL given).
        InvalidInput: ``notify_env`` holds a malformed SMTP setting.
    """
    db = SqlStore(store) if isinstance(store, str) else store
    private = signing_key or (keys.load_or_create(data_dir) if data_dir is not None
                              else signing.generate_private_key())
    ledger = ledger_service(federation, db, clock, private)
    minting = token_limiter or RateLimiter(*TOKEN_MINTING)
    access = AccessService(federation, SqlAccess(db), clock, token, oidc, token_limiter=minting)
    gate = Gate(federation, access, ledger.project_used)
    telemetry = Telemetry()
    agent_store = SqlAgents(db)
    backends = {**{site.id: AgentBackend(site, agent_store, clock) for site in federation.sites
                   if site.backend is BackendKind.AGENT}, **backends}
    broker = Broker(federation, db, dict(backends), clock, carbon=carbon, quota_used=ledger.quota_used,
                    balance=ledger.net_balance, gate=gate, telemetry=telemetry)
    committer = GroupCommitter(db)
    submissions = Submissions(broker, gate, committer)
    audit = AuditWriter(access.store.audit_many, AuditSpool(data_dir / SPOOL_FILE if data_dir else None))
    telemetry.watch(hub_sources(db.count_by_state_and_site, ledger, access, audit, committer, clock,
                                agent_store))
    files = FileService(SqlFiles(db), clock)
    campaigns = CampaignService(broker, submissions, access, SqlCampaigns(db), files=files)
    return Services(
        federation=federation, store=db, backends=broker.backends, clock=clock, carbon=carbon,
        ledger=ledger, access=access, gate=gate, broker=broker, submissions=submissions,
        campaigns=campaigns,
        committer=committer, audit=audit,
        auth_failures=RateLimiter(*AUTH_FAILURES), token_limiter=minting, closing=db.close,
        notify=NotifyService(SqlNotifications(db), senders(notify_env or {}), clock,
                             used=ledger.project_used, releases=lambda: [
                                 release_notice(*r) for r in campaigns.released()]),
        telemetry=telemetry,
        agents=AgentService(federation, agent_store, clock, request_signing.verify, broker.nudge,
                            EnforcementService(federation, access.store, SqlSiteLinks(db), clock)),
        files=files,
    )
