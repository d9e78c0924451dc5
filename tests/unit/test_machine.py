"""The lifecycle machine (:mod:`accord.domain.jobs.machine`), pure: each stimulus and what it
does, written out by hand; then properties over random stimulus sequences (no double
dispatch, final states absorb, every state reachable, every stimulus answered in every state)."""

from __future__ import annotations

import inspect
from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.access.review import Action, Review
from accord.domain.federation.model import Federation
from accord.domain.jobs import stimuli
from accord.domain.jobs.machine import HANDLERS, handle, placement_spec, submit
from accord.domain.jobs.model import (
    DeferKind,
    Deferral,
    DispatchStatus,
    EventKind,
    Hold,
    HoldKind,
    Job,
    JobSpec,
    JobState,
    Outcome,
    Priority,
)
from accord.domain.jobs.site import RemoteState, RemoteStatus
from accord.domain.jobs.stimuli import (
    AllocationApproved,
    Cancel,
    CancelRequested,
    ComplianceDecided,
    Dispatch,
    DispatchConfirmed,
    DispatchInDoubt,
    DispatchRefused,
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
from accord.domain.placement.records import Candidate, Decision, Rejection, Verdict
from tests.conftest import T0

H = timedelta(hours=1)
SPEC = JobSpec("train", 1, 3600, ("python", "train.py"), partner="uk", theme="climate")


def cand(site: str = "bristol", pool: str = "h100", agreement: str | None = None,
         start: datetime | None = None) -> Candidate:
    return Candidate(site, pool, agreement, (("wait", 0.0),), start)


def placing(site: str = "bristol", pool: str = "h100", agreement: str | None = None) -> Decision:
    return Decision(Verdict.PLACE, cand(site, pool, agreement, T0), (), (), T0)


def deferring(start: datetime, site: str = "bristol", pool: str = "h100") -> Decision:
    now = cand(site, pool, None, T0)
    return Decision(Verdict.DEFER, cand(site, pool, None, start), (now,), (), T0, chosen_now=now)


WAITING = Decision(Verdict.WAIT, None, (), (Rejection("paris", "a100", "quota used up", True),), T0)
REJECTING = Decision(Verdict.REJECT, None, (), (Rejection("paris", "a100", "no such model"),), T0)
ENDED = Outcome(0, T0 + H, T0 + 2 * H, 3600.0, "", 1)


@pytest.fixture
def rules(small_federation: Federation) -> Rules:
    return Rules(small_federation)


def new(spec: JobSpec = SPEC) -> Job:
    return submit("j1", spec, Stimulus("s0", T0), owner="ada").job


def run(job: Job, rules: Rules, *stims: Stimulus) -> Step:
    step = Step(job)
    for s in stims:
        step = handle(step.job, s, rules)
    return step


def kinds(job: Job) -> list[str]:
    return [e.event.kind.value for e in job.story]


# ------------------------------------------------------------------ submission and placement
def test_a_submission_starts_the_story_with_its_stimulus_and_the_rules_applied() -> None:
    step = submit("j1", SPEC, Stimulus("req-7", T0), owner="ada", idempotency_key="k",
                  notes=("residency narrowed to GB",))
    job = step.job
    assert (job.state, job.owner, job.idempotency_key) == (JobState.SUBMITTED, "ada", "k")
    assert [(e.event.kind, e.event.reason, e.event.stimulus) for e in job.story] == [
        (EventKind.SUBMIT, "submitted", "req-7"), (EventKind.NOTE, "residency narrowed to GB", "req-7")]
    assert step.events == tuple(e.event for e in job.story) and step.instructions == ()


def test_a_pass_asks_placement_for_a_job_that_may_start(rules: Rules) -> None:
    step = handle(new(), Timer("t1", T0), rules)
    assert step.instructions == (Place("j1"),) and step.events == () and step.job.state is JobState.SUBMITTED


def test_a_job_before_its_earliest_start_is_deferred_to_it(rules: Rules) -> None:
    job = handle(new(replace(SPEC, earliest_start=T0 + 3 * H)), Timer("t1", T0), rules).job
    assert job.state is JobState.DEFERRED and job.not_before == T0 + 3 * H
    assert job.deferral == Deferral(DeferKind.EARLIEST_START, T0 + 3 * H)
    assert job.story[-1].event.reason == f"waits for its earliest start {(T0 + 3 * H).isoformat()}"
    released = handle(job, Timer("t2", T0 + 3 * H), rules).job
    assert released.state is JobState.SUBMITTED and released.deferral is None
    assert released.story[-1].event.data == () and not released.start_came


def test_placing_at_home_writes_the_dispatch_ahead_and_asks_for_it(rules: Rules) -> None:
    step = handle(new(), PlacementDecided("p1", T0, placing()), rules)
    job = step.job
    assert job.state is JobState.PLACED and job.placement is not None and job.placement.site == "bristol"
    assert kinds(job)[-2:] == ["place", "note"]
    assert job.story[-1].event.reason == "dispatching to bristol"
    assert job.story[-1].event.get("intent") == "dispatch"
    assert job.dispatch is DispatchStatus.SENT
    assert step.instructions == (Dispatch("j1", "bristol", "h100"),)
    assert {e.stimulus for e in step.events} == {"p1"}


def test_placing_abroad_is_reviewed_first(rules: Rules) -> None:
    decision = placing("paris", "a100", "uk-fr")
    step = handle(new(), PlacementDecided("p1", T0, decision), rules)
    assert step.events == () and step.instructions == (ReviewPlacement("j1", decision),)
    unreviewed = handle(new(), PlacementDecided("p1", T0, decision), replace(rules, reviews=False))
    assert unreviewed.job.state is JobState.PLACED


def test_a_review_holds_fails_lowers_or_places(rules: Rules) -> None:
    d = placing("paris", "a100", "uk-fr")
    held = handle(new(), PlacementReviewed("r", T0, d, Review(
        Action.HOLD, "Held for compliance review at paris: big run",
        (("compliance_rule", "large-runs[0]"), ("site", "paris"), ("pool", "a100")), HoldKind.COMPLIANCE)),
        rules)
    assert held.job.state is JobState.HELD
    assert held.job.hold == Hold(HoldKind.COMPLIANCE, "large-runs[0]", "paris", "a100", None)
    assert held.instructions == (Notify("j1", "held", "Held for compliance review at paris: big run"),)
    over = handle(new(), PlacementReviewed("r", T0, d, Review(
        Action.HOLD, "Held: overdrawn", (("allocation", "a-1"), ("share", "1.2")), HoldKind.ALLOCATION)),
        rules)
    assert over.job.hold == Hold(HoldKind.ALLOCATION, "", None, None, "a-1")
    refused = handle(new(), PlacementReviewed("r", T0, d, Review(Action.FAIL, "Refused at fr: denied")),
            rules)
    assert refused.job.state is JobState.FAILED and refused.job.reason == "Refused at fr: denied"
    lowered = handle(new(), PlacementReviewed("r", T0, d, Review(Action.LOWER, "Priority lowered")), rules)
    assert lowered.job.state is JobState.SUBMITTED and lowered.job.priority is Priority.LOW
    assert lowered.job.reason == "Priority lowered; it yields to other jobs in the next pass"
    assert lowered.job.story[-1].event.get("priority") == "low"
    again = handle(lowered.job, PlacementReviewed("r2", T0, d, Review(Action.LOWER, "Priority lowered")),
            rules)
    assert again.job.state is JobState.PLACED, "lowered once: the next pass places it"
    warned = handle(new(), PlacementReviewed("r", T0, d, Review(Action.WARN, "Warning: past 80%")), rules)
    assert warned.job.state is JobState.PLACED
    assert warned.job.story[-2].event.reason.endswith(" Warning: past 80%")


def test_wait_reject_and_a_site_that_is_down(rules: Rules) -> None:
    failed = handle(new(), PlacementDecided("p", T0, REJECTING), rules).job
    assert failed.state is JobState.FAILED and "cannot run anywhere" in failed.reason
    waiting = handle(new(), PlacementDecided("p", T0, WAITING), rules).job
    midnight = datetime(T0.year, T0.month, T0.day, tzinfo=T0.tzinfo) + timedelta(days=1)
    assert waiting.state is JobState.SUBMITTED and waiting.not_before == midnight
    assert waiting.reason.endswith(f"Tried again at {midnight:%Y-%m-%d %H:%M} UTC, when the day turns.")
    assert handle(waiting, Timer("t", T0 + H), rules).instructions == (), "not before it is due"
    down = PlacementDecided("p", T0, WAITING, sites_down=True)
    once = handle(new(), down, rules).job
    assert once.not_before is None and kinds(once) == ["submit", "note"]
    assert handle(once, replace(down, id="p2"), rules).events == (), "the same note is not repeated"


# ------------------------------------------------------------------ deferral
def test_a_deferral_keeps_its_window_and_is_looked_at_again(rules: Rules) -> None:
    job = handle(new(), PlacementDecided("p", T0, deferring(T0 + 2 * H)), rules).job
    assert job.state is JobState.DEFERRED and job.not_before == T0 + 2 * H
    assert job.deferral == Deferral(DeferKind.PLACEMENT, T0 + 2 * H, "bristol", T0 + timedelta(seconds=600))
    assert job.window_end is not None and job.story[-1].event.get("window_end") == job.window_end.isoformat()
    assert placement_spec(job).deadline == job.window_end
    step = handle(job, Timer("t", T0 + timedelta(seconds=600)), rules)
    assert step.instructions == (Reconsider("j1"),) and step.events == ()
    same = handle(job, Reconsidered("c", T0 + timedelta(seconds=600), deferring(T0 + 2 * H)), rules)
    assert same.events == () and same.job.deferral is not None
    assert same.job.deferral.recheck_at == T0 + timedelta(seconds=1200), \
        "looked at again, no trace in the story"
    moved = handle(job, Reconsidered("c", T0 + timedelta(seconds=600), placing("paris", "a100")), rules).job
    assert moved.state is JobState.SUBMITTED
    assert moved.reason.startswith("reconsidered: forecasts or queues changed")
    assert moved.window_end == job.window_end, "the window stays"


def test_a_job_is_shifted_in_time_once(rules: Rules) -> None:
    job = handle(new(), PlacementDecided("p", T0, deferring(T0 + 2 * H)), rules).job
    released = handle(job, Timer("t", T0 + 2 * H), rules).job
    assert released.start_came and released.story[-1].event.get("released") == "start"
    placed = handle(released, PlacementDecided("p2", T0 + 2 * H, deferring(T0 + 4 * H)), rules).job
    assert placed.state is JobState.PLACED
    assert "a job is shifted in time once" in placed.story[-2].event.reason
    assert not placed.start_came


def test_a_deferral_past_the_deadline_is_placed_now(rules: Rules) -> None:
    job = new(replace(SPEC, deadline=T0 + 2.5 * H))
    placed = handle(job, PlacementDecided("p", T0, deferring(T0 + 2 * H)), rules).job
    assert placed.state is JobState.PLACED
    assert "would finish after the deadline" in placed.story[-2].event.reason


# ------------------------------------------------------------------ dispatch
def placed(rules: Rules) -> Job:
    return handle(new(), PlacementDecided("p", T0, placing()), rules).job


def test_the_sites_answers_to_a_dispatch(rules: Rules) -> None:
    job = placed(rules)
    ok = handle(job, DispatchConfirmed("d", T0, "r-1", (0,)), rules).job
    assert (ok.state, ok.backend_ref, ok.gpu_indices, ok.dispatch) == (JobState.DISPATCHED, "r-1", (0,),
                                                                         DispatchStatus.NONE)
    assert ok.reason == "dispatched to bristol" and ok.story[-1].event.get("backend_ref") == "r-1"
    adopted = handle(job, DispatchConfirmed("d", T0, "r-1", adopted=True), rules).job
    assert adopted.reason == "adopted the submission found at bristol"
    busy = handle(job, DispatchRefused("d", T0, "pool full"), rules)
    assert busy.job.dispatch is DispatchStatus.NONE and busy.job.reason == "waiting for capacity: pool full"
    resend = handle(busy.job, Timer("t", T0), rules)
    assert resend.instructions == (Dispatch("j1", "bristol", "h100"),) and resend.events == ()
    assert resend.job.dispatch is DispatchStatus.SENT, "written ahead before it is sent again"
    doubt = handle(job, DispatchInDoubt("d", T0, "sbatch timed out"), rules)
    assert doubt.job.dispatch is DispatchStatus.IN_DOUBT
    assert doubt.job.reason == "dispatch to bristol in doubt, will check: sbatch timed out"
    assert handle(doubt.job, Timer("t", T0), rules).instructions == (LookUp("j1", "bristol"),)
    assert handle(doubt.job, NotAtSite("l", T0), rules).instructions == (Dispatch("j1", "bristol", "h100"),)
    gone = handle(job, SiteUnavailable("d", T0, "slurmctld down"), rules).job
    assert gone.state is JobState.SUBMITTED and gone.placement is None
    assert gone.reason == "site bristol unavailable: slurmctld down"


def test_a_job_written_ahead_but_never_confirmed_is_looked_up(rules: Rules) -> None:
    """After a crash between the write-ahead and the site's answer."""
    assert handle(placed(rules), Timer("t", T0), rules).instructions == (LookUp("j1", "bristol"),)


# ------------------------------------------------------------------ at the site
def at_site(rules: Rules) -> Job:
    return handle(placed(rules), DispatchConfirmed("d", T0, "r-1"), rules).job


def test_what_the_site_reports(rules: Rules) -> None:
    job = at_site(rules)
    running = handle(job, SiteReported("p", T0 + H, RemoteStatus(RemoteState.RUNNING, T0 + 0.5 * H)),
            rules).job
    assert running.state is JobState.RUNNING and running.story[-1].event.at == T0 + 0.5 * H
    assert handle(running, SiteReported("p", T0 + H, RemoteStatus(RemoteState.RUNNING)), rules).events == ()
    step = handle(job, SiteReported("p", T0 + 3 * H, RemoteStatus(RemoteState.COMPLETED, T0 + H, ENDED)),
            rules)
    assert kinds(step.job)[-2:] == ["start", "complete"]
    assert step.job.story[-1].event.at == T0 + 2 * H and step.job.story[-1].event.get("exit_code") == "0"
    assert step.job.outcome == ENDED
    assert step.instructions == (RecordUsage("j1"), Notify("j1", "completed", "completed"))
    lost = handle(running, SiteReported("p", T0 + 3 * H, RemoteStatus(RemoteState.LOST, reason="gone")),
            rules)
    assert lost.job.state is JobState.FAILED and lost.job.reason == "gone" and lost.job.outcome is None
    timed = handle(running, SiteReported("p", T0 + 3 * H, RemoteStatus(RemoteState.TIMEOUT, None, ENDED)),
            rules)
    assert timed.job.state is JobState.TIMED_OUT


def test_a_site_that_stops_answering_is_noted_once(rules: Rules) -> None:
    job = at_site(rules)
    down = handle(job, SiteDown("x", T0, "bristol", "no route"), rules).job
    assert down.reason == "cannot reach site bristol: no route"
    assert handle(down, SiteDown("y", T0, "bristol", "no route"), rules).events == ()
    assert handle(down, SiteUp("z", T0, "bristol"), rules).job is down


# ------------------------------------------------------------------ people's requests
def test_cancelling(rules: Rules) -> None:
    queued = handle(new(), CancelRequested("c", T0, "not needed"), rules).job
    assert queued.state is JobState.CANCELLED and queued.reason == "not needed"
    step = handle(at_site(rules), CancelRequested("c", T0, "by ada"), rules)
    assert step.instructions == (Cancel("j1", "bristol", "r-1"),)
    assert step.job.state is JobState.DISPATCHED and step.job.cancel == "by ada"
    assert step.job.reason == "cancel requested: by ada"
    ended = handle(step.job, SiteReported("p", T0, RemoteStatus(RemoteState.CANCELLED, None, ENDED)),
            rules).job
    assert ended.state is JobState.CANCELLED and ended.cancel is None
    refused = handle(ended, CancelRequested("c2", T0, "again"), rules)
    assert refused.refused == "job j1 has already ended (cancelled)" and refused.job is ended


def test_releasing_held_jobs(rules: Rules) -> None:
    d = placing("paris", "a100", "uk-fr")
    held = handle(new(), PlacementReviewed("r", T0, d, Review(
        Action.HOLD, "Held", (("compliance_rule", "r0"), ("site", "paris"), ("pool", "a100")),
        HoldKind.COMPLIANCE)), rules).job
    back = handle(held, ComplianceDecided("c", T0, True, "op", "paris", "fine"), rules).job
    assert back.state is JobState.SUBMITTED and back.hold is None
    assert back.reason == "compliance review approved by op at paris: fine"
    wrong = handle(held, AllocationApproved("a", T0, "a-1", "default", 10, "uk-fr"), rules)
    assert wrong.refused == "job j1 is not held for an allocation of project default" and wrong.events == ()
    not_held = handle(new(), ComplianceDecided("c", T0, False, "op", "paris", "no"), rules)
    assert not_held.refused == "job j1 is not held for compliance review"
    over = handle(new(), PlacementReviewed("r", T0, d, Review(Action.HOLD, "Held", (("allocation", "a-1"),),
                                                               HoldKind.ALLOCATION)), rules).job
    freed = handle(over, AllocationApproved("a", T0, "a-2", "default", 10, "uk-fr"), rules).job
    assert freed.state is JobState.SUBMITTED
    assert freed.reason == "allocation a-2 approved: 10 units under uk-fr"


def test_an_internal_error_is_noted_once(rules: Rules) -> None:
    job = handle(placed(rules), InternalError("e", T0, "RuntimeError: disk full"), rules).job
    assert job.reason == "internal error, retrying: RuntimeError: disk full"
    assert handle(job, InternalError("e2", T0, "RuntimeError: disk full"), rules).events == ()


# ------------------------------------------------------------------ the whole table
CONCRETE = sorted((c for _, c in inspect.getmembers(stimuli, inspect.isclass)
                   if issubclass(c, Stimulus) and c is not Stimulus), key=lambda c: c.__name__)


def test_every_stimulus_has_a_handler() -> None:
    assert sorted(HANDLERS, key=lambda c: c.__name__) == CONCRETE


def samples(at: datetime) -> list[Stimulus]:
    """One of each stimulus (several of those whose answer depends on their facts)."""
    d = placing("paris", "a100", "uk-fr")
    compliance = Review(Action.HOLD, "Held", (("compliance_rule", "r0"), ("site", "paris"), ("pool", "a100")),
                        HoldKind.COMPLIANCE)
    return [
        Timer("timer", at), PlacementDecided("place", at, placing()), PlacementDecided("abroad", at, d),
        PlacementDecided("defer", at, deferring(at + 2 * H)), PlacementDecided("wait", at, WAITING),
        PlacementDecided("down", at, WAITING, True), PlacementDecided("reject", at, REJECTING),
        PlacementReviewed("go", at, d, Review(Action.GO)), PlacementReviewed("hold", at, d, compliance),
        PlacementReviewed("over", at, d, Review(Action.HOLD, "Held", (("allocation", "a-1"),),
                                                HoldKind.ALLOCATION)),
        PlacementReviewed("lower", at, d, Review(Action.LOWER, "Lowered")),
        PlacementReviewed("fail", at, d, Review(Action.FAIL, "Refused")),
        Reconsidered("again", at, placing("paris", "a100")), DispatchConfirmed("ok", at, "r-1"),
        DispatchRefused("busy", at, "full"), DispatchInDoubt("doubt", at, "timeout"), NotAtSite("none", at),
        SiteUnavailable("unreachable", at, "down"), SiteDown("sitedown", at, "bristol", "down"),
        SiteUp("siteup", at, "bristol"),
        SiteReported("running", at, RemoteStatus(RemoteState.RUNNING, at)),
        SiteReported("done", at, RemoteStatus(RemoteState.COMPLETED, at, ENDED)),
        SiteReported("lost", at, RemoteStatus(RemoteState.LOST)),
        SiteReported("timeout", at, RemoteStatus(RemoteState.TIMEOUT, at, ENDED)),
        CancelRequested("cancel", at, "bye"), ComplianceDecided("decided", at, True, "op", "paris", "ok"),
        AllocationApproved("approved", at, "a-1", "default", 5, "uk-fr"), InternalError("oops", at, "E: x"),
    ]


def signature(job: Job) -> tuple[object, ...]:
    d, h = job.deferral, job.hold
    return (job.state, job.dispatch, d.kind if d else None, h.kind if h else None, job.priority,
            job.cancel is not None, job.start_came)


def explore(rules: Rules, limit: int = 4000) -> set[tuple[object, ...]]:
    """Every (state, sub-states) a new job (with an earliest start tomorrow, or none) reaches
    through the sample stimuli, breadth first."""
    starts = (new(), new(replace(SPEC, earliest_start=T0 + 30 * H)))
    seen, todo = {signature(j) for j in starts}, deque((j, 0) for j in starts)
    while todo and len(seen) < limit:
        job, depth = todo.popleft()
        if depth == 7:
            continue
        for s in samples(T0 + depth * 3 * H):
            after = handle(job, s, rules).job
            if signature(after) not in seen:
                seen.add(signature(after))
                todo.append((after, depth + 1))
    return seen


def test_every_state_and_sub_state_is_reachable(rules: Rules) -> None:
    seen = explore(rules)
    assert {s[0] for s in seen} == set(JobState)
    assert {s[1] for s in seen if s[0] is JobState.PLACED} == set(DispatchStatus)
    assert {s[2] for s in seen if s[0] is JobState.DEFERRED} == set(DeferKind)
    assert {s[3] for s in seen if s[0] is JobState.HELD} == set(HoldKind)
    assert {s[4] for s in seen} == set(Priority)
    assert any(s[5] for s in seen) and any(s[6] for s in seen)


def test_every_stimulus_is_answered_in_every_reachable_state(rules: Rules) -> None:
    """The table is complete: whatever arrives, whatever the state, the machine answers
    (often: nothing to do) and only with transitions the state table allows."""
    start = new()
    jobs, todo = {signature(start): start}, deque([start])
    while todo:
        job = todo.popleft()
        for s in samples(T0):
            after = handle(job, s, rules).job     # raises InvalidTransition on a move the table refuses
            if signature(after) not in jobs:
                jobs[signature(after)] = after
                todo.append(after)
    assert len(jobs) > 25


STIMULI = st.sampled_from(samples(T0)).flatmap(
    lambda s: st.integers(0, 48).map(lambda h: replace(s, at=T0 + h * H, id=f"{s.id}@{h}")))
FAILURES = (DispatchRefused, NotAtSite, SiteUnavailable)


@settings(max_examples=300, deadline=None)
@given(st.lists(STIMULI, max_size=40))
def test_random_stimuli_never_dispatch_twice_and_final_states_absorb(small_federation: Federation,
                                                                     sequence: list[Stimulus]) -> None:
    """Between two dispatch instructions the site must have said the job is not there (it
    refused it, a look-up found none, it could not be reached); every event records its
    stimulus; a final job changes no more."""
    rules = Rules(small_federation)
    job, outstanding = new(), False
    for s in sequence:
        step = handle(job, s, rules)
        assert all(e.stimulus == s.id for e in step.events)
        if job.state.is_final:
            assert step.job is job and step.events == () and step.instructions == ()
        if isinstance(s, FAILURES) and job.state is JobState.PLACED:
            outstanding = False
        for i in step.instructions:
            if isinstance(i, Dispatch):
                assert not outstanding, f"a second dispatch after {s!r} with no failure between"
                outstanding = True
        if step.job.state is not JobState.PLACED:
            outstanding = False
        job = step.job
