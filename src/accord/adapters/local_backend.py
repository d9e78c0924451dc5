"""The local site backend: runs jobs as processes on this machine.

Each job gets a directory ``ROOT/SITE/JOB_ID`` that is both its working
directory and the backend's durable state: creating it is the "submission"
(``mkdir`` is atomic, so a job can never be started twice), and a detached
runner (:mod:`accord.adapters.local_runner`) records how it ended in
``result.json``. GPUs are capacity: each job gets distinct indices from its
pool, exported as ``CUDA_VISIBLE_DEVICES``; the allocation is in ``job.json``
so it survives restarts.

Orphans (a runner that died without writing a result, e.g. the machine was
rebooted or the runner was killed) are reported LOST; :meth:`poll` first kills
what is left of the job's process group, so a lost job never keeps running
unseen. See ``docs/design/crash-safety.md``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from accord.adapters.local_runner import process_start_ticks, write_atomic
from accord.domain.errors import Busy, Conflict, Unavailable
from accord.domain.federation.model import Site
from accord.domain.jobs.model import Job, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.ledger.reconcile import SiteUsage
from accord.domain.placement.records import PoolLoad

LOG_TAIL_BYTES = 1_000_000
RUNNER_START_GRACE_S = 30.0
_RESULT_STATES = {
    "completed": RemoteState.COMPLETED,
    "failed": RemoteState.FAILED,
    "timeout": RemoteState.TIMEOUT,
    "cancelled": RemoteState.CANCELLED,
}


class LocalBackend:
    """A site whose GPU pools are capacity on this machine; see :class:`accord.ports.SiteBackend`."""

    def __init__(self, site: Site, root: Path) -> None:
        self.site = site
        self.site_id = site.id
        self.root = root / site.id
        self.root.mkdir(parents=True, exist_ok=True)
        self._active: dict[str, tuple[str, tuple[int, ...]]] = {}
        self._seen = -1
        self._refresh()

    def _refresh(self) -> None:
        """Re-read the allocations when the job directory changed behind this process's back
        (another replica of the hub led before: its jobs hold GPUs too)."""
        seen = self.root.stat().st_mtime_ns
        if seen != self._seen:
            self._active = {}
            self._rebuild_allocations()
            self._seen = seen

    def _rebuild_allocations(self) -> None:
        for job_dir in self.root.iterdir():
            spec_file = job_dir / "job.json"
            if spec_file.exists() and not (job_dir / "result.json").exists():
                spec = json.loads(spec_file.read_text())
                self._active[job_dir.name] = (spec["pool"], tuple(spec["gpu_indices"]))

    def _prune(self) -> None:
        self._refresh()
        for ref in [r for r in self._active if (self.root / r / "result.json").exists()]:
            del self._active[ref]

    def loads(self) -> Mapping[str, PoolLoad]:
        """Free GPUs per pool (jobs never queue here: the broker waits instead)."""
        self._prune()
        used: dict[str, int] = {}
        for pool, indices in self._active.values():
            used[pool] = used.get(pool, 0) + len(indices)
        return {p.id: PoolLoad(free_gpus=p.gpus - used.get(p.id, 0)) for p in self.site.pools}

    def look_up(self, job: Job) -> Dispatched | None:
        """The job's runner, if one was started here (adopted, and relaunched if it never
        came up); None if its directory holds no job file."""
        job_dir = self.root / job.id
        if not (job_dir / "job.json").exists():
            return None
        return self._adopt(job, job_dir)

    def submit(self, job: Job) -> Dispatched:
        """Start the job's runner, or adopt the one already started for this job (creating
        the job directory is the check).

        Raises:
            Conflict: the job is not placed at one of this site's pools.
            Busy: the pool has not enough free GPUs now.
            Unavailable: the runner cannot start.
        """
        if job.placement is None or job.placement.site != self.site_id:
            raise Conflict(f"job {job.id} is not placed at site {self.site_id}")
        job_dir = self.root / job.id
        try:
            self._refresh()
            job_dir.mkdir()
            self._seen = self.root.stat().st_mtime_ns
        except FileExistsError:
            if (job_dir / "job.json").exists() or not any(job_dir.iterdir()):
                return self._adopt(job, job_dir)
            # The directory holds the job's input files, put there by a site agent before
            # submitting (the agent submits one job at a time): the job starts here.
        try:
            indices = self._allocate(job.placement.pool, job.spec.gpus)
        except Busy:
            job_dir.rmdir()
            raise
        write_atomic(job_dir / "job.json", json.dumps(self._job_file(job, indices)))
        self._active[job.id] = (job.placement.pool, indices)
        self._launch(job.id, job_dir)
        return Dispatched(backend_ref=job.id, gpu_indices=indices)

    def _adopt(self, job: Job, job_dir: Path) -> Dispatched:
        spec_file = job_dir / "job.json"
        if not spec_file.exists():
            # Crashed between mkdir and the atomic write of job.json (a job.json.tmp may be
            # left): no runner was ever started for it, so start afresh.
            shutil.rmtree(job_dir)
            return self.submit(job)
        indices = tuple(json.loads(spec_file.read_text())["gpu_indices"])
        if not (job_dir / "runner.pid").exists() and _age_s(spec_file) > RUNNER_START_GRACE_S:
            self._launch(job.id, job_dir)  # the runner never came up; it is exclusive anyway
        return Dispatched(backend_ref=job.id, gpu_indices=indices, adopted=True)

    def _allocate(self, pool_id: str, gpus: int) -> tuple[int, ...]:
        """The lowest ``gpus`` free indices of the pool: work in proportion to the GPUs the
        job asks for and those already allocated, never to the pool's size.

        Raises:
            NotFound: no such pool here.
            Busy: fewer free GPUs than ``gpus``.
        """
        self._prune()
        pool = self.site.pool(pool_id)
        used = {i for p, idx in self._active.values() if p == pool_id for i in idx}
        free = pool.gpus - len(used)
        if free < gpus:
            raise Busy(f"pool {self.site_id}/{pool_id} has {max(free, 0)} free GPUs, "
                       f"the job needs {gpus}")
        return tuple(itertools.islice((i for i in itertools.count() if i not in used), gpus))

    def _job_file(self, job: Job, indices: tuple[int, ...]) -> dict[str, Any]:
        if job.spec.script is not None:
            (self.root / job.id / "script.sh").write_text(job.spec.script)
            argv = ["/bin/bash", "script.sh"]
        else:
            argv = list(job.spec.command)
        assert job.placement is not None
        env = {
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in indices),
            "ACCORD_JOB_ID": job.id,
            "ACCORD_SITE": self.site_id,
        }
        return {"job_id": job.id, "argv": argv, "time_limit_s": job.spec.time_limit_s,
                "pool": job.placement.pool, "gpu_indices": list(indices), "env": env}

    def _launch(self, ref: str, job_dir: Path) -> None:
        argv = [sys.executable, "-m", "accord.adapters.local_runner", "--detach", str(job_dir)]
        try:
            with open(job_dir / "runner.log", "ab") as runner_log:
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=runner_log, start_new_session=True, close_fds=True,
                               timeout=30, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise Unavailable(f"cannot start the local runner for {ref}: {exc}") from exc

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        """Status of each ref from its directory (no process is asked anything)."""
        self._prune()
        return {ref: self._status(ref) for ref in refs}

    def _status(self, ref: str) -> RemoteStatus:
        job_dir = self.root / ref
        result = _read_json(job_dir / "result.json")
        if result is not None:
            return self._final(job_dir, result)
        if not (job_dir / "job.json").exists():
            return RemoteStatus(RemoteState.LOST, reason="the site has no record of this job")
        started = _read_time(job_dir / "started")
        if self._runner_alive(job_dir):
            state = RemoteState.RUNNING if started else RemoteState.PENDING
            return RemoteStatus(state, started_at=started)
        result = _read_json(job_dir / "result.json")
        if result is not None:
            return self._final(job_dir, result)
        if not (job_dir / "runner.pid").exists():
            if _age_s(job_dir / "job.json") > RUNNER_START_GRACE_S:
                self._launch(ref, job_dir)  # the runner never came up; it is exclusive anyway
            return RemoteStatus(RemoteState.PENDING)
        self._kill_orphan(job_dir)
        return RemoteStatus(RemoteState.LOST, started_at=started,
                            reason="the job's runner vanished without a result; "
                                   "what was left of it was killed")

    def _final(self, job_dir: Path, result: dict[str, Any]) -> RemoteStatus:
        spec = json.loads((job_dir / "job.json").read_text())
        start = datetime.fromisoformat(result["started_at"])
        end = datetime.fromisoformat(result["ended_at"])
        gpu_seconds = len(spec["gpu_indices"]) * max(0.0, (end - start).total_seconds())
        outcome = Outcome(result["exit_code"], start, end, gpu_seconds, result["reason"],
                          len(spec["gpu_indices"]))
        return RemoteStatus(_RESULT_STATES[result["state"]], start, outcome, result["reason"])

    def _runner_alive(self, job_dir: Path) -> bool:
        try:
            pid_text, ticks = (job_dir / "runner.pid").read_text().split()
        except (OSError, ValueError):
            return False
        return process_start_ticks(int(pid_text)) == ticks

    def _kill_orphan(self, job_dir: Path) -> None:
        try:
            child = int((job_dir / "child.pid").read_text())
            os.killpg(child, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def cancel(self, ref: str) -> None:
        """Stop the job: SIGTERM to its runner, which kills the job and records it."""
        job_dir = self.root / ref
        if (job_dir / "result.json").exists() or not (job_dir / "job.json").exists():
            return
        if self._runner_alive(job_dir):
            pid = int((job_dir / "runner.pid").read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            return
        self._kill_orphan(job_dir)

    def accounting(self, start: datetime, end: datetime) -> list[SiteUsage]:
        """Finished jobs' GPU-seconds within [start, end), from their result files."""
        usage = []
        for job_dir in sorted(self.root.iterdir()):
            result = _read_json(job_dir / "result.json")
            spec = _read_json(job_dir / "job.json")
            if result is None or spec is None:
                continue
            run_start = max(datetime.fromisoformat(result["started_at"]), start)
            run_end = min(datetime.fromisoformat(result["ended_at"]), end)
            if run_end <= run_start:
                continue
            gpus = len(spec["gpu_indices"])
            seconds = (run_end - run_start).total_seconds()
            usage.append(SiteUsage(job_dir.name, job_dir.name, gpus, gpus * seconds))
        return usage

    def logs(self, ref: str, job: Job) -> JobLogs:
        """The tails of the job's stdout and stderr files."""
        job_dir = self.root / ref
        return JobLogs(_tail(job_dir / "stdout"), _tail(job_dir / "stderr"))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _read_time(path: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
