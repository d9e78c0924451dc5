"""The SiteBackend contract: one suite, run against every backend kind.

A test module provides a ``backend`` fixture (a ``BackendHarness``); every test
here then runs against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from accord.domain.errors import Busy
from accord.domain.jobs.model import Job, JobSpec, Placement, new_job
from accord.domain.jobs.site import RemoteState, RemoteStatus
from accord.ports import SiteBackend


@dataclass
class BackendHarness:
    """A backend plus what the suite needs to know about its site."""

    backend: SiteBackend
    pool: str
    pool_gpus: int
    timeout_s: float = 60.0
    supports_busy: bool = True


def make_job(
    h: BackendHarness, job_id: str, command: list[str], gpus: int = 1, time_limit_s: int = 600
) -> Job:
    """A job placed at the harness's pool."""
    spec = JobSpec(name=job_id, gpus=gpus, time_limit_s=time_limit_s, command=tuple(command))
    job = new_job(job_id, spec, datetime.now(UTC))
    return replace(job, placement=Placement(h.backend.site_id, h.pool))


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.1) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` if it still does not after
    ``timeout_s`` (a bound, never a guess at how long something takes)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout_s} s")
        time.sleep(interval_s)


def wait_final(h: BackendHarness, ref: str, until: Callable[[RemoteStatus], bool] | None = None
               ) -> RemoteStatus:
    deadline = time.monotonic() + h.timeout_s
    while True:
        status = h.backend.poll([ref])[ref]
        if (until or (lambda s: s.state.is_final))(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {ref} still {status.state} after {h.timeout_s} s")
        time.sleep(0.2)


class SiteBackendContract:
    """Tests every backend must pass."""

    def test_runs_a_job_and_reports_gpu_seconds(self, backend: BackendHarness,
                                                 unique: str) -> None:
        job = make_job(backend, f"ok-{unique}", ["bash", "-c", "echo hello; sleep 1"], gpus=2)
        ref = backend.backend.submit(job).backend_ref
        status = wait_final(backend, ref)
        assert status.state is RemoteState.COMPLETED, status
        assert status.outcome is not None and status.outcome.exit_code == 0
        o = status.outcome
        assert o.started_at is not None and o.ended_at is not None
        elapsed = (o.ended_at - o.started_at).total_seconds()
        assert elapsed >= 1.0
        assert o.gpu_seconds == pytest.approx(2 * elapsed, abs=0.01)
        assert "hello" in _logs_eventually(backend, ref, job, "hello")

    def test_gpus_are_visible_to_the_job(self, backend: BackendHarness, unique: str) -> None:
        job = make_job(backend, f"gpu-{unique}", ["bash", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES"],
                       gpus=2)
        ref = backend.backend.submit(job).backend_ref
        wait_final(backend, ref)
        out = _logs_eventually(backend, ref, job, "CVD=")
        devices = out.split("CVD=")[1].split()[0].split(",")
        assert len(devices) == 2 and len(set(devices)) == 2, out

    def test_failing_job_reports_its_exit_code(self, backend: BackendHarness,
                                               unique: str) -> None:
        job = make_job(backend, f"fail-{unique}", ["bash", "-c", "echo oops >&2; exit 3"])
        ref = backend.backend.submit(job).backend_ref
        status = wait_final(backend, ref)
        assert status.state is RemoteState.FAILED
        assert status.outcome is not None and status.outcome.exit_code == 3

    def test_a_submission_is_found_by_its_look_up_and_runs_once(
        self, backend: BackendHarness, unique: str, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """What the broker does after a crash or a lost answer: look the job up before sending
        it again; the look-up adopts the first submission, and the job runs once."""
        marker = tmp_path_factory.mktemp("twice") / "runs"
        marker.parent.chmod(0o777)
        # The run writes its line first and then holds its GPU for 2 s: a second run, had one
        # been started, would have written its line by the time the first ends.
        job = make_job(backend, f"twice-{unique}", ["bash", "-c", f"echo run >> {marker}; sleep 2"])
        assert backend.backend.look_up(job) is None, "nothing sent yet: nothing found"
        first = backend.backend.submit(job)
        found = backend.backend.look_up(job)
        assert found is not None and found.adopted and found.backend_ref == first.backend_ref
        assert wait_final(backend, first.backend_ref).state is RemoteState.COMPLETED
        wait_until(lambda: marker.exists() and marker.read_text() != "", backend.timeout_s,
                   f"written by the job: {marker}")
        assert marker.read_text() == "run\n"

    def test_cancel_stops_the_job(self, backend: BackendHarness, unique: str) -> None:
        job = make_job(backend, f"cancel-{unique}", ["sleep", "300"])
        ref = backend.backend.submit(job).backend_ref
        wait_final(backend, ref, lambda s: s.state is not RemoteState.PENDING)
        backend.backend.cancel(ref)
        status = wait_final(backend, ref)
        assert status.state is RemoteState.CANCELLED
        backend.backend.cancel(ref)  # a second cancel is harmless

    def test_unknown_ref_is_lost(self, backend: BackendHarness, unique: str) -> None:
        assert backend.backend.poll([f"999999{len(unique)}"]) [f"999999{len(unique)}"].state \
            is RemoteState.LOST

    def test_loads_cover_every_pool(self, backend: BackendHarness) -> None:
        loads = backend.backend.loads()
        assert backend.pool in loads
        assert 0 <= loads[backend.pool].free_gpus <= backend.pool_gpus


def _logs_eventually(h: BackendHarness, ref: str, job: Job, needle: str) -> str:
    deadline = time.monotonic() + h.timeout_s
    while True:
        out = h.backend.logs(ref, job).stdout
        if needle in out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


__all__ = ["BackendHarness", "Busy", "SiteBackendContract", "make_job", "wait_final", "wait_until"]
