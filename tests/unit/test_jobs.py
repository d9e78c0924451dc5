"""The job lifecycle state machine and job spec validation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput, InvalidTransition
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import (
    FINAL_STATES,
    TRANSITIONS,
    Event,
    EventKind,
    JobSpec,
    JobState,
    allowed_events,
    apply,
    new_job,
    next_state,
)
from accord.domain.jobs.spec import parse_job_spec, parse_time_limit
from tests.conftest import T0

SPEC = JobSpec(name="t", gpus=1, time_limit_s=60, command=("true",))


# The lifecycle of docs/design/job-lifecycle.md, written out by hand: every move a job may
# make, (state, event) -> next state. Any pair not here is refused; NOTE (not listed) is
# taken in every state and changes nothing.
SUBMITTED, HELD, DEFERRED, PLACED = (JobState.SUBMITTED, JobState.HELD, JobState.DEFERRED,
                                     JobState.PLACED)
DISPATCHED, RUNNING = JobState.DISPATCHED, JobState.RUNNING
COMPLETED, FAILED, CANCELLED, TIMED_OUT = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
                                           JobState.TIMED_OUT)
EXPECTED_MOVES: dict[tuple[JobState, EventKind], JobState] = {
    # waiting for placement: placed, deferred (a time), held (a person), failed (no site can
    # ever take it), cancelled
    (SUBMITTED, EventKind.PLACE): PLACED,
    (SUBMITTED, EventKind.DEFER): DEFERRED,
    (SUBMITTED, EventKind.HOLD): HELD,
    (SUBMITTED, EventKind.FAIL): FAILED,
    (SUBMITTED, EventKind.CANCEL): CANCELLED,
    # held for a person (e.g. a compliance approval): released back to placement, refused, cancelled
    (HELD, EventKind.RELEASE): SUBMITTED,
    (HELD, EventKind.FAIL): FAILED,
    (HELD, EventKind.CANCEL): CANCELLED,
    # deferred to a time: released back to placement, held, cancelled
    (DEFERRED, EventKind.RELEASE): SUBMITTED,
    (DEFERRED, EventKind.HOLD): HELD,
    (DEFERRED, EventKind.CANCEL): CANCELLED,
    # placed: dispatched to its site, requeued when the site is unreachable, held, failed, cancelled
    (PLACED, EventKind.DISPATCH): DISPATCHED,
    (PLACED, EventKind.REQUEUE): SUBMITTED,
    (PLACED, EventKind.HOLD): HELD,
    (PLACED, EventKind.FAIL): FAILED,
    (PLACED, EventKind.CANCEL): CANCELLED,
    # at the site, not started: starts, or ends before a poll saw it run (short jobs),
    # or requeued when the site lost it
    (DISPATCHED, EventKind.START): RUNNING,
    (DISPATCHED, EventKind.REQUEUE): SUBMITTED,
    (DISPATCHED, EventKind.COMPLETE): COMPLETED,
    (DISPATCHED, EventKind.FAIL): FAILED,
    (DISPATCHED, EventKind.TIME_OUT): TIMED_OUT,
    (DISPATCHED, EventKind.CANCEL): CANCELLED,
    # running: one of the four ends
    (RUNNING, EventKind.COMPLETE): COMPLETED,
    (RUNNING, EventKind.FAIL): FAILED,
    (RUNNING, EventKind.TIME_OUT): TIMED_OUT,
    (RUNNING, EventKind.CANCEL): CANCELLED,
    # completed, failed, cancelled, timed_out: final, nothing moves them
}


def test_the_transition_table_is_exactly_the_lifecycle() -> None:
    assert len(EXPECTED_MOVES) == 26
    assert TRANSITIONS == EXPECTED_MOVES
    assert frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT}) == FINAL_STATES


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("kind", list(EventKind))
def test_every_state_and_event(state: JobState, kind: EventKind) -> None:
    if kind is EventKind.NOTE:
        assert next_state(state, kind) is state
    elif (state, kind) in EXPECTED_MOVES:
        assert next_state(state, kind) is EXPECTED_MOVES[(state, kind)]
    else:
        with pytest.raises(InvalidTransition, match=f"cannot take event '{kind.value}'"):
            next_state(state, kind)


@pytest.mark.parametrize(("state", "allowed"), [
    (SUBMITTED, "cancel, defer, fail, hold, place"),
    (HELD, "cancel, fail, release"),
    (DEFERRED, "cancel, hold, release"),
    (PLACED, "cancel, dispatch, fail, hold, requeue"),
    (DISPATCHED, "cancel, complete, fail, requeue, start, time_out"),
    (RUNNING, "cancel, complete, fail, time_out"),
    (COMPLETED, "none (final state)"),
    (FAILED, "none (final state)"),
    (CANCELLED, "none (final state)"),
    (TIMED_OUT, "none (final state)"),
])
def test_a_refusal_lists_what_the_state_allows(state: JobState, allowed: str) -> None:
    with pytest.raises(InvalidTransition, match=f"allowed: {re.escape(allowed)}$"):
        next_state(state, EventKind.SUBMIT)   # no state takes a second submission
    assert sorted(k.value for k in allowed_events(state)) == (
        [] if allowed.startswith("none") else allowed.split(", "))


def test_final_states_accept_only_notes() -> None:
    for state in (COMPLETED, FAILED, CANCELLED, TIMED_OUT):
        assert state.is_final
        assert allowed_events(state) == ()
        assert next_state(state, EventKind.NOTE) is state


def test_happy_path_story() -> None:
    job = new_job("j1", SPEC, T0)
    for i, kind in enumerate([EventKind.PLACE, EventKind.DISPATCH, EventKind.START,
                              EventKind.COMPLETE], start=1):
        job = apply(job, Event(kind, T0 + timedelta(seconds=i), f"step {i}"))
    assert job.state is JobState.COMPLETED
    assert [e.after.value for e in job.story] == [
        "submitted", "placed", "dispatched", "running", "completed"]
    assert job.reason == "step 4"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(EventKind)), max_size=30))
def test_any_event_sequence_keeps_a_consistent_story(kinds: list[EventKind]) -> None:
    job = new_job("j1", SPEC, T0)
    for kind in kinds:
        try:
            job = apply(job, Event(kind, T0, kind.value))
        except InvalidTransition:
            continue
    for i, entry in enumerate(job.story):
        assert entry.seq == i
        if i:
            assert entry.before is job.story[i - 1].after
    assert job.story[-1].after is job.state


def _spec(fed: Federation, **doc: object) -> JobSpec:
    base: dict[str, object] = {"command": ["python", "-c", "print(1)"]}
    base.update(doc)
    return parse_job_spec(base, fed)


def test_valid_spec_gets_defaults(small_federation: Federation) -> None:
    spec = _spec(small_federation, gpus=2, time_limit="30m", partner="uk", theme="climate")
    assert (spec.gpus, spec.time_limit_s, spec.project, spec.name) == (2, 1800, "default", "python")


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        ({"gpus": 0}, "gpus", "got 0, allowed a whole number >= 1"),
        ({"gpus": "two"}, "gpus", "got 'two'"),
        ({"gpus": 9}, "gpus", "more GPUs than any pool has (got 9, allowed at most 8)"),
        ({"gpus": 5, "gpu_model": "H100"}, "gpus", "allowed at most 4"),
        ({"gpu_model": "TPU"}, "gpu_model", "got 'TPU', allowed H100, A100"),
        ({"time_limit": "soon"}, "time_limit", "got 'soon'"),
        ({"time_limit": 0}, "time_limit", "got 0"),
        ({"time_limit": "31d"}, "time_limit", "up to 30 days"),
        ({"script": "echo"}, "script", "either command or script"),
        ({"command": []}, "command", "non-empty list of strings"),
        ({"command": "ls"}, "command", "non-empty list of strings"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"partner": "de"}, "partner", "got 'de', allowed uk, fr, kr"),
        ({"theme": "poetry"}, "theme", "got 'poetry'"),
        ({"site": "mars"}, "site", "got 'mars'"),
        ({"project": "My Project"}, "project", "is not a valid id"),
        ({"earliest_start": "tomorrow"}, "earliest_start", "with a UTC offset"),
        ({"earliest_start": "2026-11-22T09:00:00"}, "earliest_start", "with a UTC offset"),
        ({"earliest_start": "2026-11-22T09:00:00Z", "deadline": "2026-11-22T08:00:00Z"},
         "deadline", "must be after earliest_start"),
        ({"data_residency": ["gb"]}, "data_residency", "alpha-2"),
    ],
)
def test_bad_job_fields_are_named(
    small_federation: Federation, doc: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        _spec(small_federation, **doc)
    rendered = [p.render() for p in info.value.problems]
    assert any(r.startswith(f"{field}:") and fragment in r for r in rendered), rendered


def test_time_limits_in_slurm_and_unit_forms() -> None:
    assert [parse_time_limit(v) for v in ("90", "90s", "2m", "1h", "1d", "01:02:03", "1-00:00:00",
                                          True, 1.5, "1:99:00")] == [
        90, 90, 120, 3600, 86400, 3723, 86400, None, None, None]
