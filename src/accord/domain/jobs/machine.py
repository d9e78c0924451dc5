"""The job lifecycle as a pure state machine: stimuli in, events and instructions out.

In the style of dask's ``WorkerState``. :func:`handle` takes a job and a :class:`Stimulus`
(something that happened to it, or a pass of the broker looking at it) and returns a
:class:`Step`: the job after it, the events it added to the story (each records the id of the
stimulus that caused it) and the :class:`Instruction` values that whoever drives the machine
must carry out. Carrying one out gives the next stimulus: :class:`Dispatch` gives
:class:`DispatchConfirmed`, :class:`DispatchRefused`, :class:`DispatchInDoubt` or
:class:`SiteUnavailable`; :class:`LookUp` gives :class:`DispatchConfirmed` or :class:`NotAtSite`.
The machine holds every rule; the broker (and the simulator's broker engine) only gathers
facts, asks, stores and executes. Nothing here reads a clock: every stimulus carries its time.

A job's state is its :class:`~accord.domain.jobs.model.JobState` and the typed sub-state
fields of :class:`~accord.domain.jobs.model.Job` (``dispatch``, ``deferral``, ``hold``,
``priority``, ``cancel``, ``window_end``, ``start_came``); ``docs/design/job-lifecycle.md``
draws them. Every stimulus is answered in every state (:data:`HANDLERS`): one that no longer
applies (a report on a job that has moved on, a decision on a job no longer held) changes
nothing, and a final state absorbs everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from accord.domain.access.review import Action, Review
from accord.domain.jobs.model import (
    DeferKind,
    Deferral,
    DispatchStatus,
    Event,
    EventKind,
    Hold,
    HoldKind,
    Job,
    JobSpec,
    JobState,
    Placement,
    Priority,
    apply,
    new_job,
)
from accord.domain.jobs.site import RemoteState
from accord.domain.jobs.stimuli import (
    AllocationApproved,
    Cancel,
    CancelRequested,
    ComplianceDecided,
    Dispatch,
    DispatchConfirmed,
    DispatchInDoubt,
    DispatchRefused,
    Instruction,
    InternalError,
    LookUp,
    NotAtSite,
    Notify,
    Place,
    PlacementDecided,
    PlacementReviewed,
    Reconsider,
    Reconsidered,
    RecordUsage,
    ReviewPlacement,
    Rules,
    SiteDown,
    SiteReported,
    SiteUnavailable,
    SiteUp,
    Step,
    Stimulus,
    Timer,
)
from accord.domain.placement.place import flexibility_s, pool_keys
from accord.domain.placement.records import Candidate, Decision, Verdict, retry_waiting_at


# ------------------------------------------------------------------ the machine
def submit(job_id: str, spec: JobSpec, s: Stimulus, *, owner: str, idempotency_key: str | None = None,
           notes: tuple[str, ...] = ()) -> Step:
    """A new job, submitted: its story starts with the submission and the rules applied."""
    job = new_job(job_id, spec, s.at, idempotency_key=idempotency_key, owner=owner, stimulus=s.id)
    c = _Change(job, s)
    for note in notes:
        c.event(EventKind.NOTE, note)
    return replace(c.step(), events=(job.story[0].event, *c.events))


def handle(job: Job, s: Stimulus, rules: Rules) -> Step:
    """The step ``s`` causes for ``job``; a final job absorbs every stimulus (a request to
    cancel it is refused)."""
    if job.state.is_final:
        refused = f"job {job.id} has already ended ({job.state.value})" \
            if isinstance(s, (CancelRequested, ComplianceDecided, AllocationApproved)) else None
        return Step(job, refused=refused)
    c = _Change(job, s)
    HANDLERS[type(s)](c, s, rules)
    return c.step()


def placement_spec(job: Job) -> JobSpec:
    """The spec placement sees: a job without a deadline that placement deferred keeps the
    window of its first deferral as its deadline, so reconsidering or releasing it cannot
    move its window ahead of it."""
    if job.spec.deadline is not None or job.window_end is None:
        return job.spec
    return replace(job.spec, deadline=job.window_end)


class _Change:
    """The job as a handler changes it, and what it records and asks for."""

    def __init__(self, job: Job, s: Stimulus) -> None:
        self.job, self.s = job, s
        self.events: list[Event] = []
        self.instructions: list[Instruction] = []
        self.refused: str | None = None

    def event(self, kind: EventKind, reason: str, data: tuple[tuple[str, str], ...] = (),
              at: datetime | None = None, **changes: Any) -> None:
        changes.setdefault("start_came", False)   # true only right after that release
        e = Event(kind, at or self.s.at, reason, data, self.s.id)
        self.job = apply(self.job, e, **changes)
        self.events.append(e)

    def note_once(self, reason: str, **changes: Any) -> None:
        """A NOTE unless the story already ends with the same one (a long outage is one line)."""
        last = self.job.story[-1].event if self.job.story else None
        if last is not None and last.kind is EventKind.NOTE and last.reason == reason:
            self.set(**changes)
            return
        self.event(EventKind.NOTE, reason, **changes)

    def set(self, **changes: Any) -> None:
        """Change sub-states without an event (the job object stays the same when nothing
        changes, so the driver stores nothing)."""
        if any(getattr(self.job, k) != v for k, v in changes.items()):
            self.job = replace(self.job, **changes)

    def do(self, instruction: Instruction) -> None:
        self.instructions.append(instruction)

    def step(self) -> Step:
        return Step(self.job, tuple(self.events), tuple(self.instructions), self.refused)


def _timer(c: _Change, s: Timer, rules: Rules) -> None:
    job = c.job
    if job.state is JobState.DEFERRED:
        _deferred_due(c, s, rules)
    elif job.state is JobState.SUBMITTED and (job.not_before is None or job.not_before <= s.at):
        start = job.spec.earliest_start
        if start is not None and start > s.at:
            c.event(EventKind.DEFER, f"waits for its earliest start {start.isoformat()}", not_before=start,
                    deferral=Deferral(DeferKind.EARLIEST_START, start))
        else:
            c.do(Place(job.id))
    elif job.state is JobState.PLACED and job.placement is not None:
        if job.dispatch is DispatchStatus.NONE:
            c.set(dispatch=DispatchStatus.SENT)   # written ahead: a crash from here on looks it up
            c.do(Dispatch(job.id, job.placement.site, job.placement.pool))
        else:
            c.do(LookUp(job.id, job.placement.site))


def _deferred_due(c: _Change, s: Timer, rules: Rules) -> None:
    job, d = c.job, c.job.deferral
    placement = d is not None and d.kind is DeferKind.PLACEMENT
    if job.not_before is None or job.not_before <= s.at:
        c.event(EventKind.RELEASE, "its start time has come", (("released", "start"),) if placement else (),
                not_before=None, deferral=None, start_came=placement)
    elif d is not None and placement and d.recheck_at is not None and d.recheck_at <= s.at:
        c.do(Reconsider(job.id))


def _placement_decided(c: _Change, s: PlacementDecided, rules: Rules) -> None:
    if c.job.state is not JobState.SUBMITTED:
        return
    d = s.decision
    if d.verdict is Verdict.DEFER and d.chosen is not None and d.start is not None:
        if c.job.start_came:
            d = d.placed_now("Placed at the start its deferral chose: a job is shifted in time once, "
                             "so its window cannot move ahead of it")
        else:
            instead = _defer(c, d, rules)
            if instead is None:
                return
            d = instead
    if d.verdict is Verdict.PLACE and d.chosen is not None:
        if rules.reviews and d.chosen.agreement is not None:
            c.do(ReviewPlacement(c.job.id, d))   # only a job abroad meets compliance and allocations
        else:
            _place(c, d, None)
    elif d.verdict is Verdict.REJECT:
        c.event(EventKind.FAIL, d.explain())
    else:
        _wait(c, d, s)


def _defer(c: _Change, d: Decision, rules: Rules) -> Decision | None:
    """Defer the job to the decision's start; or, when releasing it then would leave less than
    its run time before its deadline, the decision to place it now instead. A job without a
    deadline keeps the window of its first deferral (``window_end``)."""
    job, chosen, start, now = c.job, d.chosen, d.start, c.s.at
    assert chosen is not None and start is not None
    spec = placement_spec(job)
    run = timedelta(seconds=spec.time_limit_s)
    if spec.deadline is not None and start + run > spec.deadline:
        return d.placed_now(f"Placed at once: starting at {start.isoformat()} would finish "
                            f"after the deadline {spec.deadline.isoformat()}")
    data: tuple[tuple[str, str], ...] = (("pool", chosen.pool), ("site", chosen.site),
                                         ("start", start.isoformat()), ("score", f"{chosen.score:.4f}"))
    window_end = job.window_end
    if spec.deadline is None:
        k = pool_keys(rules.federation).index((chosen.site, chosen.pool))
        window_end = now + timedelta(seconds=flexibility_s(spec, rules.federation, now)[k]) + run
        data += (("window_end", window_end.isoformat()),)
    recheck = now + timedelta(seconds=rules.replan_s)
    c.event(EventKind.DEFER, d.explain(), data, not_before=start, window_end=window_end,
            deferral=Deferral(DeferKind.PLACEMENT, start, chosen.site, recheck))
    return None


def _wait(c: _Change, d: Decision, s: PlacementDecided) -> None:
    """Note why the job waits. While every site answers, only a new UTC day (an agreement in
    force) or month (quotas renewed) can change that: the job is tried again at the next
    midnight, and until then leaves the queue to the jobs behind it."""
    if s.sites_down:
        c.note_once(d.explain())   # a site that is down may answer next pass
        return
    retry = datetime.fromtimestamp(retry_waiting_at(s.at.timestamp()), UTC)
    c.event(EventKind.NOTE, f"{d.explain()} Tried again at {retry:%Y-%m-%d %H:%M} UTC, when the day turns.",
            not_before=retry)


def _placement_reviewed(c: _Change, s: PlacementReviewed, rules: Rules) -> None:
    if c.job.state is not JobState.SUBMITTED:
        return
    r = s.review
    if r.action is Action.HOLD:
        c.event(EventKind.HOLD, r.note, r.data, hold=_hold(r))
        c.do(Notify(c.job.id, "held", r.note))
    elif r.action is Action.FAIL:
        c.event(EventKind.FAIL, r.note, r.data)
        c.do(Notify(c.job.id, "failed", r.note))
    elif r.action is Action.LOWER and c.job.priority is Priority.NORMAL:
        c.event(EventKind.NOTE, r.note + "; it yields to other jobs in the next pass",
                (*r.data, ("priority", "low")), priority=Priority.LOW)
    else:
        _place(c, s.decision, r)


def _hold(r: Review) -> Hold:
    data = dict(r.data)
    kind = r.hold or HoldKind.COMPLIANCE
    return Hold(kind, data.get("compliance_rule", ""), data.get("site"), data.get("pool"),
                data.get("allocation"))


def _place(c: _Change, d: Decision, review: Review | None) -> None:
    chosen = d.chosen
    assert chosen is not None
    why = d.explain() + (f" {review.note}" if review is not None and review.note else "")
    c.event(EventKind.PLACE, why, (("pool", chosen.pool), ("site", chosen.site),
                                   ("score", f"{chosen.score:.4f}"), *_estimates(chosen, d.reference)),
            placement=Placement(chosen.site, chosen.pool, chosen.agreement), not_before=None)
    # Written ahead, in the same store write as the placement: a crash before the site answers
    # leaves a job that is looked up at its site before it is sent again.
    c.event(EventKind.NOTE, f"dispatching to {chosen.site}", (("intent", "dispatch"),),
            dispatch=DispatchStatus.SENT)
    c.do(Dispatch(c.job.id, chosen.site, chosen.pool))


def _estimates(c: Candidate, ref: Candidate | None) -> tuple[tuple[str, str], ...]:
    """The chosen candidate's estimated emissions and the reference's (running now at the
    job's home site: the baseline a saving is measured against), in grams; nothing that
    placement did not estimate."""
    out: list[tuple[str, str]] = []
    if c.emissions_g is not None:
        out.append(("emissions_g", f"{c.emissions_g:.3f}"))
        if ref is not None and ref.emissions_g is not None:
            out += [("baseline_g", f"{ref.emissions_g:.3f}"), ("baseline_site", ref.site),
                    ("baseline_pool", ref.pool)]
    return tuple(out)


def _reconsidered(c: _Change, s: Reconsidered, rules: Rules) -> None:
    """Release a job placement deferred if the best choice moved (another site, or a start at
    least a slot earlier), so it is placed anew; an unchanged decision leaves no trace in the
    story, only when placement looks again."""
    job, deferral, d = c.job, c.job.deferral, s.decision
    if job.state is not JobState.DEFERRED or deferral is None or deferral.kind is not DeferKind.PLACEMENT:
        return
    again = replace(deferral, recheck_at=s.at + timedelta(seconds=rules.replan_s))
    if d.chosen is None or d.verdict not in (Verdict.PLACE, Verdict.DEFER):
        c.set(deferral=again)
        return
    start = d.start or s.at
    if d.chosen.site == deferral.site and start + rules.slot > (job.not_before or s.at):
        c.set(deferral=again)
        return
    c.event(EventKind.RELEASE, f"reconsidered: forecasts or queues changed; the best start is now "
                               f"{start.isoformat()} at {d.chosen.site} (was {job.not_before} at "
                               f"{deferral.site})", not_before=None, deferral=None)


def _dispatch_confirmed(c: _Change, s: DispatchConfirmed, rules: Rules) -> None:
    if c.job.state is not JobState.PLACED or c.job.placement is None:
        return
    verb = "adopted the submission found at" if s.adopted else "dispatched to"
    c.event(EventKind.DISPATCH, f"{verb} {c.job.placement.site}", (("backend_ref", s.backend_ref),),
            backend_ref=s.backend_ref, gpu_indices=s.gpu_indices, dispatch=DispatchStatus.NONE)


def _dispatch_refused(c: _Change, s: DispatchRefused, rules: Rules) -> None:
    if c.job.state is JobState.PLACED:
        c.note_once(f"waiting for capacity: {s.reason}", dispatch=DispatchStatus.NONE)


def _dispatch_in_doubt(c: _Change, s: DispatchInDoubt, rules: Rules) -> None:
    if c.job.state is JobState.PLACED and c.job.placement is not None:
        c.note_once(f"dispatch to {c.job.placement.site} in doubt, will check: {s.reason}",
                    dispatch=DispatchStatus.IN_DOUBT)


def _not_at_site(c: _Change, s: NotAtSite, rules: Rules) -> None:
    job = c.job
    if job.state is JobState.PLACED and job.placement is not None and job.dispatch is not DispatchStatus.NONE:
        c.set(dispatch=DispatchStatus.SENT)   # still written ahead: sent now
        c.do(Dispatch(job.id, job.placement.site, job.placement.pool))


def _site_unavailable(c: _Change, s: SiteUnavailable, rules: Rules) -> None:
    """The site could not be reached to take the job: back to placement, which may choose
    another site."""
    if c.job.state is JobState.PLACED and c.job.placement is not None:
        c.event(EventKind.REQUEUE, f"site {c.job.placement.site} unavailable: {s.reason}", placement=None,
                dispatch=DispatchStatus.NONE)


def _site_down(c: _Change, s: SiteDown, rules: Rules) -> None:
    if c.job.state.at_site:
        c.note_once(f"cannot reach site {s.site}: {s.reason}")


def _nothing(c: _Change, s: Stimulus, rules: Rules) -> None:
    """A stimulus with nothing to change (a site back up: its jobs' next reports tell)."""


def news(state: JobState, remote: RemoteState) -> bool:
    """Whether a site's status means something new for a job in ``state`` (the broker loads
    only those jobs)."""
    if remote is RemoteState.PENDING:
        return False
    return not (remote is RemoteState.RUNNING and state is JobState.RUNNING)


FINAL_EVENT = {
    RemoteState.COMPLETED: EventKind.COMPLETE,
    RemoteState.FAILED: EventKind.FAIL,
    RemoteState.CANCELLED: EventKind.CANCEL,
    RemoteState.TIMEOUT: EventKind.TIME_OUT,
    RemoteState.NODE_FAIL: EventKind.FAIL,
    RemoteState.LOST: EventKind.FAIL,
}


def _reported(c: _Change, s: SiteReported, rules: Rules) -> None:
    status = s.status
    if not c.job.state.at_site or not news(c.job.state, status.state):
        return
    if status.state is RemoteState.RUNNING:
        c.event(EventKind.START, "started at the site", at=status.started_at or s.at)
        return
    if c.job.state is JobState.DISPATCHED and status.started_at is not None:
        c.event(EventKind.START, "started at the site", at=status.started_at)
    o = status.outcome
    ended = o.ended_at if o is not None and o.ended_at is not None else s.at
    data = (("exit_code", str(o.exit_code)),) if o is not None else ()
    reason = status.reason or status.state.value
    c.event(FINAL_EVENT[status.state], reason, data, at=ended, outcome=o, cancel=None)
    c.do(RecordUsage(c.job.id))
    c.do(Notify(c.job.id, c.job.state.value, reason))


def _cancel_requested(c: _Change, s: CancelRequested, rules: Rules) -> None:
    job = c.job
    if job.state.at_site and job.backend_ref is not None and job.placement is not None:
        c.do(Cancel(job.id, job.placement.site, job.backend_ref))
        c.event(EventKind.NOTE, f"cancel requested: {s.reason}", cancel=s.reason)
    else:
        c.event(EventKind.CANCEL, s.reason, deferral=None, hold=None, not_before=None)


def _compliance_decided(c: _Change, s: ComplianceDecided, rules: Rules) -> None:
    h = c.job.hold
    if c.job.state is not JobState.HELD or h is None or h.kind is not HoldKind.COMPLIANCE:
        c.refused = f"job {c.job.id} is not held for compliance review"
        return
    verb = "approved" if s.approved else "refused"
    c.event(EventKind.RELEASE, f"compliance review {verb} by {s.by} at {s.site}: {s.reason}", hold=None)


def _allocation_approved(c: _Change, s: AllocationApproved, rules: Rules) -> None:
    h = c.job.hold
    if (c.job.state is not JobState.HELD or h is None or h.kind is not HoldKind.ALLOCATION
            or c.job.spec.project != s.project):
        c.refused = f"job {c.job.id} is not held for an allocation of project {s.project}"
        return
    c.event(EventKind.RELEASE, f"allocation {s.allocation} approved: {s.units:g} units under {s.agreement}",
            hold=None)


def _internal_error(c: _Change, s: InternalError, rules: Rules) -> None:
    c.note_once(f"internal error, retrying: {s.text}")


HANDLERS: dict[type[Stimulus], Callable[[_Change, Any, Rules], None]] = {
    Timer: _timer,
    PlacementDecided: _placement_decided,
    PlacementReviewed: _placement_reviewed,
    Reconsidered: _reconsidered,
    DispatchConfirmed: _dispatch_confirmed,
    DispatchRefused: _dispatch_refused,
    DispatchInDoubt: _dispatch_in_doubt,
    NotAtSite: _not_at_site,
    SiteUnavailable: _site_unavailable,
    SiteDown: _site_down,
    SiteUp: _nothing,
    SiteReported: _reported,
    CancelRequested: _cancel_requested,
    ComplianceDecided: _compliance_decided,
    AllocationApproved: _allocation_approved,
    InternalError: _internal_error,
}
"""Every stimulus and what answers it (in every state: see each handler)."""
