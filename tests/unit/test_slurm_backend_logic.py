"""The Slurm backend's own logic, with a fake runner that replays real 22.05 output.

The real-cluster suite is tests/integration/test_slurm_backend.py; these cover the
cases a real cluster cannot be made to show on demand: slurmdbd's write delay, a job
nobody knows, back-off after failures, a refused sbatch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.adapters.slurm import backend as slurm_backend
from accord.adapters.slurm.backend import SlurmBackend
from accord.adapters.slurm.commands import Completed
from accord.domain.errors import Unavailable
from accord.domain.jobs.model import JobSpec, Placement, new_job
from accord.domain.jobs.site import RemoteState
from tests.conftest import SMALL_FEDERATION

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm" / "22.05" / "parse-formats"
SQUEUE = (FIXTURES / "squeue-O.txt").read_text()
SACCT_FINAL = (FIXTURES / "sacct-final.txt").read_text()


class FakeRunner:
    """Answers each command from a table of real outputs; records what it was asked."""

    def __init__(self, answers: dict[str, str | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Completed:
        self.calls.append(tuple(argv))
        answer = self.answers[argv[0]]
        if isinstance(answer, Exception):
            raise answer
        if answer.startswith("!"):
            return Completed(tuple(argv), 1, "", answer[1:])
        return Completed(tuple(argv), 0, answer, "")


def _backend(runner: FakeRunner, tmp_path: Path) -> SlurmBackend:
    text = SMALL_FEDERATION.replace(
        'backend = "local"\n[[sites.pools]]\nid = "h100"',
        'backend = "slurm"\n[sites.slurm]\ncluster = "isambard"\npartition = "gpu"\n'
        '[[sites.pools]]\nid = "h100"', 1)
    site = parse_federation_text(text).site("bristol")
    return SlurmBackend(site, tmp_path, runner)


def test_final_in_squeue_but_not_yet_in_sacct_is_still_running(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": SQUEUE, "sacct": ""})
    status = _backend(runner, tmp_path).poll(["33"])["33"]
    assert status.state is RemoteState.RUNNING
    assert "waiting for Slurm accounting" in status.reason


def test_final_once_sacct_has_it_with_allocated_gpus(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": SQUEUE, "sacct": SACCT_FINAL})
    statuses = _backend(runner, tmp_path).poll(["33", "31", "30"])
    failed = statuses["33"]
    assert failed.state is RemoteState.FAILED
    assert failed.outcome is not None
    assert (failed.outcome.exit_code, failed.outcome.gpus, failed.outcome.gpu_seconds) == (3, 1, 1.0)
    assert statuses["30"].state is RemoteState.RUNNING  # squeue still shows it running
    assert [c[0] for c in runner.calls] == ["squeue", "sacct"], "one call of each per poll"


def test_multi_node_job_counted_once_from_its_allocation(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": "", "sacct": SACCT_FINAL})
    status = _backend(runner, tmp_path).poll(["31"])["31"]
    assert status.outcome is not None
    assert (status.outcome.gpus, status.outcome.gpu_seconds) == (4, 60.0)


def test_a_job_nobody_knows_is_lost(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": SQUEUE, "sacct": ""})
    assert _backend(runner, tmp_path).poll(["4242"])["4242"].state is RemoteState.LOST


def test_failures_back_off_instead_of_hammering_the_controller(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": "!slurm_load_jobs error: Unable to contact slurm controller"})
    backend = _backend(runner, tmp_path)
    with pytest.raises(Unavailable, match="Unable to contact slurm controller"):
        backend.poll(["1"])
    for _ in range(5):
        with pytest.raises(Unavailable, match="backing off"):
            backend.poll(["1"])
    assert len(runner.calls) == 1


def test_refused_sbatch_is_unavailable_with_slurms_words(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": "!sbatch: error: Batch job submission failed: "
                                   "Requested node configuration is not available"})
    backend = _backend(runner, tmp_path)
    job = replace(new_job("j1", JobSpec("t", 1, 60, ("true",)), datetime.now(UTC)),
                  placement=Placement("bristol", "h100"))
    with pytest.raises(Unavailable, match="Requested node configuration is not available"):
        backend.submit(job)
    assert [c[0] for c in runner.calls] == ["sbatch"], "submit never looks up: the broker asks first"
    sbatch = runner.calls[0]
    assert "-J" in sbatch and "accord-j1" in sbatch
    assert "--gpus=1" in sbatch and "--time=0-00:01:00" in sbatch and "-p" in sbatch


def test_adopts_a_job_found_by_its_tag(tmp_path: Path) -> None:
    runner = FakeRunner({"squeue": SQUEUE.replace("accord-held", "accord-j1"), "sacct": ""})
    job = replace(new_job("j1", JobSpec("t", 1, 60, ("true",)), datetime.now(UTC)),
                  placement=Placement("bristol", "h100"))
    got = _backend(runner, tmp_path).look_up(job)
    assert got is not None and (got.backend_ref, got.adopted) == ("32", True)


def test_time_limits_round_up_to_minutes() -> None:
    assert slurm_backend.slurm_time(1) == "0-00:01:00"
    assert slurm_backend.slurm_time(3600) == "0-01:00:00"
