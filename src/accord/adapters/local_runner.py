"""The per-job runner of the local backend: ``python -m accord.adapters.local_runner DIR``.

Started detached (its own session) by :class:`LocalBackend`, so it outlives a
crash of ``accord up``. It runs the job's command in ``DIR``, captures stdout and
stderr to files, enforces the time limit by killing the job's process group,
and finally writes ``result.json`` atomically. That file is the one source of
truth for how the job ended; the broker only reads it.

Files in DIR: ``job.json`` (input), ``runner.pid`` (``PID STARTTIME``), ``child.pid``,
``started`` (ISO time), ``stdout``, ``stderr``, ``result.json``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRACE_S = 5.0
WAIT_STEP_S = 0.2


def process_start_ticks(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def run(job_dir: Path) -> int:
    """Run the job described in ``job_dir/job.json``; return the runner's exit status.

    At most one runner ever starts the command: the runner holds ``runner.lock``
    for its whole life, and refuses to start a command that a previous runner
    started (``child.pid`` exists) or finished (``result.json`` exists).
    """
    lock = open(job_dir / "runner.lock", "a")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    if (job_dir / "child.pid").exists() or (job_dir / "result.json").exists():
        return 0
    spec: dict[str, Any] = json.loads((job_dir / "job.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    ticks = process_start_ticks(os.getpid()) or "0"
    write_atomic(job_dir / "runner.pid", f"{os.getpid()} {ticks}\n")  # cancel may come now
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(spec["env"])
    started = _now()
    with open(job_dir / "stdout", "ab") as out, open(job_dir / "stderr", "ab") as err:
        try:
            child = subprocess.Popen(
                spec["argv"], cwd=job_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            _finish(job_dir, "failed", 127, started,
                    f"cannot start command {spec['argv'][0]!r}: {exc.strerror}")
            return 0
        write_atomic(job_dir / "child.pid", f"{child.pid}\n")
        write_atomic(job_dir / "started", started + "\n")
        state, exit_code, reason = _supervise(child, spec["time_limit_s"], stop)
    _finish(job_dir, state, exit_code, started, reason)
    return 0


def _supervise(
    child: subprocess.Popen[bytes], limit_s: float, stop: threading.Event
) -> tuple[str, int | None, str]:
    """Wait for the job; kill it at its time limit or when asked to stop."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            code = child.wait(timeout=WAIT_STEP_S)
            return ("completed" if code == 0 else "failed"), code, _exit_reason(code)
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set():
            _kill_group(child)
            return "cancelled", child.returncode, "cancelled on request"
        if time.monotonic() >= deadline:
            _kill_group(child)
            return "timeout", child.returncode, f"killed after its time limit of {limit_s:g} s"


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _finish(job_dir: Path, state: str, exit_code: int | None, started: str, reason: str) -> None:
    result = {"state": state, "exit_code": exit_code, "started_at": started,
              "ended_at": _now(), "reason": reason}
    write_atomic(job_dir / "result.json", json.dumps(result) + "\n")


def main() -> None:
    """Entry point: ``[--detach] JOB_DIR``; with --detach it forks and the parent returns."""
    args = sys.argv[1:]
    detach = bool(args) and args[0] == "--detach"
    if detach:
        args = args[1:]
    if len(args) != 1:
        print("usage: python -m accord.adapters.local_runner [--detach] JOB_DIR", file=sys.stderr)
        sys.exit(2)
    if detach:
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    sys.exit(run(Path(args[0])))


if __name__ == "__main__":
    main()
