"""The site agent's own metrics (``accord site run --metrics-port N``), for the site's
Prometheus: its calls to the hub (by call and outcome, with their latency), its calls to the
site's scheduler, the orders it took, the jobs it holds, and when it last reached the hub.
Labels are bounded sets (call names, outcomes); never a job id (``docs/operations.md``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from accord.domain.agent.protocol import Ack, LogChunk, Order, Report, Resync, SiteView
from accord.domain.errors import AccordError, Unavailable
from accord.domain.jobs.model import Job
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteStatus
from accord.domain.placement.records import PoolLoad
from accord.ports import HubLink, SiteBackend

T = TypeVar("T")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class AgentMetrics:
    """The agent's metrics, on a registry of their own."""

    def __init__(self, held: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.hub_requests = Counter(
            "accord_agent_hub_requests",
            "Calls to the hub, by call and outcome (ok, unavailable, refused)",
            ["call", "outcome"],
            registry=r,
        )
        self.hub_seconds = Histogram(
            "accord_agent_hub_request_seconds",
            "Time of a call to the hub (a long poll for orders included)",
            ["call"],
            buckets=BUCKETS,
            registry=r,
        )
        self.scheduler_calls = Counter(
            "accord_agent_scheduler_calls",
            "Calls to the site's scheduler, by call and outcome",
            ["call", "outcome"],
            registry=r,
        )
        self.scheduler_seconds = Histogram(
            "accord_agent_scheduler_call_seconds",
            "Time of a call to the site's scheduler",
            ["call"],
            buckets=BUCKETS,
            registry=r,
        )
        self.orders = Counter(
            "accord_agent_orders_received",
            "Orders the hub sent (a repeat counted again)",
            ["kind"],
            registry=r,
        )
        self.last_contact = Gauge(
            "accord_agent_last_hub_contact_timestamp_seconds",
            "When the agent last reached the hub (Unix time)",
            registry=r,
        )
        Gauge(
            "accord_agent_jobs_held", "Jobs the agent holds (not yet reported ended)", registry=r
        ).set_function(lambda: float(held()))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` (a thread of its own)."""
        start_http_server(port, addr=host, registry=self.registry)

    @contextmanager
    def hub_call(self, call: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "ok"
        try:
            yield
            self.last_contact.set_to_current_time()
        except Unavailable:
            outcome = "unavailable"
            raise
        except AccordError:
            outcome = "refused"
            self.last_contact.set_to_current_time()
            raise
        finally:
            self.hub_requests.labels(call, outcome).inc()
            self.hub_seconds.labels(call).observe(time.perf_counter() - start)

    @contextmanager
    def scheduler_call(self, call: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except AccordError as exc:
            outcome = type(exc).__name__.lower()
            raise
        finally:
            self.scheduler_calls.labels(call, outcome).inc()
            self.scheduler_seconds.labels(call).observe(time.perf_counter() - start)


class MeteredHub:
    """A :class:`~accord.ports.HubLink` that counts and times every call of another."""

    def __init__(self, inner: HubLink, m: AgentMetrics) -> None:
        self.inner, self.m = inner, m

    def _call(self, name: str, f: Callable[[], T]) -> T:
        with self.m.hub_call(name):
            return f()

    def site(self) -> SiteView:
        return self._call("site", self.inner.site)

    def orders(self, wait_s: float) -> list[Order]:
        got = self._call("orders", lambda: self.inner.orders(wait_s))
        for o in got:
            self.m.orders.labels(o.kind.value).inc()
        return got

    def ack(self, acks: Sequence[Ack]) -> None:
        self._call("ack", lambda: self.inner.ack(acks))

    def report(self, reports: Sequence[Report]) -> None:
        self._call("report", lambda: self.inner.report(reports))

    def exchange(self, acks: Sequence[Ack], reports: Sequence[Report], wait_s: float) -> list[Order]:
        got = self._call("exchange", lambda: self.inner.exchange(acks, reports, wait_s))
        for o in got:
            self.m.orders.labels(o.kind.value).inc()
        return got

    def heartbeat(self, loads: Mapping[str, PoolLoad], held: Sequence[str] | None) -> Resync:
        return self._call("heartbeat", lambda: self.inner.heartbeat(loads, held))

    def log(self, chunk: LogChunk) -> int:
        return self._call("log", lambda: self.inner.log(chunk))

    def input(self, ref: str, sha256: str) -> bytes:
        return self._call("input", lambda: self.inner.input(ref, sha256))

    def output(self, ref: str, name: str, sha256: str, data: bytes) -> None:
        self._call("output", lambda: self.inner.output(ref, name, sha256, data))


class MeteredScheduler:
    """A :class:`~accord.ports.SiteBackend` that counts and times every call of another."""

    def __init__(self, inner: SiteBackend, m: AgentMetrics) -> None:
        self.inner, self.m = inner, m
        self.site_id = inner.site_id

    def __getattr__(self, name: str) -> Any:  # anything else (its job root) as the backend's
        return getattr(self.inner, name)

    def _call(self, name: str, f: Callable[[], T]) -> T:
        with self.m.scheduler_call(name):
            return f()

    def loads(self) -> Mapping[str, PoolLoad]:
        return self._call("loads", self.inner.loads)

    def look_up(self, job: Job) -> Dispatched | None:
        return self._call("look_up", lambda: self.inner.look_up(job))

    def submit(self, job: Job) -> Dispatched:
        return self._call("submit", lambda: self.inner.submit(job))

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        return self._call("poll", lambda: self.inner.poll(refs))

    def cancel(self, ref: str) -> None:
        self._call("cancel", lambda: self.inner.cancel(ref))

    def logs(self, ref: str, job: Job) -> JobLogs:
        return self._call("logs", lambda: self.inner.logs(ref, job))
