"""Accord's cost on top of Slurm: dispatching N jobs, and polling 10,000 tracked jobs.

1. Baseline: N plain ``sbatch`` calls on the testbed's ``isambard`` cluster.
   Accord: the same N jobs submitted to the broker (SQLite store, real Slurm
   backend) and dispatched by its passes. Every Slurm command the broker runs is
   timed, so the broker's *added* time per job is its wall time minus the time
   inside Slurm's commands; the target is that this stays below ``sbatch``'s own.
2. One status poll of 10,000 tracked jobs: the broker's ``_poll_sites`` over a
   store holding 10,000 running jobs, against a fake runner that replays
   ``squeue -O`` output in the real 22.05 format for all of them (the parse,
   matching and store cost; Slurm's own time to print 10,000 lines is not ours).
   The real ``squeue`` call on the testbed is timed separately for scale.

    uv run python benchmarks/slurm_dispatch.py [--jobs 40]     (root; testbed running)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.slurm_testbed import cluster_settings, slurm_federation

from accord.adapters.clock import SystemClock
from accord.adapters.slurm.backend import SlurmBackend
from accord.adapters.slurm.commands import Completed, SubprocessRunner
from accord.adapters.sql.store import SqlStore
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, JobSpec, JobState, Placement, apply, new_job
from accord.service.broker import Broker, _Pass


class TimedRunner:
    """A real runner that adds up the time spent in each Slurm command."""

    def __init__(self) -> None:
        self.inner = SubprocessRunner()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Completed:
        t = time.perf_counter()
        try:
            return self.inner.run(argv, env)
        finally:
            self.seconds[argv[0]] = self.seconds.get(argv[0], 0.0) + time.perf_counter() - t
            self.calls[argv[0]] = self.calls.get(argv[0], 0) + 1


def plain_sbatch(n: int, jobs_dir: str, conf: str) -> float:
    """Seconds for n plain sbatch calls."""
    env = {"SLURM_CONF": conf, "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    for i in range(n):
        subprocess.run(["sbatch", "--parsable", "-J", f"bench-plain-{i}", "-p", "gpu",
                        "--gpus=1", "--time=0-00:01:00", f"--chdir={jobs_dir}",
                        "--output=/dev/null", "--wrap", "true"],
                       env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def through_accord(n: int, tmp: Path) -> tuple[float, TimedRunner]:
    """Seconds for the broker to take n submitted jobs to 'dispatched'."""
    fed = slurm_federation()
    runner = TimedRunner()
    backend = SlurmBackend(fed.site("isambard"), tmp, runner)
    store = SqlStore(f"sqlite:///{tmp / 'bench.db'}")
    broker = Broker(fed, store, {"isambard": backend}, SystemClock())
    for i in range(n):
        broker.submit({"command": ["true"], "site": "isambard", "gpus": 1, "time_limit": 60,
                       "name": f"bench-accord-{i}"}, "bench")
    start = time.perf_counter()
    while len(store.list_jobs([JobState.SUBMITTED, JobState.PLACED], limit=n)) > 0:
        broker.step()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed, runner


def poll_10k(tmp: Path, tracked: int) -> tuple[float, float]:
    """Seconds for one broker poll pass over `tracked` running jobs; and for the real squeue."""
    fed = slurm_federation()
    lines = "".join(
        f"{100 + i}|accord-b{i}|RUNNING|None|2026-11-22T11:08:18|1|"
        f"cpu=1,mem=512M,node=1,billing=1,gres/gpu=1,gres/gpu:h100=1|isambard|isambard-n1|"
        f"accord:b{i}\n" for i in range(tracked))

    class Replay:
        def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Completed:
            return Completed(tuple(argv), 0, lines if argv[0] == "squeue" else "", "")

    store = SqlStore(f"sqlite:///{tmp / 'poll.db'}")
    spec = JobSpec("b", 1, 3600, ("true",), site="isambard")
    items = []
    for i in range(tracked):
        job = new_job(f"b{i}", spec, SystemClock().now())
        job = apply(job, Event(EventKind.PLACE, job.submitted_at, "p"),
                    placement=Placement("isambard", "h100"))
        job = apply(job, Event(EventKind.DISPATCH, job.submitted_at, "d"), backend_ref=str(100 + i))
        job = apply(job, Event(EventKind.START, job.submitted_at, "s"))
        items.append((replace(job, version=0), codec.spec_hash(spec)))
    store.add_jobs(items)
    broker = Broker(fed, store, {"isambard": SlurmBackend(fed.site("isambard"), tmp, Replay())},
                    SystemClock())
    start = time.perf_counter()
    broker._poll(_Pass(SystemClock().now()))
    ours = time.perf_counter() - start
    store.close()
    conf = cluster_settings("isambard").slurm_conf
    t = time.perf_counter()
    subprocess.run(["squeue", "-h", "-t", "all", "-O", "JobID:|,Name:|,State:|"],
                   env={"SLURM_CONF": conf, "PATH": "/usr/bin:/bin"}, check=True,
                   capture_output=True)
    return ours, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--tracked", type=int, default=10_000)
    args = parser.parse_args()
    cluster = cluster_settings("isambard")
    with tempfile.TemporaryDirectory(dir=cluster.jobs_dir) as d:
        tmp = Path(d)
        Path(d).chmod(0o777)
        base = plain_sbatch(args.jobs, d, cluster.slurm_conf)
        accord, runner = through_accord(args.jobs, tmp)
        in_slurm = sum(runner.seconds.values())
        added = (accord - in_slurm) / args.jobs * 1000
        sbatch_own = base / args.jobs * 1000
        print(f"dispatch of {args.jobs} jobs to a real Slurm cluster (isambard testbed):")
        print(f"  plain sbatch:            {sbatch_own:7.1f} ms per job  ({args.jobs / base:5.1f} jobs/s)")
        print(f"  through Accord:          {accord / args.jobs * 1000:7.1f} ms per job  "
              f"({args.jobs / accord:5.1f} jobs/s), of which in Slurm commands "
              f"{in_slurm / args.jobs * 1000:.1f} ms; calls: {runner.calls}")
        print(f"  Accord's added time:     {added:7.1f} ms per job = {added / sbatch_own:.2f} x "
              f"sbatch's own  (target < 1: {'met' if added < sbatch_own else 'NOT met'})")
        ours, squeue = poll_10k(tmp, args.tracked)
        print(f"one status poll of {args.tracked:,} tracked jobs (parse, match, store): "
              f"{ours * 1000:.0f} ms; a real squeue -t all on the testbed: {squeue * 1000:.0f} ms")
    subprocess.run(["scancel", "-n", ",".join(f"bench-plain-{i}" for i in range(args.jobs))],
                   env={"SLURM_CONF": cluster.slurm_conf, "PATH": "/usr/bin:/bin"}, check=False)


if __name__ == "__main__":
    main()
