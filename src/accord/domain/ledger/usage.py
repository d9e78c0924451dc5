"""Usage records: what a finished job really consumed, entered once.

A record's id is ``<site>:<backend ref>``, so reading the same accounting data
twice yields the same id and the store keeps one record. GPU counts are what
the site *allocated* (Slurm's AllocTRES), not what was requested.

Period rule: a job that runs across a UTC month boundary is attributed to each
month in proportion to the time it ran in it (:func:`split_by_month`); the
shares add up to the record's GPU-seconds exactly.

A record also carries the job's energy and emissions, worked out once when the job
ends (:mod:`accord.domain.carbon.footprint`, ``docs/design/carbon-accounting.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One finished job's consumption at one site.

    ``energy_j`` is the scheduler's measured energy (Slurm ``ConsumedEnergyRaw``) when
    reported. ``energy_kwh`` (facility energy, PUE included), ``emissions_g`` (gCO2eq
    over the actual run) and ``intensity_source`` (which data gave the emissions, or
    ``"unavailable: <reason>"`` when none could) are set when the job ends; None on
    records made before that, and ``emissions_g`` is None when no intensity was had.
    ``account`` and ``local_user`` name the Slurm account and the site's local user the job
    ran as, where the site enforces the agreement (taken from the host-signed usage).
    """

    id: str
    job_id: str
    site: str
    pool: str
    gpu_model: str
    host_partner: str
    requester_partner: str | None
    agreement: str | None
    project: str
    start: datetime
    end: datetime
    gpus: int
    gpu_seconds: float
    state: str
    exit_code: int | None
    energy_j: float | None = None
    energy_kwh: float | None = None
    emissions_g: float | None = None
    intensity_source: str | None = None
    attestation: str | None = None   # SHA-256 of the usage the host signed (agent sites)
    account: str | None = None       # site enforcement: the Slurm account the job ran under
    local_user: str | None = None    # ... and the local user it ran as (both host-signed)


@dataclass(frozen=True, slots=True)
class MonthShare:
    """The part of a record that falls in one UTC month (``period`` is ``YYYY-MM``)."""

    period: str
    seconds: float
    gpu_seconds: float


def usage_from_job(job: Job, federation: Federation) -> UsageRecord | None:
    """The usage record of a finished job, or None if it never ran (no start or end).

    Raises:
        InvalidInput: the job is not placed or not finished.
    """
    if job.placement is None or job.backend_ref is None or not job.state.is_final:
        raise InvalidInput([Problem("job", "only a finished, dispatched job has usage", job.id)])
    o = job.outcome
    if o is None or o.started_at is None or o.ended_at is None:
        return None
    site = federation.site(job.placement.site)
    pool = site.pool(job.placement.pool)
    return UsageRecord(
        id=f"{site.id}:{job.backend_ref}",
        job_id=job.id,
        site=site.id,
        pool=pool.id,
        gpu_model=pool.gpu_model,
        host_partner=site.partner,
        requester_partner=job.spec.partner,
        agreement=job.placement.agreement,
        project=job.spec.project,
        start=o.started_at,
        end=o.ended_at,
        gpus=o.gpus or job.spec.gpus,
        gpu_seconds=o.gpu_seconds,
        state=job.state.value,
        exit_code=o.exit_code,
        energy_j=o.energy_j,
        attestation=o.attestation,
        account=o.account or None,
        local_user=o.local_user or None,
    )


def split_by_month(record: UsageRecord) -> tuple[MonthShare, ...]:
    """Attribute a record to UTC months in proportion to run time.

    >>> from datetime import datetime, UTC
    >>> r = UsageRecord("s:1", "j", "s", "p", "H100", "uk", None, None, "p",
    ...     datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC),
    ...     2, 14400.0, "completed", 0)
    >>> [(m.period, m.gpu_seconds) for m in split_by_month(r)]
    [('2026-10', 7200.0), ('2026-11', 7200.0)]
    """
    start, end = record.start.astimezone(UTC), record.end.astimezone(UTC)
    total = (end - start).total_seconds()
    if total <= 0:
        return (MonthShare(start.strftime("%Y-%m"), 0.0, record.gpu_seconds),)
    shares: list[MonthShare] = []
    cursor = start
    while cursor < end:
        boundary = _next_month(cursor)
        piece_end = min(boundary, end)
        seconds = (piece_end - cursor).total_seconds()
        shares.append(MonthShare(cursor.strftime("%Y-%m"), seconds,
                                 record.gpu_seconds * seconds / total))
        cursor = piece_end
    return _adding_up(shares, record.gpu_seconds)


def _adding_up(shares: list[MonthShare], whole: float) -> tuple[MonthShare, ...]:
    """The shares with each running total moved to the nearest whole number of ulps of
    ``whole`` (the last running total is ``whole`` itself). Every such number up to
    ``whole`` is a float, so each running total, and so the sum of the shares, is exact
    (correcting only the last share by the drift can miss ``whole`` by an ulp); no share
    is negative, and each moves by a few ulps of ``whole`` at most."""
    quantum = math.ulp(whole)
    out: list[MonthShare] = []
    done = running = 0.0
    for i, s in enumerate(shares):
        running += s.gpu_seconds
        upto = whole if i == len(shares) - 1 else min(whole, round(running / quantum) * quantum)
        out.append(MonthShare(s.period, s.seconds, upto - done))
        done = upto
    return tuple(out)


def _next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1, tzinfo=UTC)
    return datetime(t.year, t.month + 1, 1, tzinfo=UTC)
