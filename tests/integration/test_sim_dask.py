"""``accord simulate --workers tcp://HOST:PORT`` on a real Dask cluster: a ``dask scheduler``
and two ``dask worker`` processes on 127.0.0.1 (the venv's ``dask`` command, free ports),
started here and killed at teardown. A sweep run there gives the serial run's results, job for
job and figure for figure; a unit that kills its worker is an error naming ``--workers``."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from accord.cli import main
from accord.domain.errors import InvalidInput
from accord.sim.executors import HERE, execute, parse_workers
from accord.sim.model import Policy
from accord.sim.scenario import load_scenario
from accord.sim.sweep import inputs_of, merge, plan
from tests.integration.server import free_port
from tests.sim.sweep_faults import die_on_carbon
from tests.sim.test_sweep import without_seconds

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "sim"
DASK = Path(sys.executable).parent / "dask"


class DaskProcess:
    """A ``dask`` command in its own process group (a worker's nanny starts a child): killed,
    group and all, by :meth:`kill`."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                         cwd=ROOT, start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # the nanny's worker too, whatever happened
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def wait_for_workers(address: str, n: int, procs: list[DaskProcess], timeout_s: float = 90.0) -> None:
    """Until the scheduler at ``address`` has ``n`` workers (a readiness probe)."""
    from distributed import Client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.proc.poll() is not None]
        assert not dead, f"{dead[0].log.name} exited: {dead[0].log.read_text()[-2000:]}"
        try:
            with Client(address, timeout=5, set_as_default=False) as client:  # type: ignore[no-untyped-call]
                if len(client.nthreads()) >= n:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no {n} Dask workers at {address} after {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[DaskProcess]]]:
    """``tcp://127.0.0.1:PORT`` of a scheduler with two single-threaded workers. A unit that
    kills a worker is not retried (allowed-failures 0), so that test is quick."""
    logs = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    procs: list[DaskProcess] = []
    try:
        procs.append(DaskProcess(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 logs / "scheduler.log", env))
        for i in range(2):
            procs.append(DaskProcess(["worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                      "--no-dashboard", "--name", f"w{i}"], logs / f"worker{i}.log", env))
        wait_for_workers(address, 2, procs)
        yield address, procs
    finally:
        for p in reversed(procs):
            p.kill()


def test_a_sweep_on_the_cluster_gives_the_serial_results(cluster: tuple[str, list[DaskProcess]]) -> None:
    address, procs = cluster
    wait_for_workers(address, 2, procs)   # again: the other test may have had a worker restarted
    s = dataclasses.replace(load_scenario(FIXTURES / "scenario.toml"), jobs=50,
                            policies=(Policy.HOME, Policy.CARBON), seeds=(1, 2), seed=1)
    units = plan(s)
    here, there = execute(units, HERE), execute(units, parse_workers(address))
    for u, a, b in zip(units, here, there, strict=True):
        assert np.array_equal(a.grams, b.grams, equal_nan=True), u.label
        assert {k: v for k, v in a.figures.items() if k != "seconds"} == \
            {k: v for k, v in b.figures.items() if k != "seconds"}, u.label
    inputs = inputs_of(units[0].scenario)
    assert without_seconds(merge(inputs, units, here)) == without_seconds(merge(inputs, units, there))


def test_the_cli_runs_a_sweep_on_the_cluster(cluster: tuple[str, list[DaskProcess]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    address, procs = cluster
    wait_for_workers(address, 2, procs)
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--scenario", str(FIXTURES / "scenario.toml"), "--jobs", "30", "--policy", "home",
              "--policy", "carbon", "--seeds", "1,2", "--workers", address, "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert e.value.code in (0, None), captured.err
    assert f"simulating sweep on {address}: 12 runs and oracles" in captured.err
    assert "mean and 95 % interval over 2 seeds" in captured.out


def test_a_unit_that_kills_its_worker_is_an_error_naming_workers(
        cluster: tuple[str, list[DaskProcess]]) -> None:
    address, procs = cluster
    wait_for_workers(address, 2, procs)
    s = dataclasses.replace(load_scenario(FIXTURES / "scenario.toml"), jobs=20,
                            policies=(Policy.HOME, Policy.CARBON))
    with pytest.raises(InvalidInput) as e:
        execute(plan(s), parse_workers(address), run=die_on_carbon)
    text = e.value.problems[0].render()
    assert text.startswith("--workers: the Dask ") and f"(got {address}," in text, text
    # the unit that killed its worker, or one whose result died with it as it was fetched
    assert "died (killed, or out of memory?)" in text or "a worker died" in text, text


def test_a_scheduler_without_workers_is_an_error_naming_workers(tmp_path: Path) -> None:
    """Every worker gone (or none started): the sweep ends with an error after ``idle_s``
    (60 s on the command line), not a hang."""
    port = free_port()
    scheduler = DaskProcess(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                            tmp_path / "scheduler.log", dict(os.environ))
    try:
        wait_for_workers(f"tcp://127.0.0.1:{port}", 0, [scheduler])
        workers = dataclasses.replace(parse_workers(f"tcp://127.0.0.1:{port}"), idle_s=3.0)
        s = dataclasses.replace(load_scenario(FIXTURES / "scenario.toml"), jobs=10, policies=(Policy.HOME,))
        with pytest.raises(InvalidInput) as e:
            execute(plan(s), workers)
        assert e.value.problems[0].render().startswith(
            f"--workers: the Dask scheduler has had no worker for 3 s (got tcp://127.0.0.1:{port}, allowed "
            f"start workers: dask worker tcp://127.0.0.1:{port})")
    finally:
        scheduler.kill()
