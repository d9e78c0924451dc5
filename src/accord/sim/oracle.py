"""The emissions oracle: a lower bound on any policy's emissions for a workload.

Perfect knowledge, capacity relaxed: every job runs for its actual run time wherever it
may ever run (its shape fits and, abroad, an agreement covers it: ``placement.allowed_pools``;
quota left aside), starting at any moment of the longest window any of those places
allows it (``placement.flexibility_s`` from its submit time, plus one dispatcher pass),
with no queue. Its emissions there are the energy arithmetic of ``accord.domain.carbon.energy``
(kW per GPU × GPUs × ∫ actual intensity / 3600) at the best such place and moment.

The best moment is exact, not sampled: ∫ over [t, t + run) of a step function is piecewise
linear in t, with corners where t or t + run meets a step boundary, so its minimum over a
window is at the window's ends or at such a corner. Every policy's job starts in that
window unless a queue held it past its window, so the oracle is at most every policy's
emissions whenever no job waited past its window (always, with capacity to spare).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from accord.domain.carbon.energy import DEFAULT_HOST_SHARE
from accord.domain.carbon.series import IntensitySeries, resample
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.place import allowed_pools, flexibility_s, pool_keys
from accord.sim.model import Floats, Workload

CHUNK = 20_000   # jobs scored at once (bounds memory: CHUNK × corners floats per zone)


class _Zone:
    """A zone's actual intensity as a regular grid with its running integral."""

    def __init__(self, s: IntensitySeries) -> None:
        r = s if s.regular else resample(s, s.step_s)
        self.origin = r.start.timestamp()
        self.step = float(r.step_s)
        self.values = np.array(r.values, np.float64)
        self.cum = np.concatenate([[0.0], np.cumsum(self.values) * self.step])
        self.bounds = self.origin + self.step * np.arange(len(self.values) + 1, dtype=np.float64)
        self.end = float(self.bounds[-1])

    def antiderivative(self, x: Floats) -> Floats:
        """∫ intensity from the origin to ``x`` (clamped to the data): the running integral
        is linear between boundaries, so this is an interpolation."""
        out: Floats = np.interp(x, self.bounds, self.cum)
        return out

    def best(self, a: Floats, b: Floats, run: Floats) -> Floats:
        """Per job, the least ∫ intensity over [t, t + run) for t in [a, b] ((g/kWh)·s);
        NaN where the data do not cover the whole span."""
        n = len(self.values)
        corners = int(np.max((b - a) / self.step, initial=0.0)) + 2
        k = np.arange(corners)
        lo, hi, r = a[:, None], b[:, None], run[:, None]
        i = np.clip(np.floor((a - self.origin) / self.step).astype(np.int64)[:, None] + 1 + k, 0, n)
        t = self.bounds[i]                                   # starts on a boundary
        f_start = np.where((t >= lo) & (t <= hi), self.antiderivative(t + r) - self.cum[i], math.inf)
        j = np.clip(np.floor((a + run - self.origin) / self.step).astype(np.int64)[:, None] + 1 + k, 0, n)
        t = self.bounds[j] - r                               # ends on a boundary
        f_end = np.where((t >= lo) & (t <= hi), self.cum[j] - self.antiderivative(t), math.inf)
        f_a = self.antiderivative(a + run) - self.antiderivative(a)
        f_b = self.antiderivative(b + run) - self.antiderivative(b)
        low: Floats = np.minimum(np.minimum(f_a, f_b), np.minimum(f_start.min(axis=1), f_end.min(axis=1)))
        covered = (a >= self.origin) & (b + run <= self.end)
        return np.where(covered, low, math.nan)


def oracle_emissions(federation: Federation, work: Workload, carbon: Mapping[str, IntensitySeries],
                     slack_s: float = 0.0) -> Floats:
    """Per job, the least emissions (g) it could have had (see the module's docstring);
    NaN when no place it may run has intensity data covering its window. ``slack_s`` widens
    every window (the simulator passes its dispatcher pass interval)."""
    keys = pool_keys(federation)
    sites = {s.id: s for s in federation.sites}
    zones = sorted({sites[k[0]].grid_zone for k in keys if sites[k[0]].grid_zone in carbon})
    kw = np.array([sites[k[0]].pool(k[1]).power_w * (1 + DEFAULT_HOST_SHARE) * sites[k[0]].pue / 1000
                   for k in keys], np.float64)
    zone_of = np.array([zones.index(sites[k[0]].grid_zone) if sites[k[0]].grid_zone in zones else -1
                        for k in keys])
    kw_min, window = _classes(federation, work, kw, zone_of, len(zones))
    best = np.full(len(work), math.inf)
    grids = {z: _Zone(carbon[z]) for z in zones}
    for lo in range(0, len(work), CHUNK):
        sl = slice(lo, lo + CHUNK)
        a = work.submit_s[sl]
        b = a + window[sl] + slack_s
        run = work.runtime_s[sl]
        for zi, z in enumerate(zones):
            per_gpu = kw_min[sl, zi]
            if not np.isfinite(per_gpu).any():
                continue
            low = grids[z].best(a, b, run)
            grams = per_gpu * work.gpus[sl] * low / 3600
            best[sl] = np.fmin(best[sl], np.where(np.isfinite(grams), grams, math.inf))
    return np.where(np.isfinite(best), best, math.nan)


def _classes(federation: Federation, work: Workload, kw: Floats, zone_of: np.ndarray,
             zones: int) -> tuple[Floats, Floats]:
    """Per job: the least kW per GPU among the pools it may use in each zone (inf: none),
    and its window (s). Jobs of one home partner, size and run length share the answer."""
    kw_min = np.full((len(work), zones), math.inf)
    window = np.zeros(len(work))
    memo: dict[tuple[int, int, int], tuple[Floats, float]] = {}
    submit, gpus, req, home = (work.submit_s.tolist(), work.gpus.tolist(), work.requested_s.tolist(),
                               work.home.tolist())
    for j in range(len(work)):
        day = int(submit[j] // 86_400)
        key = (home[j], gpus[j], day)   # without a deadline, the window does not depend on the run
        hit = memo.get(key)
        if hit is None:
            at = datetime.fromtimestamp(submit[j], UTC)
            spec = JobSpec("oracle", gpus[j], int(req[j]), partner=work.partners[home[j]], theme=work.theme,
                           sector=work.sector)
            ok = np.array(allowed_pools(spec, federation, at), np.bool_) & (zone_of >= 0)
            row = np.full(zones, math.inf)
            for k in np.flatnonzero(ok).tolist():
                row[zone_of[k]] = min(row[zone_of[k]], kw[k])
            flex = flexibility_s(spec, federation, at)   # no deadline: the agreements' flexibility
            w = work.window_s if work.window_s is not None else max(
                (flex[k] for k in np.flatnonzero(ok).tolist()), default=0.0)
            hit = memo[key] = (row, float(w))
        kw_min[j], window[j] = hit
    return kw_min, window
