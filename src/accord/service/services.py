"""Everything a running Accord is made of, in one record: what the composition root
(:mod:`accord.compose`) builds once and the shells (the API, the dispatcher) read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from accord.domain.federation.model import Federation
from accord.ports import CarbonSource, Clock, JobStore, SiteBackend
from accord.service.access import AccessService, RateLimiter
from accord.service.agents import AgentService
from accord.service.audit import AuditWriter
from accord.service.broker import Broker
from accord.service.campaigns import CampaignService
from accord.service.files import FileService
from accord.service.gate import Gate
from accord.service.group_commit import GroupCommitter
from accord.service.ledger import LedgerService
from accord.service.notify import NotifyService
from accord.service.submissions import Submissions
from accord.service.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a running Accord is made of, each built once by :func:`compose`.

    ``committer`` and ``audit`` run a writer thread each, and the store holds a connection
    pool (``closing`` closes it): whoever composed the record stops them with :meth:`close`.
    """

    federation: Federation
    store: JobStore
    backends: Mapping[str, SiteBackend]
    clock: Clock
    carbon: CarbonSource | None
    ledger: LedgerService
    access: AccessService
    gate: Gate
    broker: Broker
    submissions: Submissions           # the one path of a submission (the API's, the campaigns')
    campaigns: CampaignService
    committer: GroupCommitter          # batches new jobs into one transaction (submissions)
    audit: AuditWriter                 # stores the audit records of API requests
    auth_failures: RateLimiter         # failed authentications per client address
    token_limiter: RateLimiter         # token minting per user (inside ``access`` too)
    closing: Callable[[], None]        # releases the store's connections
    notify: NotifyService              # notification preferences and the outbox's worker
    telemetry: Telemetry               # the hub's metrics (/metrics), on a registry of its own
    agents: AgentService               # the site agents' side of the hub (orders, reports, logs)
    files: FileService                 # jobs' input and output files, held at the hub

    def close(self) -> None:
        """Store what the committer and the audit writer hold, stop them, close the store."""
        try:
            self.committer.close()
            self.audit.close()
        finally:
            self.closing()
