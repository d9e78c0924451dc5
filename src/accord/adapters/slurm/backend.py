"""The Slurm site backend: drives a real Slurm cluster with its own commands.

* submit: ``sbatch --parsable`` with the job tagged twice, as job name
  ``accord-<id>`` and in ``--comment``. When the broker's write-ahead record
  says an earlier attempt may have reached Slurm, the tag is looked up first
  (``squeue``, then ``sacct``), so a crash between ``sbatch`` and recording its
  id never leads to a second submission: the job is adopted instead.
* poll: one ``squeue`` and at most one ``sacct`` call per site per poll, for
  every tracked job at once. A job is final only when ``sacct`` has its end
  (slurmdbd writes with a delay after a job ends); its usage comes from
  ``AllocTRES`` (allocated, not requested GPUs) of the allocation line (steps
  are never added).
* failures: any command failure is :class:`Unavailable`; after one, the site is
  left alone for an exponentially growing pause (capped), so a down controller
  costs one failed call per pause, not one per job.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from accord.adapters.slurm.commands import CommandRunner, SubprocessRunner
from accord.adapters.slurm.parse import (
    SACCT_FIELDS,
    SQUEUE_FORMAT_LONG,
    QueueEntry,
    SlurmRecord,
    parse_sacct_parsable,
    parse_sbatch_parsable,
    parse_squeue_format,
)
from accord.domain.errors import Conflict, Unavailable
from accord.domain.federation.model import Site, SlurmSettings
from accord.domain.jobs.model import Job, Outcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.ledger.reconcile import SiteUsage
from accord.domain.placement.records import PoolLoad
from accord.ports.enforcement import RunAs

TAG_PREFIX = "accord-"
BACKOFF_START_S = 2.0
BACKOFF_MAX_S = 60.0
LOG_TAIL_BYTES = 1_000_000
SACCT_LOOKBACK = "now-60days"


def job_tag(job_id: str) -> str:
    """The Slurm job name that marks an Accord job.

    >>> job_tag("j1")
    'accord-j1'
    """
    return f"{TAG_PREFIX}{job_id}"


def slurm_time(seconds: int) -> str:
    """A Slurm ``--time`` value, rounded up to whole minutes (Slurm's resolution).

    >>> slurm_time(90), slurm_time(86400 + 3600)
    ('0-00:02:00', '1-01:00:00')
    """
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


class SlurmBackend:
    """One Slurm cluster; see :class:`accord.ports.SiteBackend`."""

    def __init__(self, site: Site, jobs_root: Path, runner: CommandRunner | None = None,
                 run_as: Callable[[Job], RunAs] | None = None) -> None:
        if site.slurm is None:
            raise Conflict(f"site {site.id} has no [sites.slurm] settings")
        self.site = site
        self.site_id = site.id
        self.settings: SlurmSettings = site.slurm
        root = Path(site.slurm.workdir) if site.slurm.workdir else jobs_root
        self.root = root / site.id
        self.runner = runner or SubprocessRunner()
        self.run_as = run_as   # with site enforcement: the job's account and local user
        self.env = {"TZ": "UTC", "SLURM_TIME_FORMAT": "%Y-%m-%dT%H:%M:%S"}
        if site.slurm.slurm_conf:
            self.env["SLURM_CONF"] = site.slurm.slurm_conf
        self._pause_until = 0.0
        self._pause_s = 0.0
        self._last_error = ""
        self._queued_gpus = 0

    # ------------------------------------------------------------ plumbing
    def _run(self, *argv: str, check: bool = True) -> str:
        if time.monotonic() < self._pause_until:
            raise Unavailable(f"{self.site_id}: backing off after '{self._last_error}' "
                              f"(next try in {self._pause_until - time.monotonic():.0f} s)")
        try:
            done = self.runner.run(argv, self.env)
            if check:
                done.check()
        except Unavailable as exc:
            self._pause_s = min(BACKOFF_MAX_S, max(BACKOFF_START_S, self._pause_s * 2))
            self._pause_until = time.monotonic() + self._pause_s
            self._last_error = str(exc)
            raise
        self._pause_s = 0.0
        return done.stdout

    def _cluster_args(self) -> list[str]:
        return ["-M", self.settings.cluster]

    # ------------------------------------------------------------ SiteBackend
    def loads(self) -> Mapping[str, PoolLoad]:
        """Free GPUs from ``sinfo --json`` (idle GPUs of usable nodes in the partition)."""
        out = self._run("sinfo", "--json", *self._partition_args())
        free = _free_gpus(out, self.settings.partition)
        pools = self.site.pools
        share = {p.id: (free if i == 0 else 0) for i, p in enumerate(pools)}
        return {p.id: PoolLoad(free_gpus=share[p.id], queued_gpus=self._queued_gpus)
                for p in pools}

    def _partition_args(self) -> list[str]:
        return ["-p", self.settings.partition] if self.settings.partition else []

    def look_up(self, job: Job) -> Dispatched | None:
        """The submission that carries the job's tag (``squeue``, then ``sacct``), if any.

        Raises:
            Unavailable: Slurm did not answer.
        """
        found = self._find(job.id)
        return None if found is None else Dispatched(backend_ref=found, adopted=True)

    def submit(self, job: Job) -> Dispatched:
        """Submit with ``sbatch`` (the broker has looked the tag up if an earlier submission
        may exist).

        With site enforcement, the job runs as its owner's local user under its allocation's
        account, in a directory only that user (and root) can enter.

        Raises:
            Conflict: the job is not placed at this site, or no open allocation covers it.
            Busy: its local user or account is not ready yet.
            Unavailable: Slurm refused or did not answer.
        """
        if job.placement is None or job.placement.site != self.site_id:
            raise Conflict(f"job {job.id} is not placed at site {self.site_id}")
        who = self.run_as(job) if self.run_as is not None else None
        job_dir = self.root / job.id
        job_dir.mkdir(parents=True, exist_ok=True)
        script = job_dir / "job.sbatch"
        script.write_text(_batch_script(job))
        if who is None:
            job_dir.chmod(0o777)
        else:
            _own(job_dir, who)
        args = self._sbatch_args(job, job_dir, who)
        out = self._run("sbatch", "--parsable", *args, str(script))
        return Dispatched(backend_ref=parse_sbatch_parsable(out))

    def _sbatch_args(self, job: Job, job_dir: Path, who: RunAs | None = None) -> list[str]:
        args = ["-J", job_tag(job.id), f"--comment=accord:{job.id}", f"--chdir={job_dir}",
                f"--output={job_dir / 'stdout'}", f"--error={job_dir / 'stderr'}",
                f"--gpus={job.spec.gpus}", f"--time={slurm_time(job.spec.time_limit_s)}",
                "--no-requeue",
                f"--export=ALL,ACCORD_JOB_ID={job.id},ACCORD_SITE={self.site_id}"]
        args += self._partition_args()
        if who is not None:
            args += ["-A", who.account, f"--uid={who.uid}", f"--gid={who.gid}"]
        elif self.settings.account:
            args += ["-A", self.settings.account]
        return args

    def _find(self, job_id: str) -> str | None:
        """The Slurm id of a job already submitted with this tag, if any."""
        name = job_tag(job_id)
        queued = [e for e in parse_squeue_format(
            self._run("squeue", "-h", "-t", "all", "--name", name, "-O", SQUEUE_FORMAT_LONG),
            SQUEUE_FORMAT_LONG) if e.name == name]
        if queued:
            return min(queued, key=lambda e: int(e.job_id)).job_id
        records = [r for r in parse_sacct_parsable(self._run(
            "sacct", *self._cluster_args(), "-P", "-X", "-n", "-S", SACCT_LOOKBACK, "--name", name,
            "-o", ",".join(SACCT_FIELDS))) if r.name == name]
        if records:
            return min(records, key=lambda r: int(r.job_id)).job_id
        return None

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        """One ``squeue`` (and one ``sacct`` for jobs it no longer shows as live)."""
        if not refs:
            return {}
        queue = {e.job_id: e for e in parse_squeue_format(
            self._run("squeue", "-h", "-t", "all", "-O", SQUEUE_FORMAT_LONG), SQUEUE_FORMAT_LONG)}
        self._queued_gpus = sum(e.gpus for e in queue.values() if e.state is RemoteState.PENDING)
        done = [r for r in refs if r not in queue or queue[r].state.is_final]
        records: dict[str, SlurmRecord] = {}
        if done:
            out = self._run("sacct", *self._cluster_args(), "-P", "-X", "-n", "-S",
                            SACCT_LOOKBACK, "-j", ",".join(done), "-o", ",".join(SACCT_FIELDS))
            records = {r.job_id: r for r in parse_sacct_parsable(out)}
        return {ref: _status(queue.get(ref), records.get(ref)) for ref in refs}

    def cancel(self, ref: str) -> None:
        """``scancel``; a job Slurm no longer knows is not an error."""
        out = self.runner.run(("scancel", ref), self.env)
        if out.returncode != 0 and "Invalid job id" not in out.stderr:
            out.check()

    def logs(self, ref: str, job: Job) -> JobLogs:
        """The job's output files (the job directory is on a filesystem Accord can read)."""
        job_dir = self.root / job.id
        return JobLogs(_tail(job_dir / "stdout"), _tail(job_dir / "stderr"))

    def accounting(self, start: datetime, end: datetime) -> list[SiteUsage]:
        """Accord's jobs in Slurm's accounting over [start, end), clipped to it (--truncate)."""
        fmt = "%Y-%m-%dT%H:%M:%S"
        out = self._run("sacct", *self._cluster_args(), "-P", "-X", "-n", "--truncate",
                        "-S", start.astimezone(UTC).strftime(fmt),
                        "-E", end.astimezone(UTC).strftime(fmt), "-o", ",".join(SACCT_FIELDS))
        usage = []
        for r in parse_sacct_parsable(out):
            if not r.name.startswith(TAG_PREFIX) or r.start is None:
                continue
            stop = min(r.end or end, end)
            seconds = max(0.0, (stop - max(r.start, start)).total_seconds())
            usage.append(SiteUsage(r.job_id, r.name[len(TAG_PREFIX):], r.alloc_gpus,
                                   r.alloc_gpus * seconds))
        return usage

    def record(self, ref: str) -> SlurmRecord | None:
        """Slurm's accounting record of one job (for reconciliation and tests)."""
        out = self._run("sacct", *self._cluster_args(), "-P", "-X", "-n", "-S", SACCT_LOOKBACK,
                        "-j", ref, "-o", ",".join(SACCT_FIELDS))
        records = parse_sacct_parsable(out)
        return records[0] if records else None


def _own(job_dir: Path, who: RunAs) -> None:
    """The job's directory and what is in it the visitor's, mode 0700; its parents only
    traversable (0711), so no other visitor can list or read it."""
    for parent in (job_dir.parent, job_dir.parent.parent):
        parent.chmod(0o711)
    for path in (job_dir, *job_dir.iterdir()):
        os.chown(path, who.uid, who.gid)
    job_dir.chmod(0o700)


def _status(entry: QueueEntry | None, record: SlurmRecord | None) -> RemoteStatus:
    if entry is not None and not entry.state.is_final:
        return RemoteStatus(entry.state, started_at=entry.start, reason=entry.reason)
    if record is None or record.end is None or not record.state.is_final:
        if entry is not None:
            # Slurm says it ended, accounting does not have it yet (slurmdbd's write delay).
            return RemoteStatus(RemoteState.RUNNING, started_at=entry.start,
                                reason="ended; waiting for Slurm accounting")
        if record is not None:
            return RemoteStatus(record.state if not record.state.is_final else RemoteState.RUNNING,
                                started_at=record.start)
        return RemoteStatus(RemoteState.LOST, reason="Slurm has no record of this job")
    outcome = Outcome(record.exit_code, record.start, record.end, record.gpu_seconds,
                      _reason(record), record.alloc_gpus, record.energy_j)
    return RemoteStatus(record.state, record.start, outcome, _reason(record))


def _reason(r: SlurmRecord) -> str:
    text = r.raw_state
    if r.exit_code is not None:
        text += f", exit code {r.exit_code}"
    if r.signal:
        text += f", signal {r.signal}"
    if r.reason:
        text += f" ({r.reason})"
    return text


def _batch_script(job: Job) -> str:
    if job.spec.script is not None:
        body = job.spec.script
        return body if body.startswith("#!") else "#!/bin/bash\n" + body
    return "#!/bin/bash\nexec " + shlex.join(job.spec.command) + "\n"


def _free_gpus(sinfo_json: str, partition: str | None) -> int:
    try:
        nodes = json.loads(sinfo_json)["nodes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable(f"sinfo --json printed something unexpected: {sinfo_json[:200]!r}") from exc
    free = 0
    for node in nodes:
        if partition and partition not in (node.get("partitions") or []):
            continue
        state = node.get("state")
        states = state if isinstance(state, list) else [str(state)]
        if any(s.lower() in ("down", "drain", "drained", "draining", "fail", "unknown")
               for s in states):
            continue
        free += _gres_count(node.get("gres", "")) - _gres_count(node.get("gres_used", ""))
    return max(0, free)


def _gres_count(gres: str) -> int:
    """GPUs in a gres string such as ``gpu:h100:4(IDX:0-3)`` or ``gpu:4,shard:2``.

    >>> _gres_count("gpu:h100:4(IDX:0-3)"), _gres_count("gpu:2,gpu:a100:1"), _gres_count("")
    (4, 3, 0)
    """
    total = 0
    for part in str(gres).split(","):
        fields = part.split("(")[0].split(":")
        if fields and fields[0] == "gpu" and len(fields) >= 2 and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
