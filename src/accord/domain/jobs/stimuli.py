"""What drives the job lifecycle machine (:mod:`accord.domain.jobs.machine`): the stimuli it
takes, the instructions it gives, and the step it returns.

A stimulus is something that happened to a job (or a pass of the broker looking at it), with
an id that every event it causes records, so a job's story says which stimulus caused each
transition. An instruction is something the driver must do; doing it gives the next stimulus.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from accord.domain.access.review import Review
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Event, Job
from accord.domain.jobs.site import RemoteStatus
from accord.domain.placement.records import Decision

REPLAN_S = 600   # how often placement looks again at a job it deferred


# ------------------------------------------------------------------ stimuli
@dataclass(frozen=True, slots=True)
class Stimulus:
    """Something that happened, with its id (recorded by every event it causes) and time."""

    id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Timer(Stimulus):
    """A pass of the broker looks at the job: what is due now?"""


@dataclass(frozen=True, slots=True)
class PlacementDecided(Stimulus):
    """Placement's decision for a job waiting to be placed; ``sites_down``: some site did not
    answer this pass (a job that must wait may be placed when it does)."""

    decision: Decision
    sites_down: bool = False


@dataclass(frozen=True, slots=True)
class PlacementReviewed(Stimulus):
    """The rules' verdict (compliance, allocations) on placing the job as ``decision`` says."""

    decision: Decision
    review: Review


@dataclass(frozen=True, slots=True)
class Reconsidered(Stimulus):
    """Placement's fresh decision for a job it deferred (forecasts and queues changed)."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class DispatchConfirmed(Stimulus):
    """The site has the job: it took it now, or a look-up found it (``adopted``)."""

    backend_ref: str
    gpu_indices: tuple[int, ...] = ()
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class DispatchRefused(Stimulus):
    """The site said no for now (no capacity): it does not have the job."""

    reason: str


@dataclass(frozen=True, slots=True)
class DispatchInDoubt(Stimulus):
    """The site did not say whether it took the job (a time-out, a lost answer)."""

    reason: str


@dataclass(frozen=True, slots=True)
class NotAtSite(Stimulus):
    """A look-up found no trace of the job at its site: no dispatch reached it."""


@dataclass(frozen=True, slots=True)
class SiteUnavailable(Stimulus):
    """The site could not be reached to hand the job over (it does not have it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SiteDown(Stimulus):
    """The job's site stopped answering polls."""

    site: str
    reason: str


@dataclass(frozen=True, slots=True)
class SiteUp(Stimulus):
    """The job's site answers again."""

    site: str


@dataclass(frozen=True, slots=True)
class SiteReported(Stimulus):
    """What the job's site says of it: running, or ended with its accounting."""

    status: RemoteStatus


@dataclass(frozen=True, slots=True)
class CancelRequested(Stimulus):
    """Someone asked to cancel the job."""

    reason: str


@dataclass(frozen=True, slots=True)
class ComplianceDecided(Stimulus):
    """A site operator decided a held run (the decision itself is stored by access)."""

    approved: bool
    by: str
    site: str
    reason: str


@dataclass(frozen=True, slots=True)
class AllocationApproved(Stimulus):
    """An allocation of the job's project was approved."""

    allocation: str
    project: str
    units: float
    agreement: str


@dataclass(frozen=True, slots=True)
class InternalError(Stimulus):
    """Driving the job failed unexpectedly; the next pass tries again."""

    text: str


# ------------------------------------------------------------------ instructions
@dataclass(frozen=True, slots=True)
class Instruction:
    """Something the driver must do for the job ``job_id``."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Place(Instruction):
    """Ask placement for a decision (with this pass's loads and forecasts): PlacementDecided."""


@dataclass(frozen=True, slots=True)
class ReviewPlacement(Instruction):
    """Gather the rules' facts for running the job at ``candidate``: PlacementReviewed."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class Reconsider(Instruction):
    """Ask placement again for a job it deferred: Reconsidered."""


@dataclass(frozen=True, slots=True)
class Dispatch(Instruction):
    """Hand the job to ``site`` (pool ``pool``); its record of sending is already stored."""

    site: str
    pool: str


@dataclass(frozen=True, slots=True)
class LookUp(Instruction):
    """Ask ``site`` whether it has the job: DispatchConfirmed (adopted) or NotAtSite."""

    site: str


@dataclass(frozen=True, slots=True)
class Cancel(Instruction):
    """Ask ``site`` to stop the job ``ref`` (before the request is recorded: a site that
    cannot be reached leaves the job as it was)."""

    site: str
    ref: str


@dataclass(frozen=True, slots=True)
class RecordUsage(Instruction):
    """Record the ended job's usage (and its footprint) before the job itself is stored."""


@dataclass(frozen=True, slots=True)
class Notify(Instruction):
    """Tell the people concerned: the job ended, or is held for a person."""

    what: str
    text: str


@dataclass(frozen=True, slots=True)
class Step:
    """What a stimulus did: the job after it, the events added to its story, what to do, and
    (for a person's request the job's state refuses) why nothing was done."""

    job: Job
    events: tuple[Event, ...] = ()
    instructions: tuple[Instruction, ...] = ()
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """What the machine needs besides the job: the federation (placement windows) and whether
    placements abroad are reviewed (compliance, allocations)."""

    federation: Federation
    reviews: bool = True
    replan_s: int = REPLAN_S

    @property
    def slot(self) -> timedelta:
        """Placement's start-time grid."""
        return timedelta(seconds=self.federation.placement.slot_s)


