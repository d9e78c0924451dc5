"""The hub's backend for a site that runs its own agent (``backend = "agent"``).

It never reaches the site: handing a job over writes a dispatch order, cancelling writes a
cancel order, and polling, loads and logs read what the site's agent last reported (all in
the hub's store, :class:`accord.ports.AgentStore`). The agent pulls the orders and pushes
its reports (:mod:`accord.api.agent`). A site whose agent has been silent for longer than its
``silence_s`` is unreachable: placement avoids it and its jobs are noted as out of touch,
never sent elsewhere while they may run there. See ``docs/design/site-agent.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.domain.agent.protocol import AgentSeen, AgentStatus, Order, OrderKind, Stream, order_id
from accord.domain.errors import Conflict, Unavailable
from accord.domain.federation.model import Site
from accord.domain.jobs import codec
from accord.domain.jobs.model import Job, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.placement.records import PoolLoad
from accord.ports import AgentStore, Clock

SEEN_CACHE_S = 1.0  # how long a read of the agent's last word serves a backend
RELOOK_S = 1.0      # how long statuses read serve polls while this process notes no change


@dataclass(frozen=True, slots=True)
class _Polled:
    """Statuses read for a poll: the store's change mark before the read, when, which refs."""

    mark: int
    at: datetime
    refs: frozenset[str]
    held: Mapping[str, AgentStatus]


def job_order(job: Job) -> dict[str, Any]:
    """What a dispatch order carries for the agent to rebuild and run the job.

    Raises:
        Conflict: the job is not placed.
    """
    if job.placement is None:
        raise Conflict(f"job {job.id} is not placed")
    p = job.placement
    return {
        "job_id": job.id,
        "owner": job.owner,
        "spec": codec.encode_spec(job.spec),
        "site": p.site,
        "pool": p.pool,
        "agreement": p.agreement,
        "submitted_at": codec.iso(job.submitted_at),
    }


class AgentBackend:
    """A :class:`~accord.ports.SiteBackend` over the orders and reports of one agent site."""

    in_store = True   # orders and reports live in the hub's store: see ports.InStoreBackend

    def __init__(self, site: Site, store: AgentStore, clock: Clock) -> None:
        if site.agent is None:
            raise Conflict(f"site {site.id} has no [sites.agent] settings")
        self.site = site
        self.site_id = site.id
        self.silence_s = site.agent.silence_s
        self.store = store
        self.clock = clock
        self._seen: tuple[datetime, AgentSeen] | None = None  # (when read, what was read)
        self._polled: _Polled | None = None

    def _alive(self) -> AgentSeen:
        """The agent's last word, read at most once a :data:`SEEN_CACHE_S` (a pass asks often).

        Raises:
            Unavailable: never connected, or silent for longer than the site's ``silence_s``.
        """
        now, cached = self.clock.now(), self._seen
        if cached is not None and 0 <= (now - cached[0]).total_seconds() < SEEN_CACHE_S:
            seen: AgentSeen | None = cached[1]
        else:
            seen = self.store.last_seen(self.site_id)
            self._seen = None if seen is None else (now, seen)
        return self._check(seen)

    def _check(self, seen: AgentSeen | None) -> AgentSeen:
        if seen is None:
            raise Unavailable(f"{self.site_id}: its agent has never connected")
        quiet = (self.clock.now() - seen.last_seen).total_seconds()
        if quiet > self.silence_s:
            raise Unavailable(
                f"{self.site_id}: its agent was last heard from {quiet:.0f} s ago "
                f"(over {self.silence_s:.0f} s)"
            )
        return seen

    def loads(self) -> Mapping[str, PoolLoad]:
        """The loads the agent last reported. Raises Unavailable: the agent is silent."""
        seen = self._alive()
        out = {}
        for pool in self.site.pools:
            load = seen.loads.get(pool.id, {})
            out[pool.id] = PoolLoad(int(load.get("free_gpus", 0)), int(load.get("queued_gpus", 0)))
        return out

    def look_up(self, job: Job) -> Dispatched | None:
        """The job's dispatch order here, if it has one its agent has not disowned (orders
        are in the hub's own store)."""
        order = self.store.live_dispatch(self.site_id, job.id)
        return None if order is None else Dispatched(order.ref, adopted=True)

    def submit(self, job: Job) -> Dispatched:
        """Write the job's dispatch order (once: an order still live is returned, adopted).

        Raises:
            Unavailable: the agent is silent (the job may go elsewhere: no order was written).
        """
        self._alive()
        found = self.look_up(job)
        if found is not None:
            return found
        ref = f"{job.id}.{job.version}"
        self.store.add_order(
            Order(
                order_id(ref, OrderKind.DISPATCH),
                self.site_id,
                OrderKind.DISPATCH,
                ref,
                job.id,
                self.clock.now(),
                job_order(job),
            )
        )
        return Dispatched(ref)

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        """What the agent last reported of each job (PENDING before it did; LOST for a
        reference never dispatched here or one the agent no longer holds).

        Raises:
            Unavailable: the agent is silent.
        """
        self._alive()
        held = self._statuses(refs)
        return {ref: _remote(held.get(ref)) for ref in refs}

    def _statuses(self, refs: Sequence[str]) -> Mapping[str, AgentStatus]:
        """The stored statuses of ``refs``, read again only if this process committed a change
        for the site since the last read, a ref is new, or :data:`RELOOK_S` has passed (a
        change another replica committed is seen within that)."""
        mark, now, last = self.store.changes(self.site_id), self.clock.now(), self._polled
        if (last is not None and last.mark == mark and last.refs.issuperset(refs)
                and 0 <= (now - last.at).total_seconds() < RELOOK_S):
            return last.held
        held = self.store.statuses(refs)
        self._polled = _Polled(mark, now, frozenset(refs), held)
        return held

    def cancel(self, ref: str) -> None:
        """Write a cancel order (the job ends when the agent reports it so)."""
        job_id = ref.rpartition(".")[0] or ref
        self.store.add_order(
            Order(
                order_id(ref, OrderKind.CANCEL), self.site_id, OrderKind.CANCEL, ref, job_id, self.clock.now()
            )
        )

    def logs(self, ref: str, job: Job) -> JobLogs:
        """The output the agent streamed home (with a line saying where it was cut)."""
        held = self.store.logs(ref)
        return JobLogs(*(_text(*held.get(s, (b"", False))) for s in (Stream.STDOUT, Stream.STDERR)))


def _text(data: bytes, cut: bool) -> str:
    text = data.decode("utf-8", errors="replace")
    return text + (
        "\n[accord: output cut here: the site sends at most 4 MiB of each stream]\n" if cut else ""
    )


def _remote(s: AgentStatus | None) -> RemoteStatus:
    if s is None:
        return RemoteStatus(RemoteState.LOST, reason="never dispatched to this site")
    reason = f"{s.reason} (the site's job {s.local_id})" if s.local_id else s.reason
    if not s.state.is_final:
        return RemoteStatus(s.state, s.started_at, reason=reason)
    outcome = Outcome(
        s.exit_code, s.started_at, s.ended_at, s.gpu_seconds, reason, s.gpus, s.energy_j, s.attestation,
        s.account, s.local_user,
    )
    return RemoteStatus(s.state, s.started_at, outcome, reason)
