"""Accounting in the simulator, with the broker's code: energy and emissions per job, and
the reciprocity ledger's entries for cross-border use (quota used, balances).

Energy is ``carbon.job_energy_kwh``'s formula (GPUs × power × (1 + host share) × run ×
PUE) and emissions ``carbon.job_emissions_g``'s (energy × mean intensity over the actual run
in the site's zone): the figures ``footprint.with_footprint`` puts on a usage record,
computed for every job at once once the run is over. A cross-border job's usage record goes
through ``ledger.usage_entries``, the function that posts the live ledger's entries (one
per UTC month, priced at the exchange rate in force at its start), and the simulated
ledger adds their units to the quota used and the agreements' balances.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.energy import DEFAULT_HOST_SHARE, jobs_energy_kwh
from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation, GpuPool, Site
from accord.domain.ledger.entries import usage_entries
from accord.domain.ledger.usage import UsageRecord


class Accounts:
    """Energy and emissions of the jobs of a run, per pool (in ``keys`` order)."""

    def __init__(self, federation: Federation, keys: tuple[tuple[str, str], ...],
                 carbon: Mapping[str, IntensitySeries]) -> None:
        sites = {s.id: s for s in federation.sites}
        self.sites = [sites[k[0]] for k in keys]
        self.power = [sites[k[0]].pool(k[1]).power_w for k in keys]
        self.series = [carbon.get(sites[k[0]].grid_zone) for k in keys]

    def record_all(self, pool: NDArray[np.int64], gpus: NDArray[np.int64], start: NDArray[np.float64],
                   end: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(energy, emissions) of every job at once, the figures ``footprint.with_footprint``
        puts on a usage record by the vector forms of its arithmetic
        (``carbon.jobs_energy_kwh``, ``IntensitySeries.means``; a run of no length counts one
        second); NaN for a job that never ran (``pool`` -1 or no end) or whose run the
        zone's data does not cover."""
        ran = (pool >= 0) & ~np.isnan(end)
        energy, emissions = np.full(len(pool), np.nan), np.full(len(pool), np.nan)
        k = pool[ran]
        power = np.array(self.power, np.float64)[k]
        pue = np.array([s.pue for s in self.sites], np.float64)[k]
        a, b = start[ran], end[ran]
        kwh = jobs_energy_kwh(gpus[ran].astype(np.float64), power, b - a, pue, DEFAULT_HOST_SHARE)
        energy[ran] = kwh
        grams = np.full(len(kwh), np.nan)
        zone = np.array([next(i for i, t in enumerate(self.series) if t is s) for s in self.series])[k]
        for z in np.unique(zone).tolist():
            s = self.series[z]
            mine = zone == z
            if s is not None:
                x, y = a[mine], b[mine]
                grams[mine] = kwh[mine] * s.means(x, np.where(y > x, y, x + 1))
        emissions[ran] = grams
        return energy, emissions


class SimLedger:
    """The simulated reciprocity ledger: units used per (agreement, requester, host) and UTC
    month, and each agreement's net balance per partner (provided − used).

    Finished cross-border jobs are kept in the order they ended and posted in sweeps,
    before a placement context is built (:meth:`flush`), as the broker's ledger service
    posts the usage its last pass read. A sweep posts one usage record per (agreement,
    requester, site, pool, UTC month) for the jobs that ran within one month, through
    ``ledger.usage_entries``, and one per job for the others; units are therefore rounded
    to 1e-6 once per record rather than once per job (a difference of at most 5e-7 units
    a job)."""

    def __init__(self, federation: Federation) -> None:
        self.fed = federation
        self.used: dict[tuple[str, str, str], dict[str, Decimal]] = {}
        self.net: dict[str, dict[str, float]] = {a.id: {} for a in federation.agreements}
        # (end, agreement, requester, host, units) of every cross-border job
        self.history: list[tuple[float, str, str, str, float]] = []
        self.ended: deque[tuple[float, float, str, str, int, float, int]] = deque()   # (read, end, ...)
        self.sites: dict[int, tuple[Site, GpuPool]] = {}
        self.rates: dict[tuple[str, int], float] = {}
        self.months: dict[int, str] = {}   # UTC day number -> its month, "YYYY-MM"
        self.count = 0

    def post(self, agreement: str, requester: str, pool: int, site: Site, gpu_pool: GpuPool, gpus: int,
             start: float, end: float, read: float | None = None) -> None:
        """Note a cross-border job that ended at ``end`` and whose usage was read at ``read``
        (default: ``end``; no earlier than those noted before); it is entered by the first
        :meth:`flush` up to ``read`` or later."""
        self.sites[pool] = (site, gpu_pool)
        self.ended.append((end if read is None else read, end, agreement, requester, pool, start, gpus))
        day = int(start // 86_400)
        rate = self.rates.get((gpu_pool.gpu_model, day))
        if rate is None:
            a = datetime.fromtimestamp(start, UTC)
            rate = self.fed.rate(gpu_pool.gpu_model, a).units_per_gpu_hour
            self.rates[(gpu_pool.gpu_model, day)] = rate
        self.history.append((end, agreement, requester, site.partner, gpus * (end - start) / 3600 * rate))

    def flush(self, upto: float) -> None:
        """Enter the jobs noted whose usage was read at or before ``upto`` (see the class
        docstring)."""
        ended, batch = self.ended, dict[tuple[str, str, int, str], list[float]]()
        while ended and ended[0][0] <= upto:
            _, end, agreement, requester, pool, start, gpus = ended.popleft()
            site, gpu_pool = self.sites[pool]
            month = self._month(start)
            if self._month(end) != month:
                self._enter(agreement, requester, site, gpu_pool, gpus, start, end)
                continue
            row = batch.setdefault((agreement, requester, pool, month), [math.inf, -math.inf, 0.0])
            row[0], row[1], row[2] = min(row[0], start), max(row[1], end), row[2] + gpus * (end - start)
        for (agreement, requester, pool, _), (start, end, gpu_seconds) in batch.items():
            site, gpu_pool = self.sites[pool]
            self._enter(agreement, requester, site, gpu_pool, 0, start, end, gpu_seconds)

    def _month(self, t: float) -> str:
        """``datetime.fromtimestamp(t, UTC).strftime("%Y-%m")``, remembered per UTC day (not
        in a day's last second, where rounding to the microsecond may reach the next day)."""
        day, into = divmod(t, 86_400)
        month = self.months.get(int(day)) if into < 86_399 else None
        if month is None:
            month = datetime.fromtimestamp(t, UTC).strftime("%Y-%m")
            if into < 86_399:
                self.months[int(day)] = month
        return month

    def _enter(self, agreement: str, requester: str, site: Site, gpu_pool: GpuPool, gpus: int, start: float,
               end: float, gpu_seconds: float | None = None) -> None:
        self.count += 1
        a, b = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        record = UsageRecord(f"{site.id}:{self.count}", str(self.count), site.id, gpu_pool.id,
                             gpu_pool.gpu_model, site.partner, requester, agreement, "sim", a, b, gpus,
                             gpus * (end - start) if gpu_seconds is None else gpu_seconds, "completed", 0)
        units = 0.0
        for e in usage_entries(record, self.fed, b):
            months = self.used.setdefault((agreement, requester, site.partner), {})
            months[e.period] = months.get(e.period, Decimal(0)) + e.units
            units += float(e.units)
        net = self.net[agreement]
        net[site.partner] = net.get(site.partner, 0.0) + units
        net[requester] = net.get(requester, 0.0) - units

    def quota_used(self, agreement: str, requester: str, host: str, period: str) -> Decimal:
        """Units used in ``period`` (``YYYY-MM``, ``YYYY`` or ``START/END``), as the
        broker's ``quota_used`` callable answers."""
        months = self.used.get((agreement, requester, host), {})
        if "/" in period:
            return sum(months.values(), Decimal(0))
        return sum((v for m, v in months.items() if m.startswith(period)), Decimal(0))

    def balance(self, agreement: str) -> dict[str, Decimal]:
        """The agreement's net units per partner so far, as the broker's ``balance``
        callable answers."""
        return {p: Decimal(repr(v)) for p, v in self.net.get(agreement, {}).items()}


