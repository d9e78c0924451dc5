"""What a site says of the jobs it runs: their state, how they ended, their output.

A closed vocabulary over every scheduler's (Slurm's states, the local runner's), shared by
the site backends that report it and the lifecycle machine that acts on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from accord.domain.jobs.model import Outcome


class RemoteState(enum.Enum):
    """A job's state as a site backend reports it (a closed vocabulary over Slurm's)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NODE_FAIL = "node_fail"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        """Whether the backend will report nothing new about the job."""
        return self not in (RemoteState.PENDING, RemoteState.RUNNING)


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """What a backend says of one job: its state, and how it ended if it did."""

    state: RemoteState
    started_at: datetime | None = None
    outcome: Outcome | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Dispatched:
    """The result of handing a job to a site."""

    backend_ref: str
    gpu_indices: tuple[int, ...] = ()
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class JobLogs:
    """A job's captured output (may be partial while it runs)."""

    stdout: str
    stderr: str
