# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
"""The simulator's carbon sources: what placement's forecasts are made from.

:class:`PerfectForecast` is a :class:`~accord.ports.CarbonSource` answering with the actual
intensity series it was given (an upper bound on what forecasting can do);
:class:`HistoryForecast` answers with ``carbon.forecast_from_history``, the same-time-of-day
mean of the days before, made only from data that had ended by then; ``profile`` forecasts are
the zone's built-in typical value for each month and hour
(:class:`~accord.adapters.carbon.profiles.ProfileSource`), what a broker with no forecast feed
at all would plan with. The broker's own context
builder (:func:`accord.service.placement_context.build_context`) turns either into
placement's forecasts, in the simulator exactly as in a live pass. Both engines ask them
(:func:`forecast_source`); nothing here does I/O (the runner reads the profiles and hands them in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import Forecast, forecast_from_history
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.ports import CarbonSource
from accord.sim.jit import INLINE, LEAN, kernel


def forecast_source(kind: Forecast, series: Mapping[str, IntensitySeries], min_s: int,
                    profiles: CarbonSource | None = None) -> CarbonSource:
    """The carbon source placement's forecasts come from in a simulation (``profiles``: the
    built-in profiles, which the profile forecast is).

    Raises:
        InvalidInput: the profile forecast without ``profiles``.
    """
    if kind is Forecast.HISTORY_7D:
        return HistoryForecast(series, 7)
    if kind is Forecast.PROFILE:
        if profiles is None:
            raise InvalidInput([Problem("forecast", "needs the built-in profiles", kind.value,
                                        "Settings(profiles=ProfileSource())")])
        return profiles
    return PerfectForecast(series, min_s)


class PerfectForecast:
    """Forecasts that are the actual intensity: for a span, the part of the zone's series
    that covers it (at least ``min_s`` seconds of it)."""

    def __init__(self, series: Mapping[str, IntensitySeries], min_s: int = 3600) -> None:
        self.series = dict(series)
        self.min_s = min_s

    def series_arrays(self, zones: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                           NDArray[np.float64], int]:
        """For :func:`forecast_window`: per zone (has a series, start epoch s, step, offset
        and count of its values in the flat arrays), the offsets of every series' starts and
        end (each series' own ``_secs``, one after another), its values (and a 0 for its
        end), and the least spacing of any series' starts (s). Raises nothing."""
        info, secs, vals = np.zeros((len(zones), 5)), [np.zeros(0)], [np.zeros(0)]
        at, least = 0, 86_400
        for i, z in enumerate(zones):
            s = self.series.get(z)
            if s is not None:
                gaps = np.diff(np.array(s._secs))
                info[i] = (1.0, s.start.timestamp(), s.step_s, at, len(s.values))
                secs.append(np.array(s._secs))
                vals.append(np.append(np.array(s.values), 0.0))
                at += len(s._secs)
                least = min(least, max(1, int(gaps.min())))
        return info, np.concatenate(secs), np.concatenate(vals), least

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The zone's actual intensity over the part of [start, end) it covers.

        Raises:
            Unavailable: no series for the zone, or it covers less than ``min_s`` of the span.
        """
        s = self.series.get(zone)
        if s is None:
            raise Unavailable(f"the simulation has no intensity data for zone {zone}")
        lo, hi = max(start, s.start), min(end, s.end)
        if (hi - lo).total_seconds() < self.min_s:
            raise Unavailable(f"the intensity data for {zone} ({s.start.isoformat()} to "
                              f"{s.end.isoformat()}) does not cover {start.isoformat()} to {end.isoformat()}")
        return s.slice(lo, hi)


class HistoryForecast:
    """Forecasts made as a forecaster without a model would: each slot the mean of the same
    time of day on the ``days`` days before (``carbon.forecast_from_history``), from the
    zone's actual series up to the moment of the forecast."""

    def __init__(self, series: Mapping[str, IntensitySeries], days: int = 7) -> None:
        self.series = dict(series)
        self.days = days

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The forecast made at ``start`` for [start, end).

        Raises:
            Unavailable: no series for the zone, or it has less than ``days`` days (and the
                forecast's span) of history before ``start``.
        """
        s = self.series.get(zone)
        if s is None:
            raise Unavailable(f"the simulation has no intensity data for zone {zone}")
        try:
            return forecast_from_history(s, start, int((end - start).total_seconds()), self.days)
        except InvalidInput as exc:
            raise Unavailable(f"no {self.days}-day history forecast for {zone} at {start.isoformat()}: "
                              f"{exc}") from exc


@kernel(LEAN)
def forecast_window(z, origin, slot, horizon, min_s, info, secs, vals, scratch, fz, fv, fp):
    """Zone ``z``'s forecast for [``origin``, + ``horizon``) (epoch s) as the broker's
    context builder makes it from a :class:`PerfectForecast` (``ZoneForecast.of`` of
    :meth:`~PerfectForecast.intensity`'s slice: the slice's running integrals,
    ``resample``'s exact means, the forecast's running integrals), in the same float
    operations, without building any series; into row ``z`` of ``fz`` (has, origin, slots,
    mean), ``fv`` (values) and ``fp`` (running integrals). A test compares the two.
    Raises nothing."""
    fz[z, 0] = 0.0
    if info[z, 0] != 1.0:
        return
    t0, step, at, n = info[z, 1], info[z, 2], int(info[z, 3]), int(info[z, 4])
    lo, hi = max(origin, t0), min(origin + horizon, t0 + secs[at + n])
    if hi - lo < min_s:
        return
    i0 = _bisect(secs, at, at + n + 1, lo - t0) - 1
    i1 = _bisect(secs, at, at + n + 1, hi - t0 - 1e-6) - 1
    if secs[at + i1] + step < hi - t0:
        i1 += 1
    m = min(i1 + 1, n) - i0
    sub, cum = scratch[0], scratch[1]
    base = secs[at + i0]
    cum[0] = 0.0
    for k in range(m):
        sub[k] = secs[at + i0 + k] - base
    sub[m] = secs[at + i0 + m - 1] - base + step
    for k in range(m):
        cum[k + 1] = cum[k] + vals[at + i0 + k] * (sub[k + 1] - sub[k])
    start = t0 + base
    first = math.ceil(start / slot) * slot - start
    count = int((sub[m] - first) // slot)
    if count < 1:
        return
    fp[z, 0] = 0.0
    before = _anti_at(first, sub, cum, vals, at + i0, m)
    for k in range(count):
        after = _anti_at(first + (k + 1) * slot, sub, cum, vals, at + i0, m)
        fv[z, k] = (after - before) / slot
        fp[z, k + 1] = fp[z, k] + fv[z, k] * slot
        before = after
    fz[z, 0], fz[z, 1], fz[z, 2], fz[z, 3] = 1.0, start + first, count, fp[z, count] / (count * slot)


@kernel(INLINE)
def _anti_at(x, sub, cum, vals, v0, m):
    """The slice's antiderivative at ``x`` (``IntensitySeries._antiderivative``)."""
    i = min(_bisect(sub, 0, m + 1, x) - 1, m - 1)
    return cum[i] + vals[v0 + i] * (x - sub[i])


@kernel(INLINE)
def _bisect(a, lo, hi, x):
    """``bisect_right(a[lo:hi], x)``."""
    start = lo
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - start
