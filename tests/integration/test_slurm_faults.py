"""Faults against real Slurm: a stopped controller, a job Slurm kills, a crash mid-dispatch."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accord.adapters.clock import SystemClock
from accord.adapters.slurm.backend import SlurmBackend, job_tag
from accord.adapters.sql.store import SqlStore
from accord.domain.jobs.model import DispatchStatus, Event, EventKind, Job, JobState, Placement, apply
from accord.domain.jobs.site import RemoteState
from accord.service.broker import Broker
from tests.contract.backend_suite import BackendHarness, make_job, wait_final
from tests.integration.slurm_testbed import SERIAL, cluster_settings, ctld, slurm_federation

pytestmark = SERIAL


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    fed = slurm_federation()
    store = SqlStore(f"sqlite:///{tmp_path / 'f.db'}")
    backends = {s.id: SlurmBackend(s, tmp_path) for s in fed.sites}
    yield Broker(fed, store, dict(backends), SystemClock())
    store.close()


def run_until(broker: Broker, done: Callable[[], bool], timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        broker.step()
        time.sleep(0.5)


def _state(broker: Broker, job: Job) -> JobState:
    return broker.store.get_job(job.id).state


def test_stopped_controller_jobs_wait_or_move_then_flow(broker: Broker) -> None:
    ctld("stop", "isambard")
    try:
        pinned, _ = broker.submit({"command": ["true"], "site": "isambard", "name": "pinned"}, "u")
        movable, _ = broker.submit({"command": ["true"], "partner": "uk", "name": "movable"}, "u")
        for _ in range(3):
            broker.step()
        waiting = broker.store.get_job(pinned.id)
        assert waiting.state is JobState.SUBMITTED
        assert "isambard" in waiting.reason and "unavailable" in waiting.reason
        run_until(broker, lambda: _state(broker, movable) is JobState.COMPLETED)
        moved = broker.store.get_job(movable.id)
        assert moved.placement is not None
        assert (moved.placement.site, moved.placement.agreement) == ("jeanzay", "uk-fr")
        assert "isambard" in moved.story[1].event.reason  # the explanation names the down site
    finally:
        ctld("start", "isambard")
    run_until(broker, lambda: _state(broker, pinned) is JobState.COMPLETED)
    story = [e.event.kind for e in broker.store.get_job(pinned.id).story]
    assert EventKind.NOTE in story and story[-1] is EventKind.COMPLETE


def test_controller_restart_while_a_job_runs(broker: Broker) -> None:
    job, _ = broker.submit({"command": ["sleep", "8"], "site": "isambard"}, "u")
    run_until(broker, lambda: _state(broker, job) is JobState.RUNNING, timeout=60)
    ctld("stop", "isambard")
    try:
        for _ in range(2):
            broker.step()
        assert "cannot reach site isambard" in broker.store.get_job(job.id).reason
    finally:
        ctld("start", "isambard")
    run_until(broker, lambda: _state(broker, job) is JobState.COMPLETED)


def test_crash_between_sbatch_and_recording_adopts_the_job(broker: Broker) -> None:
    job, _ = broker.submit({"command": ["sleep", "2"], "site": "isambard"}, "u")
    placed = broker.store.save_job(apply(job, Event(EventKind.PLACE, job.submitted_at, "test"),
                                         placement=Placement("isambard", "h100")))
    # What the broker writes before sbatch, then sbatch itself; then Accord "crashes".
    intent = broker.store.save_job(apply(placed, Event(
        EventKind.NOTE, job.submitted_at, "dispatching to isambard", (("intent", "dispatch"),)),
        dispatch=DispatchStatus.SENT))
    first = broker.backends["isambard"].submit(intent)
    run_until(broker, lambda: _state(broker, job) is JobState.COMPLETED)
    done = broker.store.get_job(job.id)
    assert done.backend_ref == first.backend_ref
    assert any("adopted" in e.event.reason for e in done.story if e.event.kind is EventKind.DISPATCH)
    cluster = cluster_settings("isambard")
    out = subprocess.run(["sacct", "-M", "isambard", "-X", "-n", "-P", "-S", "now-1days",
                          "--name", job_tag(job.id), "-o", "JobID"], capture_output=True,
                         text=True, check=True, env={"SLURM_CONF": cluster.slurm_conf,
                                                      "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == [first.backend_ref], "submitted twice"


def test_a_job_slurm_kills_at_its_time_limit_ends_timed_out(tmp_path: Path) -> None:
    site = slurm_federation().site("jeanzay")
    h = BackendHarness(SlurmBackend(site, tmp_path), "h100", 8, timeout_s=200)
    job = make_job(h, f"limit-{secrets.token_hex(3)}", ["sleep", "600"], time_limit_s=60)
    ref = h.backend.submit(job).backend_ref
    status = wait_final(h, ref)
    assert status.state is RemoteState.TIMEOUT
    assert status.outcome is not None
    assert "TIMEOUT" in status.reason
    assert status.outcome.gpu_seconds >= 60


def test_a_node_failure_ends_the_job_failed_with_slurms_reason(tmp_path: Path) -> None:
    site = slurm_federation().site("jeanzay")
    h = BackendHarness(SlurmBackend(site, tmp_path), "h100", 8, timeout_s=120)
    job = make_job(h, f"nodefail-{secrets.token_hex(3)}", ["sleep", "300"], gpus=1)
    ref = h.backend.submit(job).backend_ref
    running = wait_final(h, ref, lambda s: s.state is RemoteState.RUNNING)
    assert running.state is RemoteState.RUNNING
    conf = cluster_settings("jeanzay").slurm_conf
    env = {"SLURM_CONF": conf, "PATH": "/usr/bin:/bin"}
    node = subprocess.run(["squeue", "-h", "-j", ref, "-o", "%N"], capture_output=True, text=True,
                          check=True, env=env).stdout.strip()
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down",
                    "reason=accord-test"], check=True, env=env)
    try:
        status = wait_final(h, ref)
    finally:
        # ReturnToService=2 may already have brought it back; then "resume" is refused.
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False,
                       env=env, capture_output=True)
        _wait_node_usable(node, env)
    assert status.state in (RemoteState.NODE_FAIL, RemoteState.FAILED), status
    assert "NODE_FAIL" in status.reason


def _wait_node_usable(node: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True,
                               text=True, env=env, check=False).stdout.strip()
        if state in ("idle", "mixed", "allocated"):
            return
        time.sleep(1)
    raise AssertionError(f"node {node} did not come back: {state}")
