"""A site agent's view of its jobs' directories (:class:`accord.ports.JobDirectory`): it puts
a job's input files there before the job starts and reads the outputs the job declared when
it ends, never following a path out of the directory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from accord.domain.jobs.files import FILE_BYTES, JOB_OUTPUT_BYTES, JOB_OUTPUT_FILES
from accord.domain.jobs.model import Job


class JobDirectories:
    """The job directories of one backend (``root_of(job)``: where the backend runs it)."""

    def __init__(self, root_of: Callable[[Job], Path]) -> None:
        self.root_of = root_of

    def has_input(self, job: Job, name: str, sha256: str) -> bool:
        """Whether the input is in place with the right content."""
        path = self.root_of(job) / name
        return path.is_file() and _sha(path) == sha256

    def put_input(self, job: Job, name: str, data: bytes) -> None:
        """Write an input into the job's directory (atomically: a crash leaves no half file)."""
        where = self.root_of(job)
        where.mkdir(parents=True, exist_ok=True)
        where.chmod(0o777)
        tmp = where / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, where / name)

    def outputs(self, job: Job, patterns: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The declared output files to send (name, bytes) within the bounds, and what was
        left out and why (one line each)."""
        root = self.root_of(job).resolve()
        found = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
        send: list[tuple[str, bytes]] = []
        skipped: list[str] = []
        total = 0
        for path in found:
            name = path.relative_to(root).as_posix() if path.resolve().is_relative_to(root) else ""
            size = path.stat().st_size
            if not name or path.is_symlink():
                skipped.append(f"{path.name}: a link or outside the job's directory")
            elif size > FILE_BYTES or total + size > JOB_OUTPUT_BYTES or len(send) >= JOB_OUTPUT_FILES:
                skipped.append(
                    f"{name}: over the limits ({FILE_BYTES:,} bytes a file; {JOB_OUTPUT_FILES} "
                    f"files and {JOB_OUTPUT_BYTES:,} bytes a job)"
                )
            else:
                send.append((name, path.read_bytes()))
                total += size
        return send, skipped


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
