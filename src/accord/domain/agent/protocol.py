"""The site-agent protocol's records: orders the hub gives, reports and log chunks the agent
sends, and the bounds on each (``docs/design/site-agent.md``).

Every record has an id that makes it idempotent: an order's id is its job reference and its
kind, a report's is the reference and the state it reports, a log chunk's the reference, the
stream and the offset. Parsers here turn the agent's JSON into records, naming every bad field;
they do no I/O.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.domain.errors import InvalidInput, Problem
from accord.domain.jobs.codec import parse_iso
from accord.domain.jobs.site import RemoteState

MAX_ORDERS = 100  # orders in one answer
MAX_REPORTS = 200  # reports in one request
MAX_REF = 120  # characters of a job reference or a site's own job id
MAX_REASON = 500  # characters of a reason
LOG_CHUNK_BYTES = 64 * 1024  # bytes of one log chunk
LOG_JOB_BYTES = 4 * 1024 * 1024  # bytes of one stream of one job kept at the hub
MAX_HELD = 10_000  # references in one resynchronisation
MAX_WAIT_S = 30.0  # longest long-poll


class OrderKind(enum.Enum):
    """What an order asks the site to do."""

    DISPATCH = "dispatch"  # run the job (the order carries its spec and placement)
    CANCEL = "cancel"  # stop it


class Stream(enum.Enum):
    """A job's output streams."""

    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, slots=True)
class Order:
    """One order for one site. ``ref`` is the hub's reference of the job there (its backend
    reference); ``job`` (dispatch orders) is the JSON the agent rebuilds the job from."""

    id: str
    site: str
    kind: OrderKind
    ref: str
    job_id: str
    created_at: datetime
    job: Mapping[str, Any] | None = None
    acked_at: datetime | None = None


def order_id(ref: str, kind: OrderKind) -> str:
    """The order's id: one order of each kind per job reference (so writing it twice is once)."""
    return f"{ref}/{kind.value}"


@dataclass(frozen=True, slots=True)
class Ack:
    """The agent holds an order (``local_id``: its scheduler's id for the job, if it has one)."""

    order: str
    local_id: str = ""


@dataclass(frozen=True, slots=True)
class SignedUsage:
    """Usage the host vouches for: canonical bytes (:mod:`accord.domain.agent.attest`), the
    signing key's id and the Ed25519 signature, both base64."""

    body: str
    key_id: str
    signature: str


@dataclass(frozen=True, slots=True)
class Report:
    """What the site says of one job now."""

    ref: str
    state: RemoteState
    local_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    gpus: int = 0
    gpu_seconds: float = 0.0
    energy_j: float | None = None
    reason: str = ""
    usage: SignedUsage | None = None


@dataclass(frozen=True, slots=True)
class CheckedReport:
    """A report as the hub takes it: the digest of its signed usage (checked), and the Slurm
    account and local user that usage names (site enforcement; empty otherwise)."""

    report: Report
    digest: str | None = None
    account: str = ""
    local_user: str = ""


@dataclass(frozen=True, slots=True)
class LogChunk:
    """``data`` of one stream of one job, from byte ``offset``; ``truncated``: the agent cut
    the stream at its cap and says so."""

    ref: str
    stream: Stream
    offset: int
    data: bytes
    truncated: bool = False


class _Reader:
    """Collects the problems of one request body."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, where: str, message: str, got: object = None, allowed: str | None = None) -> None:
        if len(self.problems) < 50:
            self.problems.append(Problem(where, message, None if got is None else _show(got), allowed))

    def text(
        self, d: Mapping[str, Any], key: str, where: str, *, limit: int = MAX_REF, required: bool = True
    ) -> str:
        v = d.get(key)
        if v is None and not required:
            return ""
        if not isinstance(v, str) or (required and not v) or len(v) > limit or "\x00" in v:
            self.bad(
                f"{where}.{key}",
                "must be a non-empty string" if required else "must be a string",
                v,
                f"at most {limit} characters",
            )
            return ""
        return v

    def items(self, d: Mapping[str, Any], key: str, limit: int) -> list[Any]:
        v = d.get(key)
        if not isinstance(v, list):
            self.bad(key, "must be a list", v, f"a JSON array of at most {limit} items")
            return []
        if len(v) > limit:
            self.bad(key, "has too many items", f"{len(v)} items", f"at most {limit}")
            return []
        return v

    def when(self, d: Mapping[str, Any], key: str, where: str) -> datetime | None:
        v = d.get(key)
        if v is None:
            return None
        try:
            t = parse_iso(v) if isinstance(v, str) else None
        except ValueError:
            t = None
        if t is None or t.tzinfo is None:
            self.bad(f"{where}.{key}", "must be an ISO 8601 time with a zone", v, "e.g. 2026-12-06T10:00:00Z")
        return t

    def number(
        self,
        d: Mapping[str, Any],
        key: str,
        where: str,
        *,
        integer: bool = False,
        required: bool = False,
        maximum: float = 1e15,
    ) -> float | None:
        v = d.get(key)
        if v is None:
            if required:
                self.bad(f"{where}.{key}", "is required", None, "a number")
            return None
        ok = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok or not math.isfinite(v) or not 0 <= v <= maximum:
            self.bad(
                f"{where}.{key}",
                "must be a finite number from 0",
                v,
                f"{'an integer' if integer else 'a number'} from 0 to {maximum:g}",
            )
            return None
        return float(v)

    def done(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems)


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _object(doc: object) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise InvalidInput([Problem("body", "must be a JSON object", _show(doc), "a JSON object")])
    return doc


def parse_acks(doc: object) -> list[Ack]:
    """The acknowledgements of ``{"acks": [{"order": ID, "local_id": TEXT}, ...]}``.

    Raises:
        InvalidInput: naming every bad field.
    """
    r = _Reader()
    out = []
    for i, a in enumerate(r.items(_object(doc), "acks", MAX_REPORTS)):
        w = f"acks[{i}]"
        if not isinstance(a, Mapping):
            r.bad(w, "must be an object", a, '{"order": ID, "local_id": TEXT}')
            continue
        out.append(Ack(r.text(a, "order", w, limit=2 * MAX_REF), r.text(a, "local_id", w, required=False)))
    r.done()
    return out


def parse_reports(doc: object) -> list[Report]:
    """The reports of ``{"reports": [...]}`` (fields in ``docs/design/site-agent.md``).

    Raises:
        InvalidInput: naming every bad field.
    """
    r = _Reader()
    out = []
    for i, d in enumerate(r.items(_object(doc), "reports", MAX_REPORTS)):
        if not isinstance(d, Mapping):
            r.bad(f"reports[{i}]", "must be an object", d, "a report object")
            continue
        out.append(_report(r, d, f"reports[{i}]"))
    r.done()
    return out


def parse_exchange(doc: object) -> tuple[list[Ack], list[Report]]:
    """What one exchange carries, ``{"acks": [...], "reports": [...]}``: each list optional
    and read as :func:`parse_acks` and :func:`parse_reports` read it.

    Raises:
        InvalidInput: naming every bad field of either list.
    """
    d = _object(doc)
    problems: list[Problem] = []
    acks: list[Ack] = []
    reports: list[Report] = []
    try:
        acks = parse_acks({"acks": d.get("acks", [])})
    except InvalidInput as exc:
        problems.extend(exc.problems)
    try:
        reports = parse_reports({"reports": d.get("reports", [])})
    except InvalidInput as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidInput(problems)
    return acks, reports


def _report(r: _Reader, d: Mapping[str, Any], w: str) -> Report:
    state = _state(r, d.get("state"), f"{w}.state")
    started, ended = r.when(d, "started_at", w), r.when(d, "ended_at", w)
    if started and ended and ended < started:
        r.bad(f"{w}.ended_at", "is before started_at", d.get("ended_at"), "a time at or after started_at")
    exit_code = d.get("exit_code")
    if exit_code is not None and (
        isinstance(exit_code, bool) or not isinstance(exit_code, int) or not -(2**31) <= exit_code < 2**31
    ):
        r.bad(f"{w}.exit_code", "must be an integer", exit_code, "a 32-bit integer, or null")
        exit_code = None
    return Report(
        ref=r.text(d, "ref", w),
        state=state,
        local_id=r.text(d, "local_id", w, required=False),
        started_at=started,
        ended_at=ended,
        exit_code=exit_code,
        gpus=int(r.number(d, "gpus", w, integer=True, maximum=1_000_000) or 0),
        gpu_seconds=r.number(d, "gpu_seconds", w) or 0.0,
        energy_j=r.number(d, "energy_j", w),
        reason=r.text(d, "reason", w, limit=MAX_REASON, required=False),
        usage=_usage(r, d.get("usage"), f"{w}.usage"),
    )


def _state(r: _Reader, v: object, where: str) -> RemoteState:
    try:
        state = RemoteState(v)
    except ValueError:
        state = None
    if state is None or state is RemoteState.LOST:
        r.bad(
            where,
            "is not a state an agent reports",
            v,
            ", ".join(s.value for s in RemoteState if s is not RemoteState.LOST),
        )
        return RemoteState.PENDING
    return state


def _usage(r: _Reader, v: object, where: str) -> SignedUsage | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        r.bad(where, "must be an object", v, '{"body": TEXT, "key_id": TEXT, "signature": BASE64}')
        return None
    return SignedUsage(
        r.text(v, "body", where, limit=4096),
        r.text(v, "key_id", where),
        r.text(v, "signature", where, limit=200),
    )


def parse_log_chunk(doc: object, data: bytes) -> LogChunk:
    """A log chunk from its header fields (``ref``, ``stream``, ``offset``, ``truncated``) and
    its bytes.

    Raises:
        InvalidInput: a bad field, or more than :data:`LOG_CHUNK_BYTES` of data.
    """
    d = _object(doc)
    r = _Reader()
    try:
        stream = Stream(d.get("stream"))
    except ValueError:
        r.bad("stream", "is not a stream", d.get("stream"), "stdout, stderr")
        stream = Stream.STDOUT
    offset = r.number(d, "offset", "chunk", integer=True, required=True, maximum=2**53)
    if len(data) > LOG_CHUNK_BYTES:
        r.bad("body", "is too large", f"{len(data)} bytes", f"at most {LOG_CHUNK_BYTES} bytes a chunk")
    truncated = d.get("truncated", False)
    if not isinstance(truncated, bool):
        r.bad("truncated", "must be true or false", truncated, "true, false")
        truncated = False
    chunk = LogChunk(r.text(d, "ref", "chunk"), stream, int(offset or 0), data, truncated)
    r.done()
    return chunk


def parse_held(doc: object) -> tuple[dict[str, Any], list[str] | None]:
    """A heartbeat's pool loads ``{"loads": {POOL: {"free_gpus": N, "queued_gpus": N}}}`` and,
    on a resynchronisation, ``"held"``: every reference the agent holds.

    Raises:
        InvalidInput: naming every bad field.
    """
    d = _object(doc)
    r = _Reader()
    loads = d.get("loads", {})
    if not isinstance(loads, Mapping) or len(loads) > 100:
        r.bad(
            "loads",
            "must be an object of at most 100 pools",
            loads,
            '{"POOL": {"free_gpus": N, "queued_gpus": N}}',
        )
        loads = {}
    clean: dict[str, Any] = {}
    for pool, load in loads.items():
        if not isinstance(load, Mapping):
            r.bad(f"loads.{pool}", "must be an object", load, '{"free_gpus": N, "queued_gpus": N}')
            continue
        clean[str(pool)[:MAX_REF]] = {
            k: int(r.number(load, k, f"loads.{pool}", integer=True, required=True, maximum=10**7) or 0)
            for k in ("free_gpus", "queued_gpus")
        }
    held: list[str] | None = None
    if "held" in d:
        held = []
        for i, h in enumerate(r.items(d, "held", MAX_HELD)):
            if isinstance(h, str) and 0 < len(h) <= MAX_REF:
                held.append(h)
            else:
                r.bad(f"held[{i}]", "is not a job reference", h, f"a string of 1 to {MAX_REF} characters")
    r.done()
    return clean, held


def final_states() -> Sequence[RemoteState]:
    """The states after which a site says nothing new of a job."""
    return tuple(s for s in RemoteState if s.is_final and s is not RemoteState.LOST)


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """What the hub holds of one job at an agent site: the agent's last report (PENDING if
    none yet), whether the agent acknowledged the dispatch order, and the digest of the usage
    the host signed (final reports)."""

    state: RemoteState
    acked: bool
    local_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    gpus: int = 0
    gpu_seconds: float = 0.0
    energy_j: float | None = None
    reason: str = ""
    attestation: str | None = None
    account: str = ""      # from the signed usage: the Slurm account the job ran under
    local_user: str = ""   # ... and the local user it ran as


@dataclass(frozen=True, slots=True)
class AgentSeen:
    """When a site's agent was last heard from, the loads it last reported
    (``{pool: {"free_gpus": N, "queued_gpus": N}}``), its key, its last resynchronisation."""

    site: str
    last_seen: datetime
    loads: Mapping[str, Mapping[str, int]]
    key_id: str
    synced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An agent's request whose signature checked: the site and key that signed it, its
    nonce (never to be accepted twice) and when the signature expires (seconds since the epoch)."""

    site: str
    key_id: str
    nonce: str
    expires: float


@dataclass(frozen=True, slots=True)
class SiteView:
    """What an agent is told of its own site at start: its partner and pools."""

    site: str
    partner: str
    pools: tuple[tuple[str, str, int], ...]  # (id, GPU model, GPUs)


@dataclass(frozen=True, slots=True)
class HeldJob:
    """A job the agent holds: the dispatch order's job document, its scheduler's id once
    submitted, whether a submission may be in flight, whether a cancel came, the last state
    the hub took, and why it waits (if it does)."""

    ref: str
    job_id: str
    job: Mapping[str, Any]
    local_id: str | None
    submitting: bool
    cancel: bool
    reported: RemoteState | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Resync:
    """A heartbeat's answer: the references the hub expects the site to hold, and those the
    agent said it does not hold (now counted lost)."""

    expected: list[str]
    lost: list[str]


def report_doc(r: Report) -> dict[str, Any]:
    """A report as the JSON :func:`parse_reports` reads."""
    doc: dict[str, Any] = {
        "ref": r.ref,
        "state": r.state.value,
        "local_id": r.local_id,
        "reason": r.reason[:MAX_REASON],
        "started_at": None if r.started_at is None else r.started_at.isoformat(),
        "ended_at": None if r.ended_at is None else r.ended_at.isoformat(),
        "exit_code": r.exit_code,
        "gpus": r.gpus,
        "gpu_seconds": r.gpu_seconds,
        "energy_j": r.energy_j,
    }
    if r.usage is not None:
        doc["usage"] = {"body": r.usage.body, "key_id": r.usage.key_id, "signature": r.usage.signature}
    return doc


def parse_orders(doc: object) -> list[Order]:
    """The orders of the hub's answer ``{"orders": [...]}`` (the agent's side).

    Raises:
        InvalidInput: the answer is not one (a hub of another version).
    """
    r = _Reader()
    out = []
    for i, d in enumerate(r.items(_object(doc), "orders", MAX_ORDERS)):
        w = f"orders[{i}]"
        try:
            out.append(
                Order(
                    str(d["id"]),
                    "",
                    OrderKind(d["kind"]),
                    str(d["ref"]),
                    str(d["job_id"]),
                    parse_iso(d["created_at"]) or datetime.min,
                    d.get("job"),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            r.bad(w, f"is not an order: {exc}", d)
    r.done()
    return out
