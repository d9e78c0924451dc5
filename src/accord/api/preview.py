"""The job preview: where and when a job would run, what it would cost in normalised
units, its estimated energy and emissions, and what the rules would do with it."""

from __future__ import annotations

from typing import Any

from accord.domain.access.review import Action
from accord.domain.carbon.energy import DEFAULT_HOST_SHARE, job_energy_kwh
from accord.domain.jobs.model import Job
from accord.domain.placement.records import Verdict
from accord.service.broker import ACTIVE, Broker, every_job
from accord.service.gate import Gate


def preview_doc(broker: Broker, gate: Gate, job: Job, notes: list[str]) -> dict[str, Any]:
    """The preview of ``job`` (not stored) as a JSON-ready document."""
    fed = broker.federation
    d = broker.preview(job.spec)
    doc: dict[str, Any] = {"verdict": d.verdict.value, "explanation": d.explain(), "rules": notes,
                           "site": None, "pool": None, "agreement": None, "start": None,
                           "cost_units": 0.0, "reference_unit": fed.reference_unit,
                           "energy_kwh": None, "emissions_kg": None, "gate": None}
    c = d.chosen
    if c is None or d.verdict not in (Verdict.PLACE, Verdict.DEFER):
        return doc
    site = fed.site(c.site)
    pool = next(x for x in site.pools if x.id == c.pool)
    start = d.start or broker.clock.now()
    cost = gate.units(job.spec, c.site, c.pool, start) if c.agreement else 0.0
    kwh = job_energy_kwh(job.spec.gpus, pool.power_w, job.spec.time_limit_s, site.pue, DEFAULT_HOST_SHARE)
    review = gate.review(job, c, start, gate.committed(every_job(broker.store, ACTIVE, story=False), start))
    doc.update(site=c.site, pool=c.pool, agreement=c.agreement, start=start.isoformat(),
               cost_units=round(cost, 4), energy_kwh=round(kwh, 3),
               emissions_kg=None if c.emissions_g is None else round(c.emissions_g / 1000, 3),
               gate={"action": review.action.value, "note": review.note, "facts": dict(review.data),
                     "would_run": review.action in (Action.GO, Action.WARN, Action.LOWER)})
    return doc
