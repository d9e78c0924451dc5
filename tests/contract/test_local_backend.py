"""The SiteBackend contract against the local backend, plus its own crash cases."""

from __future__ import annotations

import json
import os
import secrets
import signal
from pathlib import Path

import pytest

from accord.adapters.local_backend import LocalBackend
from accord.domain.errors import Busy
from accord.domain.federation.model import Federation
from accord.domain.jobs.site import RemoteState
from tests.contract.backend_suite import (
    BackendHarness,
    SiteBackendContract,
    make_job,
    wait_final,
    wait_until,
)


@pytest.fixture
def unique() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def backend(small_federation: Federation, tmp_path: Path) -> BackendHarness:
    return BackendHarness(LocalBackend(small_federation.site("bristol"), tmp_path), "h100", 4,
                          timeout_s=30)


class TestLocalBackend(SiteBackendContract):
    """The shared contract."""


def test_time_limit_kills_the_job(backend: BackendHarness) -> None:
    job = make_job(backend, "slow", ["sleep", "60"], time_limit_s=1)
    ref = backend.backend.submit(job).backend_ref
    status = wait_final(backend, ref)
    assert status.state is RemoteState.TIMEOUT
    assert "time limit of 1 s" in status.reason


def test_gpus_are_capacity(backend: BackendHarness) -> None:
    a = backend.backend.submit(make_job(backend, "a", ["sleep", "30"], gpus=3))
    with pytest.raises(Busy, match="has 1 free GPUs, the job needs 2"):
        backend.backend.submit(make_job(backend, "b", ["true"], gpus=2))
    assert backend.backend.loads()["h100"].free_gpus == 1
    backend.backend.cancel(a.backend_ref)
    wait_final(backend, a.backend_ref)
    assert backend.backend.loads()["h100"].free_gpus == 4


def test_allocations_survive_a_new_backend_instance(
    small_federation: Federation, tmp_path: Path
) -> None:
    site = small_federation.site("bristol")
    first = LocalBackend(site, tmp_path)
    h = BackendHarness(first, "h100", 4)
    job = first.submit(make_job(h, "long", ["sleep", "30"], gpus=3))
    second = LocalBackend(site, tmp_path)  # as after a restart of accord up
    assert second.loads()["h100"].free_gpus == 1
    assert second.poll([job.backend_ref])[job.backend_ref].state in (
        RemoteState.PENDING, RemoteState.RUNNING)
    second.cancel(job.backend_ref)
    wait_final(BackendHarness(second, "h100", 4), job.backend_ref)


def test_a_killed_runner_is_reported_lost_and_its_job_killed(backend: BackendHarness,
                                                               tmp_path: Path) -> None:
    job = make_job(backend, "orphan", ["sleep", "120"])
    ref = backend.backend.submit(job).backend_ref
    wait_final(backend, ref, lambda s: s.state is RemoteState.RUNNING)
    job_dir = tmp_path / "bristol" / ref
    runner = int((job_dir / "runner.pid").read_text().split()[0])
    child = int((job_dir / "child.pid").read_text())
    os.kill(runner, signal.SIGKILL)
    status = wait_final(backend, ref)
    assert status.state is RemoteState.LOST
    assert "vanished" in status.reason
    wait_until(lambda: _gone_or_zombie(child), 10, f"killed: the lost job's process {child}")


def _gone_or_zombie(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")   # the state, after "(command)"


def test_result_file_is_the_truth(backend: BackendHarness, tmp_path: Path) -> None:
    job = make_job(backend, "r", ["true"])
    ref = backend.backend.submit(job).backend_ref
    wait_final(backend, ref)
    result = json.loads((tmp_path / "bristol" / ref / "result.json").read_text())
    assert result["state"] == "completed" and result["exit_code"] == 0


def test_crash_during_the_write_of_job_json_is_recovered_and_runs_once(
    backend: BackendHarness, tmp_path: Path
) -> None:
    job = make_job(backend, "half", ["bash", "-c", f"echo run >> {tmp_path}/runs"])
    half = tmp_path / "bristol" / "half"
    half.mkdir(parents=True)
    (half / "job.json.tmp").write_text('{"job_id": "ha')  # killed mid-write
    ref = backend.backend.submit(job).backend_ref
    assert wait_final(backend, ref).state is RemoteState.COMPLETED
    assert (tmp_path / "runs").read_text() == "run\n"
