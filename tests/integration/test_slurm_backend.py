"""The SiteBackend contract and the accounting pitfalls, against real Slurm."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from accord.adapters.slurm.backend import SlurmBackend
from accord.domain.jobs.site import RemoteState
from tests.contract.backend_suite import BackendHarness, SiteBackendContract, make_job, wait_final
from tests.integration.slurm_testbed import SERIAL, slurm_federation

pytestmark = SERIAL


@pytest.fixture
def unique() -> str:
    return secrets.token_hex(4)


@pytest.fixture(scope="module")
def slurm_backend(tmp_path_factory: pytest.TempPathFactory) -> SlurmBackend:
    fed = slurm_federation()
    return SlurmBackend(fed.site("isambard"), tmp_path_factory.mktemp("slurm"))


@pytest.fixture
def backend(slurm_backend: SlurmBackend) -> BackendHarness:
    return BackendHarness(slurm_backend, "h100", 8, timeout_s=120)


class TestSlurmBackend(SiteBackendContract):
    """The shared contract, on the isambard testbed cluster."""


def test_usage_is_the_allocation_once_for_a_multi_node_job(backend: BackendHarness,
                                                           unique: str) -> None:
    # 6 GPUs cannot fit one 4-GPU node: Slurm spreads the job over both nodes, and the
    # allocation line (not the steps, not the typed gres/gpu:h100 entry) counts it once.
    job = make_job(backend, f"multi-{unique}", ["bash", "-c", "srun -N2 hostname; sleep 2"],
                   gpus=6)
    ref = backend.backend.submit(job).backend_ref
    status = wait_final(backend, ref)
    assert status.state is RemoteState.COMPLETED, status
    record = backend.backend.record(ref)  # type: ignore[attr-defined]
    assert record is not None
    assert (record.alloc_gpus, record.nodes) == (6, 2)
    assert status.outcome is not None
    assert status.outcome.gpus == 6
    assert status.outcome.gpu_seconds == 6 * record.elapsed_s


def test_reading_accounting_twice_gives_the_same_answer(backend: BackendHarness,
                                                         unique: str) -> None:
    job = make_job(backend, f"twice-read-{unique}", ["sleep", "1"], gpus=2)
    ref = backend.backend.submit(job).backend_ref
    first = wait_final(backend, ref)
    second = backend.backend.poll([ref])[ref]
    assert first == second


def test_job_lands_in_its_directory_not_the_cwd(backend: BackendHarness, unique: str,
                                               slurm_backend: SlurmBackend) -> None:
    job = make_job(backend, f"cwd-{unique}", ["pwd"])
    ref = backend.backend.submit(job).backend_ref
    wait_final(backend, ref)
    out = backend.backend.logs(ref, job).stdout.strip()
    assert out == str(slurm_backend.root / job.id)
    assert not list(Path.cwd().glob("slurm-*.out"))
