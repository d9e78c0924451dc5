"""Jobs: the spec a researcher submits and the lifecycle as a pure state machine.

The lifecycle is an explicit transition table: an :class:`Event` applied to a
:class:`Job` gives a new ``Job`` with the event appended to its story, or raises
:class:`InvalidTransition`. Nothing here reads a clock: every event carries its time.

States (see ``docs/design/job-lifecycle.md`` for the diagram)::

    submitted ─place→ placed ─dispatch→ dispatched ─start→ running ─complete→ completed
        │  ↑            │ ↑                 │                  ├─fail→ failed
        │  └─release─ held/deferred         └─requeue→ submitted ├─time_out→ timed_out
        └──────────── cancel (any non-final state) ─────────────┴─cancel→ cancelled
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime

from accord.domain.errors import InvalidTransition


class JobState(enum.Enum):
    """Where a job is in its life."""

    SUBMITTED = "submitted"
    HELD = "held"
    DEFERRED = "deferred"
    PLACED = "placed"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        """Whether no event can move the job any more."""
        return self in FINAL_STATES

    @property
    def at_site(self) -> bool:
        """Whether the job has been handed to a site backend and not finished."""
        return self in (JobState.DISPATCHED, JobState.RUNNING)


FINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
)


class EventKind(enum.Enum):
    """What can happen to a job."""

    SUBMIT = "submit"
    PLACE = "place"
    DEFER = "defer"
    HOLD = "hold"
    RELEASE = "release"
    DISPATCH = "dispatch"
    REQUEUE = "requeue"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    TIME_OUT = "time_out"
    CANCEL = "cancel"
    NOTE = "note"


S, K = JobState, EventKind

TRANSITIONS: dict[tuple[JobState, EventKind], JobState] = {
    (S.SUBMITTED, K.PLACE): S.PLACED,
    (S.SUBMITTED, K.DEFER): S.DEFERRED,
    (S.SUBMITTED, K.HOLD): S.HELD,
    (S.SUBMITTED, K.FAIL): S.FAILED,
    (S.SUBMITTED, K.CANCEL): S.CANCELLED,
    (S.HELD, K.RELEASE): S.SUBMITTED,
    (S.HELD, K.FAIL): S.FAILED,
    (S.HELD, K.CANCEL): S.CANCELLED,
    (S.DEFERRED, K.RELEASE): S.SUBMITTED,
    (S.DEFERRED, K.HOLD): S.HELD,
    (S.DEFERRED, K.CANCEL): S.CANCELLED,
    (S.PLACED, K.DISPATCH): S.DISPATCHED,
    (S.PLACED, K.REQUEUE): S.SUBMITTED,
    (S.PLACED, K.HOLD): S.HELD,
    (S.PLACED, K.FAIL): S.FAILED,
    (S.PLACED, K.CANCEL): S.CANCELLED,
    (S.DISPATCHED, K.START): S.RUNNING,
    (S.DISPATCHED, K.REQUEUE): S.SUBMITTED,
    (S.DISPATCHED, K.COMPLETE): S.COMPLETED,
    (S.DISPATCHED, K.FAIL): S.FAILED,
    (S.DISPATCHED, K.TIME_OUT): S.TIMED_OUT,
    (S.DISPATCHED, K.CANCEL): S.CANCELLED,
    (S.RUNNING, K.COMPLETE): S.COMPLETED,
    (S.RUNNING, K.FAIL): S.FAILED,
    (S.RUNNING, K.TIME_OUT): S.TIMED_OUT,
    (S.RUNNING, K.CANCEL): S.CANCELLED,
}
"""(state, event) → next state. ``NOTE`` is allowed in every state and changes nothing."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a researcher asks for. Validated by :mod:`accord.domain.jobs.spec`; stored as
    :func:`accord.domain.jobs.codec.encode_spec` derives from these fields (a field whose
    metadata says ``omit_none`` is left out of the encoding when None, so the specs stored
    before it existed keep their ``spec_hash``)."""

    name: str
    gpus: int
    time_limit_s: int
    command: tuple[str, ...] = ()
    script: str | None = None
    gpu_model: str | None = None
    project: str = "default"
    partner: str | None = None
    theme: str | None = None
    earliest_start: datetime | None = None
    deadline: datetime | None = None
    data_residency: tuple[str, ...] = ()
    site: str | None = None
    inputs: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})    # "NAME=sha256:HEX"
    outputs: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})   # paths or patterns
    # Set by Accord from the submitter's institution (never by the submitter): the sector
    # an agreement's ``sectors`` must admit. None: not known (the embedded admin).
    sector: str | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a job, with when and why.

    ``data`` holds event-specific facts as strings (site, pool, backend ref, exit
    code, ...), so the story can be stored and shown without a schema per kind;
    ``stimulus`` is the id of what caused it (:mod:`accord.domain.jobs.stimuli`).
    """

    kind: EventKind
    at: datetime
    reason: str = ""
    data: tuple[tuple[str, str], ...] = ()
    stimulus: str = ""

    def get(self, key: str) -> str | None:
        """The value of ``key`` in ``data``, if present."""
        for k, v in self.data:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One line of a job's story: the event and the states it moved between."""

    seq: int
    event: Event
    before: JobState | None
    after: JobState


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a job was sent."""

    site: str
    pool: str
    agreement: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job ended at its site, as the backend reported it."""

    exit_code: int | None
    started_at: datetime | None
    ended_at: datetime | None
    gpu_seconds: float
    reason: str = ""
    gpus: int = 0
    energy_j: float | None = None
    attestation: str | None = None   # SHA-256 of the usage the host signed (agent sites)
    account: str = ""                # with site enforcement: the Slurm account it ran under
    local_user: str = ""             # ... and the site's local user it ran as


class DispatchStatus(enum.Enum):
    """Where a placed job's hand-over to its site stands."""

    NONE = "none"            # nothing outstanding: not sent for this placement, or the site said no
    SENT = "sent"            # written ahead: sent or about to be, outcome unknown (look up before resending)
    IN_DOUBT = "in_doubt"    # the site did not answer whether it took it (look up)


class DeferKind(enum.Enum):
    """Why a job waits for a time."""

    EARLIEST_START = "earliest_start"   # its own earliest start
    PLACEMENT = "placement"             # placement chose a later start (a cleaner hour, a shorter queue)


class HoldKind(enum.Enum):
    """Why a job waits for a person."""

    COMPLIANCE = "compliance"   # a site operator's review (the large-run rule)
    ALLOCATION = "allocation"   # the allocation would be overdrawn: an officer approves more


class Priority(enum.Enum):
    """Where a job stands in the placement queue."""

    NORMAL = "normal"
    LOW = "low"                 # past its allocation's lower-at share: yields to other jobs


@dataclass(frozen=True, slots=True)
class Deferral:
    """Why and until when a deferred job waits. ``site`` is where placement would have run it
    (PLACEMENT); ``recheck_at`` when placement looks again whether an earlier start or another
    site has become better (PLACEMENT; None for EARLIEST_START)."""

    kind: DeferKind
    until: datetime
    site: str | None = None
    recheck_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a held job waits: the rule, and where (COMPLIANCE: the site and pool it would run
    at; ALLOCATION: the allocations it would overdraw, comma-separated)."""

    kind: HoldKind
    rule: str = ""
    site: str | None = None
    pool: str | None = None
    allocations: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job as Accord knows it; every change goes through :func:`apply`."""

    id: str
    spec: JobSpec
    state: JobState
    submitted_at: datetime
    idempotency_key: str | None = None
    owner: str = "admin"
    placement: Placement | None = None
    backend_ref: str | None = None
    gpu_indices: tuple[int, ...] = ()
    outcome: Outcome | None = None
    not_before: datetime | None = None
    story: tuple[StoryEntry, ...] = field(default=())
    version: int = 0
    # The sub-states the lifecycle machine keeps (docs/design/job-lifecycle.md):
    dispatch: DispatchStatus = DispatchStatus.NONE
    deferral: Deferral | None = None          # while deferred
    hold: Hold | None = None                  # while held
    priority: Priority = Priority.NORMAL
    cancel: str | None = None                 # a cancel asked of its site, not yet confirmed (the reason)
    window_end: datetime | None = None        # a job without a deadline keeps its first deferral's window
    start_came: bool = False                  # just released because the start placement chose has come

    @property
    def reason(self) -> str:
        """The reason of the latest event that gave one."""
        for entry in reversed(self.story):
            if entry.event.reason:
                return entry.event.reason
        return ""


def new_job(
    job_id: str,
    spec: JobSpec,
    at: datetime,
    *,
    idempotency_key: str | None = None,
    owner: str = "admin",
    stimulus: str = "",
) -> Job:
    """A freshly submitted job whose story starts with its submission (caused by ``stimulus``)."""
    event = Event(EventKind.SUBMIT, at, "submitted", (), stimulus)
    return Job(
        id=job_id,
        spec=spec,
        state=JobState.SUBMITTED,
        submitted_at=at,
        idempotency_key=idempotency_key,
        owner=owner,
        story=(StoryEntry(0, event, None, JobState.SUBMITTED),),
    )


def next_state(state: JobState, kind: EventKind) -> JobState:
    """The state ``kind`` leads to from ``state``.

    Raises:
        InvalidTransition: the table has no such move; the message lists the
            events the state does allow.

    >>> next_state(JobState.SUBMITTED, EventKind.PLACE).value
    'placed'
    """
    if kind is EventKind.NOTE:
        return state
    target = TRANSITIONS.get((state, kind))
    if target is None:
        allowed = sorted(k.value for (s, k) in TRANSITIONS if s is state)
        raise InvalidTransition(
            f"a job in state {state.value!r} cannot take event {kind.value!r}; "
            f"allowed: {', '.join(allowed) or 'none (final state)'}"
        )
    return target


def apply(job: Job, event: Event, **changes: object) -> Job:
    """Apply ``event`` to ``job``: the next state, the story extended, ``changes`` set.

    ``changes`` are field updates that belong to the event (``placement`` with
    PLACE, ``backend_ref`` with DISPATCH, ``outcome`` with a final event ...).

    Raises:
        InvalidTransition: the event is not allowed in the job's state.
    """
    after = next_state(job.state, event.kind)
    entry = StoryEntry(len(job.story), event, job.state, after)
    updated: Job = replace(job, state=after, story=(*job.story, entry), **changes)  # type: ignore[arg-type]
    return updated


def allowed_events(state: JobState) -> tuple[EventKind, ...]:
    """Events the state accepts (besides NOTE)."""
    return tuple(k for (s, k) in TRANSITIONS if s is state)
