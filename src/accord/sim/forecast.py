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

from collections.abc import Mapping
from datetime import datetime

from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import Forecast, forecast_from_history
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.ports import CarbonSource


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
