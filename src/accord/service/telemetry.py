"""Metrics of a running hub, in Prometheus's model, on a registry of its own.

:class:`Telemetry` holds one :class:`~prometheus_client.CollectorRegistry` per composed
hub (never the process-wide default: tests compose many hubs in one process). Two kinds of
metric live on it:

* **events, counted as they happen**: placement decisions and their latency, and each call
  to a site (dispatch, look-up, poll) with its latency and failures. The broker reports them
  (:meth:`Telemetry.placed`, :meth:`Telemetry.site_call`).
* **state, read at scrape time** by :class:`HubCollector` from the sources compose hands it
  (:class:`HubSources`): jobs by state and site, the ledger's size and the age of its last
  closure, the audit and group-commit queues, allocation use per agreement, and this
  replica's leadership of the dispatch lease.

Labels are bounded sets only: states, site and agreement ids of the federation, outcomes,
call kinds, error kinds. Never a job id, user, project or request id (see
``docs/operations.md``). Every name carries its unit (``_seconds``, ``_total``,
``_units``, ``_entries``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from accord.domain.errors import AccordError, Busy, InDoubt, Unavailable
from accord.domain.jobs.model import JobState
from accord.domain.placement.records import Decision

log = logging.getLogger("accord.telemetry")

#: Buckets of placement's latency (it plans in memory: milliseconds, a slow pass ~1 s).
PLACEMENT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Buckets of a call to a site (a local process: milliseconds; Slurm over SSH: seconds).
SITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SITE_CALLS = ("dispatch", "look_up", "poll")
NO_SITE = "none"   # the site label of a job not placed yet
JOBS_EVERY_S = 5.0  # count the jobs at most this often (a scan of an index: see HubSources)


def failure_kind(exc: BaseException) -> str:
    """The bounded label of a failed site call: ``busy``, ``in_doubt``, ``unavailable``,
    ``refused`` (another Accord error) or ``error`` (anything else)."""
    for kind, name in ((Busy, "busy"), (InDoubt, "in_doubt"), (Unavailable, "unavailable"),
                       (AccordError, "refused")):
        if isinstance(exc, kind):
            return name
    return "error"


class Telemetry:
    """The metrics of one hub (see the module's docstring). Raises nothing."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.placements = Counter(
            "accord_placement_decisions_total", "Placement decisions, by kind (first placement or "
            "a deferred job reconsidered) and verdict", ["kind", "verdict"], registry=self.registry)
        self.placement_seconds = Histogram(
            "accord_placement_duration_seconds", "Time to decide one job's placement",
            ["kind"], buckets=PLACEMENT_BUCKETS, registry=self.registry)
        self.site_seconds = Histogram(
            "accord_site_call_duration_seconds", "Time of one call to a site's scheduler "
            "(dispatch: submit one job; look_up: find one; poll: one batched status poll)",
            ["site", "call"], buckets=SITE_BUCKETS, registry=self.registry)
        self.site_failures = Counter(
            "accord_site_call_failures_total", "Failed calls to a site's scheduler, by kind of "
            "failure", ["site", "call", "kind"], registry=self.registry)
        self._leading: Callable[[], bool] | None = None     # set by lead_by
        self._epoch: Callable[[], int | None] | None = None

    def placed(self, kind: str, decision: Decision, seconds: float) -> None:
        """Count one placement decision (``kind``: ``first`` or ``reconsider``)."""
        self.placements.labels(kind, decision.verdict.value).inc()
        self.placement_seconds.labels(kind).observe(seconds)

    @contextmanager
    def site_call(self, site: str, call: str) -> Iterator[None]:
        """Time the block as one ``call`` to ``site``; an exception it raises is counted
        by :func:`failure_kind` and raised again."""
        start = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.site_failures.labels(site, call, failure_kind(exc)).inc()
            raise
        finally:
            self.site_seconds.labels(site, call).observe(time.perf_counter() - start)

    def watch(self, sources: HubSources) -> HubCollector:
        """Read the hub's state from ``sources`` at every scrape; the collector."""
        collector = HubCollector(sources, self)
        self.registry.register(collector)
        return collector

    def lead_by(self, leading: Callable[[], bool], epoch: Callable[[], int | None]) -> None:
        """Report this replica's leadership of the dispatch lease from now on (``accord up``
        calls it once it holds a :class:`~accord.service.leadership.Leadership`)."""
        self._leading, self._epoch = leading, epoch

    def leadership(self) -> tuple[bool, int | None]:
        """Whether this replica leads now, and its lease epoch if it does."""
        leading = self._leading is not None and self._leading()
        return leading, (self._epoch() if self._epoch is not None and leading else None)

    def exposition(self) -> bytes:
        """Every metric in Prometheus's text format (collects the hub's state now)."""
        return generate_latest(self.registry)


@dataclass
class HubSources:
    """Where the scrape-time metrics come from: each a cheap call (an indexed count, a
    queue's length, the ledger's head row). Counting the jobs scans the jobs' state index
    (about 5 to 20 ms for 30,000 jobs on SQLite), so it is read at most once every
    ``jobs_every_s`` seconds; scrapes in between reuse the last count."""

    sites: tuple[str, ...]
    jobs: Callable[[], Mapping[tuple[str, str | None], int]]   # (state, site) -> count
    ledger_entries: Callable[[], int]
    last_closure: Callable[[], datetime | None]
    allocations: Callable[[], Mapping[str, tuple[float, float]]]   # agreement -> (granted, used)
    audit_queued: Callable[[], int]
    audit_spooled: Callable[[], int]
    commit_queued: Callable[[], int]
    now: Callable[[], datetime]
    jobs_every_s: float = JOBS_EVERY_S
    # agent site -> (seconds since its agent was last heard from, None: never; orders not yet taken)
    agents: Callable[[], Mapping[str, tuple[float | None, int]]] = dict
    # when a partner's witness last cosigned the ledger (None: never, or no witnesses)
    last_cosigned: Callable[[], datetime | None] = lambda: None


class HubCollector(Collector):
    """The hub's state, read from :class:`HubSources` at each scrape. A source that fails
    is logged and left out of that scrape; the others are still reported. Leadership comes
    from ``telemetry`` (:meth:`Telemetry.lead_by`; never set: not leading, no epoch)."""

    def __init__(self, sources: HubSources, telemetry: Telemetry) -> None:
        self.sources = sources
        self.telemetry = telemetry
        self._counted: tuple[float, dict[tuple[str, str], int]] | None = None   # (when, counts)

    def describe(self) -> Iterator[Metric]:
        """Nothing: the registry must not collect (read the store) when it is registered."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        for part in (self._jobs, self._ledger, self._closure, self._queues, self._allocations,
                     self._leadership, self._agents):
            try:
                yield from part()
            except Exception:  # a scrape must answer with what it can read
                log.exception("metrics: reading %s failed", part.__name__.strip("_"))

    def _jobs(self) -> Iterator[Metric]:
        counts = self._job_counts()
        g = GaugeMetricFamily("accord_jobs", "Jobs by lifecycle state and site (site "
                              f"'{NO_SITE}': not placed yet)", labels=["state", "site"])
        sites = (*self.sources.sites, NO_SITE)
        for each in JobState:
            for site in sites:
                g.add_metric([each.value, site], counts.get((each.value, site), 0))
        yield g

    def _job_counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (state, site), counted at most once every ``jobs_every_s``."""
        now = time.monotonic()
        if self._counted is None or now - self._counted[0] >= self.sources.jobs_every_s:
            counts: dict[tuple[str, str], int] = {}
            for (state, site), n in self.sources.jobs().items():
                counts[(state, site or NO_SITE)] = counts.get((state, site or NO_SITE), 0) + n
            self._counted = (now, counts)
        return self._counted[1]

    def _ledger(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("accord_ledger_entries", "Entries in the reciprocity ledger's "
                                "hash chain", value=self.sources.ledger_entries())

    def _closure(self) -> Iterator[Metric]:
        closed = self.sources.last_closure()
        if closed is not None:
            age = (self.sources.now() - closed).total_seconds()
            yield GaugeMetricFamily("accord_ledger_last_closure_age_seconds", "Time since the "
                                    "last period closure (a signed Merkle tree head)", value=age)
        cosigned = self.sources.last_cosigned()
        if cosigned is not None:
            age = (self.sources.now() - cosigned).total_seconds()
            yield GaugeMetricFamily("accord_ledger_last_cosigned_age_seconds", "Time since a "
                                    "partner's witness last cosigned the ledger's tree", value=age)

    def _queues(self) -> Iterator[Metric]:
        s = self.sources
        for name, doc, value in (
                ("accord_audit_queue_depth", "Audit records queued for the writer", s.audit_queued()),
                ("accord_audit_spooled", "Audit records waiting in the spool for the database",
                 s.audit_spooled()),
                ("accord_group_commit_queue_depth", "Submissions queued for the group committer",
                 s.commit_queued())):
            yield GaugeMetricFamily(name, doc, value=value)

    def _allocations(self) -> Iterator[Metric]:
        granted = GaugeMetricFamily("accord_allocation_granted_units", "Normalised units of the "
                                    "approved allocations in force, per agreement", labels=["agreement"])
        used = GaugeMetricFamily("accord_allocation_used_units", "Normalised units those "
                                 "allocations' projects used (ledger), per agreement", labels=["agreement"])
        for agreement, (g, u) in sorted(self.sources.allocations().items()):
            granted.add_metric([agreement], g)
            used.add_metric([agreement], u)
        yield granted
        yield used

    def _leadership(self) -> Iterator[Metric]:
        leading, epoch = self.telemetry.leadership()
        yield GaugeMetricFamily("accord_replica_leading", "1 if this replica holds the dispatch "
                                "lease (runs the dispatcher), else 0", value=int(leading))
        if epoch is not None:
            yield GaugeMetricFamily("accord_dispatch_lease_epoch", "The epoch of the dispatch "
                                    "lease this replica holds", value=epoch)

    def _agents(self) -> Iterator[Metric]:
        seen = GaugeMetricFamily("accord_agent_last_seen_age_seconds", "Time since the site's agent was "
                                 "last heard from (agent sites whose agent ever connected)", labels=["site"])
        backlog = GaugeMetricFamily("accord_agent_orders_pending", "Orders for the site its agent has "
                                    "not yet taken", labels=["site"])
        for site, (age, pending) in sorted(self.sources.agents().items()):
            if age is not None:
                seen.add_metric([site], age)
            backlog.add_metric([site], pending)
        yield seen
        yield backlog
