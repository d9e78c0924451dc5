"""Where a hub's scrape-time metrics come from: :func:`hub_sources` points a
:class:`~accord.service.telemetry.HubSources` at the services :func:`accord.compose.compose`
builds, each source a cheap read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from accord.domain.access.projects import AllocationState
from accord.domain.federation.model import BackendKind, Federation
from accord.ports import AgentStore, Clock
from accord.service.access import AccessService
from accord.service.audit import AuditWriter
from accord.service.group_commit import GroupCommitter
from accord.service.ledger import LedgerService
from accord.service.telemetry import HubSources


def hub_sources(
    jobs: Callable[[], Mapping[tuple[str, str | None], int]],
    ledger: LedgerService,
    access: AccessService,
    audit: AuditWriter,
    committer: GroupCommitter,
    clock: Clock,
    agents: AgentStore | None = None,
) -> HubSources:
    """The sources of a hub's state: ``jobs`` counts jobs by (state, site) (the store's
    :meth:`~accord.adapters.sql.store.SqlStore.count_by_state_and_site`). Raises nothing
    (each source may raise when called: the collector logs it and goes on)."""
    fed = ledger.federation
    return HubSources(
        sites=tuple(s.id for s in fed.sites),
        jobs=jobs,
        ledger_entries=lambda: ledger.ledger.head()[0],
        last_closure=lambda: _last_closure(ledger),
        allocations=lambda: allocation_use(ledger, access, clock.now()),
        audit_queued=lambda: audit.queued,
        audit_spooled=lambda: audit.spooled,
        commit_queued=lambda: committer.queued,
        now=clock.now,
        agents=lambda: agent_state(fed, agents, clock.now()) if agents is not None else {},
        last_cosigned=lambda: ledger.cosigner.last_cosigned_at() if ledger.cosigner else None,
    )


def agent_state(fed: Federation, agents: AgentStore, now: datetime) -> dict[str, tuple[float | None, int]]:
    """Per agent site: seconds since its agent was last heard from (None: never) and the
    orders it has not taken yet."""
    out: dict[str, tuple[float | None, int]] = {}
    for site in fed.sites:
        if site.backend is BackendKind.AGENT:
            seen = agents.last_seen(site.id)
            age = None if seen is None else (now - seen.last_seen).total_seconds()
            out[site.id] = (age, agents.backlog(site.id))
    return out


def _last_closure(ledger: LedgerService) -> datetime | None:
    closures = ledger.ledger.closures()
    return max((c.closed_at for c in closures), default=None)


def allocation_use(
    ledger: LedgerService, access: AccessService, now: datetime
) -> dict[str, tuple[float, float]]:
    """Per agreement: the units granted by the approved allocations in force at ``now``,
    and the units their projects used at their hosts in their months (the ledger)."""
    out: dict[str, tuple[float, float]] = {a.id: (0.0, 0.0) for a in ledger.federation.agreements}
    for a in access.store.allocations(state=AllocationState.APPROVED):
        if not a.covers(now.date()):
            continue
        used = float(ledger.project_used(a.project, a.agreement, a.host, a.start, a.end))
        granted, so_far = out.get(a.agreement, (0.0, 0.0))
        out[a.agreement] = (granted + a.units, so_far + used)
    return out
