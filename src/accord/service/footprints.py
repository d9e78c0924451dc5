"""A finished job's energy and emissions, worked out once when it ends
(``docs/design/carbon-accounting.md``)."""

from __future__ import annotations

import logging

from accord.domain.carbon.footprint import run_span, with_footprint
from accord.domain.federation.model import Federation
from accord.domain.ledger.usage import UsageRecord
from accord.ports import CarbonSource

log = logging.getLogger("accord.broker")


def footprint_of(record: UsageRecord, federation: Federation, carbon: CarbonSource | None) -> UsageRecord:
    """``record`` with its energy and emissions over its actual run, from the site's grid
    intensity; when no intensity can be had, its energy with the emissions unknown and why
    (carbon data must never fail or hold back a job's end)."""
    site, why = federation.site(record.site), "the broker has no carbon source"
    try:
        series = carbon.intensity(site.grid_zone, *run_span(record)) if carbon is not None else None
    except Exception as exc:
        series, why = None, str(exc) or type(exc).__name__
        log.warning("job %s: emissions unknown: %r", record.job_id, exc)
    return with_footprint(record, site, series, why)
