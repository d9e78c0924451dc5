"""API routes for jobs' energy and emissions, and their totals.

* ``GET /api/v1/jobs/{id}/footprint``: the job's usage record with its energy and
  emissions (``recorded: false`` and null figures until it has ended; a job that never
  started has none).
* ``GET /api/v1/emissions?group=...&period=YYYY-MM``: per project, site, host or
  requester partner, or agreement, the jobs, GPU-hours, energy (kWh) and emissions (kg)
  of usage records, with how many lack a figure. A record counts in the month its run
  **started** (UTC); the ledger instead splits a run across months by time. Only the records
  the caller may count are summed (see :func:`accord.domain.access.rules.sees_usage`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from accord.api.common import Caller, Svc, job_for
from accord.domain.access.rules import TokenScope, sees_usage, token_scope
from accord.domain.carbon.footprint import GroupBy, parse_group, totals
from accord.domain.jobs import codec
from accord.domain.ledger.entries import next_period, parse_period
from accord.domain.ledger.usage import UsageRecord
from accord.ports import JobStore

GROUPS = "|".join(["partner", *(g.value for g in GroupBy)])

router = APIRouter(tags=["emissions"])


@router.get("/api/v1/jobs/{job_id}/footprint")
def job_footprint(job_id: str, s: Svc, p: Caller) -> dict[str, Any]:
    job = job_for(s, p, job_id)
    records = s.broker.store.usage(job_id=job_id)
    doc: dict[str, Any] = {"job_id": job.id, "state": job.state.value,
                           "recorded": bool(records)}
    if records:
        return {**doc, **codec.encode_usage(records[-1])}
    why = "has not ended yet" if not job.state.is_final else "never ran, so used nothing"
    return {**doc, "reason": f"job {job.id} {why}", "energy_kwh": None, "emissions_g": None,
            "emissions_kg": None, "intensity_source": None}


@router.get("/api/v1/emissions")
def emissions(
    s: Svc, p: Caller,
    group: Annotated[str, Query(pattern=f"^({GROUPS})$")] = "project",
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$",
                                        description="YYYY-MM: runs started that month (UTC)")
                      ] = None,
) -> dict[str, Any]:
    if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
        refusal.require()   # the totals are of jobs' footprints
    by = parse_group(group)
    visible = [r for r in _records(s.broker.store, period)
               if sees_usage(p, project=r.project, site=r.site, requester=r.requester_partner,
                             host=r.host_partner)]
    rows = totals(visible, by)
    return {
        "group": by.value, "period": period,
        "period_rule": "a job counts in the UTC month its run started",
        "totals": [{"key": t.key, "jobs": t.jobs, "gpu_hours": t.gpu_hours,
                    "energy_kwh": t.energy_kwh, "emissions_kg": t.emissions_kg,
                    "energy_unknown": t.energy_unknown,
                    "emissions_unknown": t.emissions_unknown} for t in rows],
        "total": {"jobs": sum(t.jobs for t in rows),
                  "gpu_hours": sum(t.gpu_hours for t in rows),
                  "energy_kwh": sum(t.energy_kwh for t in rows),
                  "emissions_kg": sum(t.emissions_kg for t in rows),
                  "energy_unknown": sum(t.energy_unknown for t in rows),
                  "emissions_unknown": sum(t.emissions_unknown for t in rows)},
    }


def _records(store: JobStore, period: str | None) -> list[UsageRecord]:
    """Every usage record, or those whose run started in ``period`` (UTC)."""
    if period is None:
        return store.usage()
    month = parse_period(period)
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = datetime.strptime(next_period(month), "%Y-%m").replace(tzinfo=UTC)
    return store.usage_started(start, end)
