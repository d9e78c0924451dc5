"""Ports: the Protocols the service drives the outside world through.

Each has a real implementation in ``accord.adapters`` and a fake used by tests and
the simulator; contract tests run one suite against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from accord.domain.access.audit import AuditRecord
from accord.domain.access.projects import Allocation, AllocationState, Project, User
from accord.domain.access.rules import Affiliation, Grant, TokenScope
from accord.domain.campaigns.campaign import CollectedLog, Run
from accord.domain.carbon.series import IntensitySeries
from accord.domain.errors import AccordError
from accord.domain.jobs.model import Job, JobState
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteStatus
from accord.domain.ledger.entries import Closure, Entry
from accord.domain.ledger.reconcile import SiteUsage
from accord.domain.ledger.usage import UsageRecord
from accord.domain.ledger.verify import ChainCheck
from accord.domain.notify.rules import Channel, Delivery, Notice, Preferences
from accord.domain.placement.records import PoolLoad


class Clock(Protocol):
    """Where time comes from (UTC, timezone-aware)."""

    def now(self) -> datetime:
        """The current time."""
        ...


class SiteBackend(Protocol):
    """One site's scheduler: runs jobs, reports on them, cancels them.

    Implementations raise :class:`accord.domain.errors.Unavailable` when the site
    cannot be reached, so the broker can wait or go elsewhere.
    """

    site_id: str

    def loads(self) -> Mapping[str, PoolLoad]:
        """Current load per pool id."""
        ...

    def look_up(self, job: Job) -> Dispatched | None:
        """The job's submission at this site (``adopted=True``), if it has one.

        The broker asks before sending a job again whose earlier hand-over may have reached
        the site (its write-ahead record, or an answer that never came).
        """
        ...

    def submit(self, job: Job) -> Dispatched:
        """Start ``job`` (placed at this site). The broker calls it only when no earlier
        submission can exist here (none was sent, or a look-up found none); it must still
        never start the job twice (a second call returns the first, ``adopted=True``).

        Raises Busy when the site has no room now (it does not have the job), InDoubt when it
        cannot tell whether it took it, Unavailable when it was not reached.
        """
        ...

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        """The status of many jobs in one call; refs the site does not know are LOST."""
        ...

    def cancel(self, ref: str) -> None:
        """Ask the site to stop the job; a job already gone is not an error."""
        ...

    def logs(self, ref: str, job: Job) -> JobLogs:
        """The job's stdout and stderr so far."""
        ...


class WriteBatch(Protocol):
    """An open batch of one thread's store writes (see :meth:`JobStore.batch`)."""

    def flush(self) -> None:
        """Commit what the batch holds now. Raises Unavailable, LeaseLost (nothing written)."""
        ...

    def flush_if_due(self) -> None:
        """Commit if the batch has held its writes long enough or gathered enough."""
        ...


@runtime_checkable
class InStoreBackend(Protocol):
    """A :class:`SiteBackend` whose calls only read and write the hub's own store (an agent
    site's orders and reports): the broker makes them inside its batch of writes, so the
    order and the job's step commit together."""

    in_store: bool


class JobStore(Protocol):
    """Durable jobs and their stories."""

    def batch(self) -> AbstractContextManager[WriteBatch]:
        """Until the block ends, this thread's writes (to every store over the same
        database) are held in one transaction, each write rolled back alone if it fails, and
        committed at the batch's flushes and at the end; dropped if an exception leaves
        the block.

        Raises:
            Unavailable, LeaseLost: a flush failed (nothing it held was written).
        """
        ...

    def add_job(self, job: Job, spec_hash: str) -> Job:
        """Insert a new job, or return the existing one with the same owner and key.

        Raises:
            Conflict: the key was used before with a different spec.
        """
        ...

    def add_jobs(self, items: Sequence[tuple[Job, str]]) -> list[Job | AccordError]:
        """Insert many jobs in one transaction; per item the stored job or its own error."""
        ...

    def get_job(self, job_id: str) -> Job:
        """The job. Raises NotFound."""
        ...

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs of these ids, by id (ids not found are left out; at most a few thousand
        ids at once)."""
        ...

    def save_job(self, job: Job) -> Job:
        """Persist a changed job atomically (state, fields, new story entries).

        ``job.version`` is the version it was read at; the stored copy gets +1.

        Raises:
            Conflict: someone else saved the job since it was read.
        """
        ...

    def list_jobs(
        self,
        states: Sequence[JobState] | None = None,
        owner: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally filtered."""
        ...

    def queue(
        self,
        states: Sequence[JobState],
        limit: int,
        *,
        due_by: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        story: bool = True,
        recheck_by: datetime | None = None,
    ) -> list[Job]:
        """Jobs in ``states`` first come, first served: oldest submission first (then id), at
        most ``limit``. With ``due_by``, only those whose ``not_before`` is unset or at most
        ``due_by``; with ``after``, only those after that (submitted at, id), to page on;
        with ``recheck_by``, only deferred jobs whose placement is due to be looked at again
        by then (their ``deferral.recheck_at``), the longest due first.
        ``story=False`` leaves their stories empty (much faster, to read specs and placements;
        such a job is not to be saved)."""
        ...

    def tracked(self) -> list[tuple[str, str, str, JobState]]:
        """(job id, site, backend ref, state) of every dispatched or running job."""
        ...

    def add_usage(self, record: UsageRecord) -> bool:
        """Store a usage record once; True if new, False if its id is already stored."""
        ...

    def usage_started(self, start: datetime, end: datetime) -> list[UsageRecord]:
        """Usage records whose run started in [start, end), oldest first (a month's)."""
        ...

    def usage(self, job_id: str | None = None, site: str | None = None) -> list[UsageRecord]:
        """Usage records, oldest first."""
        ...


class LedgerStore(Protocol):
    """The ledger's durable log: entries appended in order (each usage record's at most
    once), the hash chain and Merkle tree over them, and closed periods."""

    def append(self, entries: Sequence[Entry], usage_id: str | None = None) -> list[Entry]:
        """Append entries in order (ids already present skipped; with ``usage_id``, that
        record marked posted in the same transaction); what is stored."""
        ...

    def append_many(self, groups: Sequence[tuple[str | None, Sequence[Entry]]]) -> list[Entry]:
        """Append several usage records' entries in one transaction (a group whose record is
        already posted skipped whole)."""
        ...

    def unposted_usage(self, limit: int = 500) -> list[UsageRecord]:
        """Usage records not yet posted, oldest first."""
        ...

    def entries(self, agreement: str | None = None, period: str | None = None,
                job_id: str | None = None, upto: int | None = None) -> list[Entry]:
        """Entries in order, optionally filtered."""
        ...

    def entry(self, entry_id: str) -> Entry | None:
        """One entry by id."""
        ...

    def entries_since(self, seq: int) -> list[Entry]:
        """Entries after position ``seq``."""
        ...

    def check_chain(self, size: int) -> ChainCheck:
        """Re-derive the first ``size`` entries' chain from their stored bytes."""
        ...

    def leaf_bodies(self, upto: int) -> list[bytes]:
        """The canonical bytes of the first ``upto`` entries (the Merkle tree's leaves)."""
        ...

    def head(self) -> tuple[int, str]:
        """(size, hash of the last entry)."""
        ...

    def hash_at(self, seq: int) -> str | None:
        """The chain hash at position ``seq``."""
        ...

    def size(self) -> int:
        """How many entries the log holds."""
        ...

    def close(self, closure: Closure) -> None:
        """Record a period's closure."""
        ...

    def closures(self) -> list[Closure]:
        """Every closed period, oldest first."""
        ...


class CarbonSource(Protocol):
    """Grid carbon intensity (gCO2eq/kWh) for a zone over a time span.

    Implementations live in ``accord.adapters.carbon`` (files in the common
    formats, live APIs, built-in typical profiles) and raise
    :class:`accord.domain.errors.Unavailable` when they cannot answer.
    """

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The zone's intensity covering [start, end)."""
        ...


class AccountingSource(Protocol):
    """A site's own record of what ran (for reconciliation with Accord's books)."""

    def accounting(self, start: datetime, end: datetime) -> list[SiteUsage]:
        """Accord's jobs that ran within [start, end), their GPU-seconds clipped to it."""
        ...


@dataclass(frozen=True, slots=True)
class StoredToken:
    """An API token as stored: its secret only as a SHA-256 hash."""

    id: str
    user: str
    name: str
    secret_hash: str
    scopes: frozenset[TokenScope]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


class AccessStore(Protocol):
    """Users, roles, tokens, projects, allocations, compliance decisions, audit log."""

    def add_user(self, user: User, at: datetime) -> None: ...
    def user(self, user_id: str) -> User: ...
    def user_by_oidc(self, issuer: str, subject: str) -> User | None: ...
    def users(self) -> list[User]: ...
    def add_affiliation(self, user_id: str, a: Affiliation) -> None: ...
    def grant(self, user_id: str, g: Grant) -> None: ...
    def revoke_grant(self, user_id: str, g: Grant) -> bool: ...
    def add_token(self, t: StoredToken) -> None: ...
    def token(self, token_id: str) -> StoredToken | None: ...
    def tokens(self, user_id: str) -> list[StoredToken]: ...
    def revoke_token(self, token_id: str, at: datetime) -> None: ...
    def add_project(self, p: Project) -> None: ...
    def project(self, project_id: str) -> Project | None: ...
    def projects(self) -> list[Project]: ...
    def add_member(self, project_id: str, user_id: str) -> None: ...
    def remove_member(self, project_id: str, user_id: str) -> bool: ...
    def memberships(self, user_id: str) -> tuple[frozenset[str], frozenset[str]]: ...
    def add_allocation(self, a: Allocation) -> None: ...
    def save_allocation(self, a: Allocation) -> None: ...
    def change_allocation(self, a: Allocation, was: Allocation) -> None: ...
    def allocation(self, allocation_id: str) -> Allocation | None: ...
    def allocations(self, *, project: str | None = None,
                    state: AllocationState | None = None) -> list[Allocation]: ...
    def decide_compliance(self, job_id: str, site: str, rule: str, approved: bool, by: str,
                          at: datetime, reason: str) -> None: ...
    def compliance_decision(self, job_id: str, site: str) -> tuple[bool, str, str] | None: ...
    def audit(self, rec: AuditRecord) -> None: ...
    def audit_many(self, recs: Sequence[AuditRecord]) -> None: ...
    def audit_records(self, *, actor: str | None = None, action: str | None = None,
                      since: datetime | None = None, partners: Sequence[str] | None = None,
                      limit: int = 1000, after: int = 0) -> list[AuditRecord]: ...


class CampaignStore(Protocol):
    """Campaigns, the jobs of their pairs, collected Inspect logs and release approvals."""

    def add_campaign(self, doc: str, campaign_id: str, by: str, at: datetime) -> None:
        """Raises Conflict: the id is taken."""
        ...

    def campaign(self, campaign_id: str) -> tuple[str, str, datetime] | None:
        """(document, created_by, created_at), or None."""
        ...

    def campaign_ids(self) -> list[str]: ...
    def add_run(self, run: Run) -> Run:
        """Store a pair's job once; the stored run if the pair already has one."""
        ...

    def runs(self, campaign_id: str | None = None, *, uncollected: bool = False) -> list[Run]: ...
    def add_log(self, log: CollectedLog) -> bool:
        """Store a log once per (job, file name); True if new."""
        ...

    def mark_collected(self, campaign_id: str, task: str, model: str, at: datetime) -> None: ...
    def logs(self, campaign_id: str, *, content: bool = False) -> list[CollectedLog]: ...
    def approve(self, campaign_id: str, partner: str, by: str, at: datetime) -> bool:
        """Record a partner's release approval once; True if new."""
        ...

    def approvals(self, campaign_id: str) -> list[tuple[str, str, datetime]]:
        """(partner, by, at) of each approval."""
        ...


class Lease(Protocol):
    """A named lease in the store shared by a hub's replicas: only its holder does the work
    the lease guards. Time is the store's clock; each new holder gets a higher ``epoch``.
    Methods raise :class:`accord.domain.errors.Unavailable` when the store cannot be reached."""

    def acquire(self, holder: str, ttl_s: float) -> int | None:
        """Take the lease if free or expired (or already ``holder``'s), for ``ttl_s``; the new
        epoch, or None while another holds it."""
        ...

    def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        """Extend it for ``ttl_s`` from now; False if it is no longer ``holder``'s at ``epoch``."""
        ...

    def release(self, holder: str, epoch: int) -> None:
        """Give it up now (a clean stop)."""
        ...

    def fenced(self, holder: str, epoch: int) -> AbstractContextManager[None]:
        """Within the block, every store write of this thread is refused
        (:class:`~accord.domain.errors.LeaseLost`) once the lease is no longer
        ``holder``'s at ``epoch``."""
        ...


class NotifyStore(Protocol):
    """Preferences, the outbox of notices and their deliveries (``docs/design/notifications.md``)."""

    def prefs(self, user: str) -> Preferences | None: ...
    def save_prefs(self, p: Preferences, at: datetime) -> None: ...
    def user_email(self, user: str) -> str | None: ...
    def operators(self, site: str) -> list[str]: ...
    def add_notices(self, notices: Iterable[Notice], at: datetime) -> int: ...
    def unfanned(self, limit: int = 200) -> list[Notice]: ...
    def fan_out(self, fans: Mapping[str, Sequence[tuple[str, Channel, str]]], at: datetime) -> None: ...
    def due(self, now: datetime, limit: int = 50) -> list[Delivery]: ...
    def deliveries(self, user: str, limit: int = 100) -> list[Delivery]: ...
    def sent(self, delivery: str, at: datetime) -> None: ...
    def failed(self, delivery: str, attempts: int, error: str, next_at: datetime, give_up: bool) -> None: ...
    def allocation_facts(self) -> list[dict[str, Any]]: ...


class Sender(Protocol):
    """Sends one delivery by its channel; returns nothing when the receiver took it.

    Raises:
        Unavailable: the receiver refused, failed or did not answer in time (the reason
            is the message; the delivery is tried again later).
    """

    def send(self, delivery: Delivery, secret: str | None) -> None: ...







# The site-agent path's ports live in their own module; these names are re-exported here.
from accord.ports.agents import AgentState as AgentState  # noqa: E402
from accord.ports.agents import AgentStore as AgentStore  # noqa: E402
from accord.ports.agents import FileStore as FileStore  # noqa: E402
from accord.ports.agents import HubLink as HubLink  # noqa: E402
from accord.ports.agents import JobDirectory as JobDirectory  # noqa: E402
from accord.ports.agents import RequestVerifier as RequestVerifier  # noqa: E402
