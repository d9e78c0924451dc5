"""Ports of the site-agent path (``docs/design/site-agent.md``): the hub's agent store and
request verifier, the agent's line to its hub, its own state, its jobs' directories, and the
files that travel with jobs. Re-exported by :mod:`accord.ports`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from accord.domain.agent.protocol import (
    Ack,
    AgentSeen,
    AgentStatus,
    CheckedReport,
    HeldJob,
    LogChunk,
    Order,
    Report,
    Resync,
    SignedRequest,
    SignedUsage,
    SiteView,
    Stream,
)
from accord.domain.jobs.files import OutputFile
from accord.domain.jobs.model import Job
from accord.domain.jobs.site import RemoteState
from accord.domain.placement.records import PoolLoad


class AgentStore(Protocol):
    """The hub's side of the site-agent protocol: orders, reports, signed usage, nonces,
    liveness and logs (``docs/design/site-agent.md``). Every write is idempotent by id."""

    def add_order(self, order: Order) -> Order:
        """Store the order unless one with its id exists; the stored one."""
        ...

    def live_dispatch(self, site: str, job_id: str) -> Order | None:
        """The latest dispatch order of the job at ``site`` its agent has not disowned."""
        ...

    def generation(self, site: str) -> int:
        """A number that changes when this process writes an order for ``site``."""
        ...

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(site)`` whenever :meth:`generation` of a site changes (from the
        committing thread; it must return at once and raise nothing)."""
        ...

    def changes(self, site: str) -> int:
        """A number that changes when this process commits an order, acknowledgement, report
        or loss for ``site``."""
        ...

    def accept(self, site: str, nonce: str, expires_at: float, at: datetime, key_id: str) -> bool:
        """Record a request's nonce and the agent's last word at once; False if a replay."""
        ...

    def pending(self, site: str, limit: int) -> list[Order]:
        """Orders of ``site`` not yet acknowledged, oldest first."""
        ...

    def backlog(self, site: str) -> int:
        """How many orders of ``site`` are not yet acknowledged."""
        ...

    def ack(self, site: str, acks: Sequence[Ack], at: datetime) -> int:
        """Mark orders delivered; how many were new. Raises NotFound, Forbidden (another site's)."""
        ...

    def report(self, site: str, reports: Sequence[CheckedReport], at: datetime) -> int:
        """Store reports (with their usage digests); how many changed. Raises NotFound,
        Forbidden (another site's job), Conflict (an end reported differently)."""
        ...

    def exchange(
        self, site: str, acks: Sequence[Ack], reports: Sequence[CheckedReport], at: datetime
    ) -> tuple[int, int]:
        """:meth:`ack` and :meth:`report` in one transaction, all or nothing: (new acks,
        changed reports). Raises as they do."""
        ...

    def signed_usage(self, digest: str) -> tuple[str, SignedUsage] | None:
        """The site and signed usage with this digest, if stored."""
        ...

    def statuses(self, refs: Sequence[str]) -> dict[str, AgentStatus]:
        """What the agents last said of these references (dispatched ones only)."""
        ...

    def seen(self, site: str, at: datetime, key_id: str, loads: Mapping[str, Any] | None = None,
             synced: bool = False) -> None:
        """Note a request of the site's agent."""
        ...

    def last_seen(self, site: str) -> AgentSeen | None:
        """When the site's agent was last heard from."""
        ...

    def expected(self, site: str) -> list[str]:
        """References the hub expects the site to hold."""
        ...

    def mark_lost(self, site: str, refs: Sequence[str], at: datetime) -> None:
        """The agent holds none of these acknowledged jobs."""
        ...

    def append_log(self, site: str, chunk: LogChunk) -> int:
        """Append a log chunk; the stream's size after it. Raises NotFound, Forbidden, Conflict."""
        ...

    def logs(self, ref: str) -> dict[Stream, tuple[bytes, bool]]:
        """Each stream's bytes at the hub and whether it was cut."""
        ...

class RequestVerifier(Protocol):
    """Checks an agent request's signature (RFC 9421; ``docs/design/site-agent.md``)."""

    def __call__(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes, now: datetime,
                 site_key: Callable[[str, str], bytes | None]) -> SignedRequest:
        """The checked signature; ``site_key(site, key_id)`` gives a current public key.

        Raises:
            Unauthenticated: missing, unknown key, bad, expired or too long-lived.
        """
        ...

class HubLink(Protocol):
    """The site agent's line to its hub (signed HTTPS; ``docs/design/site-agent.md``).

    Every method raises Unavailable when the hub cannot be reached or answers 5xx or 429
    (the agent tries again later), and the hub's refusal otherwise (InvalidInput, Forbidden,
    NotFound, Conflict, Unauthenticated).
    """

    def site(self) -> SiteView:
        """The agent's own site, as the hub knows it."""
        ...

    def orders(self, wait_s: float) -> list[Order]:
        """Orders not yet acknowledged, waiting up to ``wait_s`` for one."""
        ...

    def ack(self, acks: Sequence[Ack]) -> None:
        """Acknowledge orders the agent now holds."""
        ...

    def exchange(self, acks: Sequence[Ack], reports: Sequence[Report], wait_s: float) -> list[Order]:
        """Acknowledge and report (at most :data:`~accord.domain.agent.protocol.MAX_REPORTS`
        of each; the hub takes all or none), then the orders not yet acknowledged, waiting up
        to ``wait_s`` for one: one request for what :meth:`ack`, :meth:`report` and
        :meth:`orders` do."""
        ...

    def report(self, reports: Sequence[Report]) -> None:
        """Report on jobs."""
        ...

    def heartbeat(self, loads: Mapping[str, PoolLoad], held: Sequence[str] | None) -> Resync:
        """Say the agent is alive (with loads); with ``held``, resynchronise."""
        ...

    def log(self, chunk: LogChunk) -> int:
        """Send output; the offset to send next."""
        ...

    def input(self, ref: str, sha256: str) -> bytes:
        """An input file of one of the site's jobs."""
        ...

    def output(self, ref: str, name: str, sha256: str, data: bytes) -> None:
        """Send a declared output file of one of the site's jobs."""
        ...

class AgentState(Protocol):
    """The site agent's own durable state (its work directory)."""

    def take(self, orders: Sequence[Order], at: datetime) -> list[Order]:
        """Keep the orders, all in one durable write; those not taken before."""
        ...

    def unacked(self) -> list[tuple[str, str]]:
        """Orders not yet acknowledged: (order id, local id)."""
        ...

    def acked(self, order_ids: list[str]) -> None:
        """The hub has these acknowledgements."""
        ...

    def held(self) -> list[HeldJob]:
        """Jobs not yet reported ended."""
        ...

    def submitting(self, ref: str) -> None:
        """A submission may be in flight."""
        ...

    def submitted(self, ref: str, local_id: str) -> None:
        """The scheduler holds the job as ``local_id``."""
        ...

    def note(self, ref: str, text: str) -> None:
        """Why the job waits at the agent."""
        ...

    def reported(self, ref: str, state: RemoteState) -> None:
        """The hub took a report of ``state``."""
        ...

    def log_sent(self, ref: str, stream: Stream) -> tuple[int, bool]:
        """Bytes of the stream the hub has, and whether it was cut."""
        ...

    def set_log_sent(self, ref: str, stream: Stream, sent: int, cut: bool) -> None:
        """Record what the hub has of the stream."""
        ...

class FileStore(Protocol):
    """Files that travel with jobs, by SHA-256 (``docs/design/site-agent.md``, "Files")."""

    def put(self, data: bytes, by: str, at: datetime) -> str:
        """Store ``data`` once; its SHA-256."""
        ...

    def present(self, shas: Sequence[str]) -> set[str]:
        """Which digests are stored."""
        ...

    def get(self, sha: str) -> bytes | None:
        """A file's bytes, if stored."""
        ...

    def order_job(self, ref: str) -> tuple[str, dict[str, object]] | None:
        """The site and job document of the dispatch order for ``ref``."""
        ...

    def add_output(self, o: OutputFile, data: bytes, limits: tuple[int, int], at: datetime) -> bool:
        """Keep an output file once. Raises Conflict: other content, or over ``limits``."""
        ...

    def outputs(self, job_id: str) -> list[OutputFile]:
        """The job's output files."""
        ...

class JobDirectory(Protocol):
    """A site agent's view of its jobs' directories (inputs in, declared outputs out)."""

    def has_input(self, job: Job, name: str, sha256: str) -> bool:
        """Whether the input is in place with the right content."""
        ...

    def put_input(self, job: Job, name: str, data: bytes) -> None:
        """Write an input into the job's directory."""
        ...

    def outputs(self, job: Job, patterns: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The declared outputs to send, and what was left out and why."""
        ...

