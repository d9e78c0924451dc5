"""Carbon intensity series: the step function of a grid's intensity and its integrals (pure).

``IntensitySeries`` is the contract between carbon sources (adapters) and
everything that uses intensities (placement, accounting, the simulator); energy
and emissions are in :mod:`accord.domain.carbon.energy`, choosing when to run in
:mod:`accord.domain.carbon.shifting`.

Units, everywhere in the carbon modules:

* intensity: gCO2eq/kWh (a grid's average, life-cycle unless a source says otherwise);
* an intensity integral over time: (g/kWh)·h, so energy spread evenly over a run of
  ``h`` hours at ``P`` kW emits ``P × integral`` grams;
* energy: kWh; emissions: grams CO2eq; durations: seconds; times: UTC-aware datetimes.

Nothing here reads files, clocks or the environment; errors are
:class:`~accord.domain.errors.InvalidInput` with one :class:`Problem` per fault.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from accord.domain.errors import InvalidInput, Problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_S = 3600
DAY_S = 86_400
MAX_PROBLEMS = 20  # a broken series of 17,000 rows should not give 17,000 lines of errors


class IntensityBasis(enum.Enum):
    """What emissions an intensity counts: life-cycle (plants' construction, fuel chains)
    or direct (stack emissions only). Life-cycle is the default throughout Accord."""

    LIFECYCLE = "lifecycle"
    DIRECT = "direct"


class IntensityUnit(enum.Enum):
    """The unit a file's intensities are in; Accord works in g/kWh (= kg/MWh). Some
    marginal-emissions signals are published in lb CO2/MWh."""

    G_PER_KWH = "g/kWh"
    KG_PER_MWH = "kg/MWh"
    LB_PER_MWH = "lb/MWh"
    KG_PER_KWH = "kg/kWh"

    @property
    def factor(self) -> float:
        """g/kWh in one of this unit.

        >>> round(IntensityUnit.LB_PER_MWH.factor, 4)
        0.4536
        """
        return {"g/kWh": 1.0, "kg/MWh": 1.0, "lb/MWh": 0.45359237, "kg/kWh": 1000.0}[self.value]


PLAUSIBLE_G_PER_KWH = (1.0, 1100.0)   # the means of real grids: clean hydro/nuclear to lignite


@dataclass(frozen=True, slots=True)
class Gap:
    """A span [start, end) a series did not cover, filled from elsewhere."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        """Its length in hours."""
        return (self.end - self.start).total_seconds() / HOUR_S


@dataclass(frozen=True, slots=True)
class IntensitySeries:
    """A step function of grid intensity: ``values[i]`` holds from ``starts[i]`` until the
    next start (the last one for ``step_s`` seconds). Times are UTC-aware, increasing.

    ``step_s`` is the series' resolution (loaders use the most common spacing); a series
    whose every spacing equals it is :attr:`regular`. ``source`` says who produced it.

    Raises:
        InvalidInput: empty, mismatched lengths, naive or non-increasing times, or a value
            that is negative or not finite.
    """

    zone: str
    starts: tuple[datetime, ...]
    values: tuple[float, ...]
    step_s: int
    source: str
    # Seconds from the first start to each start and to the end, and the running integral at
    # each (g/kWh·s): every integral is then two look-ups, however long the series. Offsets
    # from the series' own start (not the epoch) keep float rounding well under a microsecond.
    _secs: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _series_problems(self)
        if problems:
            raise InvalidInput(problems)
        secs = [(t - self.starts[0]).total_seconds() for t in self.starts]
        secs.append(secs[-1] + self.step_s)
        cum = [0.0]
        for i, v in enumerate(self.values):
            cum.append(cum[-1] + v * (secs[i + 1] - secs[i]))
        object.__setattr__(self, "_secs", tuple(secs))
        object.__setattr__(self, "_cum", tuple(cum))

    @property
    def start(self) -> datetime:
        """When the first value begins."""
        return self.starts[0]

    @property
    def end(self) -> datetime:
        """When the last value ends (exclusive)."""
        return self.starts[-1] + timedelta(seconds=self.step_s)

    @property
    def regular(self) -> bool:
        """Whether every spacing equals ``step_s`` (needed by the shifting evaluations)."""
        s = self._secs
        return all(s[i + 1] - s[i] == self.step_s for i in range(len(s) - 1))

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) lies inside the series."""
        return self.start <= start and end <= self.end

    def value_at(self, t: datetime) -> float:
        """The intensity in force at ``t``.

        >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 200.0])
        >>> s.value_at(datetime(2020, 1, 1, 0, 45, tzinfo=UTC))
        200.0

        Raises:
            InvalidInput: ``t`` is naive or outside the series.
        """
        x = _offset(t, self.starts[0], "t")
        if not self._secs[0] <= x < self._secs[-1]:
            raise _not_covered(self, t, t)
        return self.values[bisect_right(self._secs, x) - 1]

    def mean(self, start: datetime, end: datetime) -> float:
        """The time-weighted mean intensity over [start, end), in g/kWh.

        >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 200.0])
        >>> s.mean(datetime(2020, 1, 1, 0, 15, tzinfo=UTC), datetime(2020, 1, 1, 0, 45, tzinfo=UTC))
        150.0

        Raises:
            InvalidInput: the span is empty, reversed, or not covered.
        """
        if end <= start:
            raise InvalidInput([Problem("span", "the span must not be empty",
                                        f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
        return integrate(self, start, end) * HOUR_S / (end - start).total_seconds()

    def means(self, start_s: NDArray[np.float64], end_s: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`mean` over many spans [start_s, end_s) at once (epoch seconds); NaN where a
        span is empty or the series does not cover it.

        >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 200.0])
        >>> t0 = s.start.timestamp()
        >>> s.means(np.array([t0 + 900, t0]), np.array([t0 + 2700, t0 + 7200])).tolist()
        [150.0, nan]
        """
        # Seconds from the series' start, to the microsecond as :meth:`mean`'s datetimes see
        # them (a float a fraction of a microsecond before the start is the start there).
        origin_us = round(self.starts[0].timestamp() * 1e6)
        a = (np.round(start_s * 1e6) - origin_us) / 1e6
        b = (np.round(end_s * 1e6) - origin_us) / 1e6
        secs, cum, values = np.array(self._secs), np.array(self._cum), np.array(self.values)
        ok = (a >= secs[0]) & (b <= secs[-1]) & (b > a)

        def antiderivative(x: NDArray[np.float64]) -> NDArray[np.float64]:
            i = np.minimum(np.searchsorted(secs, x, side="right") - 1, len(values) - 1)
            i = np.maximum(i, 0)
            out: NDArray[np.float64] = cum[i] + values[i] * (x - secs[i])
            return out

        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (antiderivative(b) - antiderivative(a)) / HOUR_S * HOUR_S / (b - a)
        return np.where(ok, mean, np.nan)

    def slice(self, start: datetime, end: datetime) -> IntensitySeries:
        """The part of the series that covers [start, end) (whole steps, values unchanged).

        Raises:
            InvalidInput: the span is empty, reversed, or not covered.
        """
        a, b = _span_seconds(self, start, end)
        if b <= a:
            raise InvalidInput([Problem("span", "the span must not be empty",
                                        f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
        i0 = bisect_right(self._secs, a) - 1
        i1 = bisect_right(self._secs, b - 1e-6) - 1
        if self._secs[i1] + self.step_s < b:  # a long gap before the next start: keep that one too
            i1 += 1
        return IntensitySeries(self.zone, self.starts[i0:i1 + 1], self.values[i0:i1 + 1],
                               self.step_s, self.source)

    def _integral_s(self, a: float, b: float) -> float:
        """∫ intensity over [a, b) in (g/kWh)·s; the caller has checked coverage."""
        return self._antiderivative(b) - self._antiderivative(a)

    def _antiderivative(self, x: float) -> float:
        i = min(bisect_right(self._secs, x) - 1, len(self.values) - 1)
        return self._cum[i] + self.values[i] * (x - self._secs[i])


def series(zone: str, start: datetime, step_s: int, values: Sequence[float],
           source: str = "test") -> IntensitySeries:
    """A regular series of ``values`` from ``start`` every ``step_s`` seconds.

    >>> series("FR", datetime(2020, 1, 1, tzinfo=UTC), 3600, [50, 60]).end.isoformat()
    '2020-01-01T02:00:00+00:00'

    Raises:
        InvalidInput: as :class:`IntensitySeries`.
    """
    starts = tuple(start + timedelta(seconds=step_s * i) for i in range(len(values)))
    return IntensitySeries(zone, starts, tuple(float(v) for v in values), step_s, source)


def integrate(s: IntensitySeries, start: datetime, end: datetime) -> float:
    """∫ intensity dt over [start, end), exact over the step function, in (g/kWh)·h.

    >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 200.0])
    >>> integrate(s, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, 1, tzinfo=UTC))
    150.0

    Raises:
        InvalidInput: naive times, ``end < start``, or a span the series does not cover.
    """
    a, b = _span_seconds(s, start, end)
    return s._integral_s(a, b) / HOUR_S


def resample(s: IntensitySeries, step_s: int) -> IntensitySeries:
    """A regular series of the exact mean over each ``step_s`` bucket (aligned to multiples
    of ``step_s`` since the epoch); partial buckets at either end are dropped. Integrals over
    whole buckets are preserved, so mixed 15/30-minute data can be compared at 30 minutes.

    >>> s = series("DE", datetime(2020, 1, 1, tzinfo=UTC), 900, [100, 200, 300, 400])
    >>> resample(s, 1800).values
    (150.0, 350.0)

    Raises:
        InvalidInput: ``step_s`` is not positive, or the series is shorter than one bucket.
    """
    if step_s <= 0:
        raise InvalidInput([Problem("step_s", "must be positive", str(step_s), "seconds > 0")])
    origin = (s.start - EPOCH).total_seconds()
    first = math.ceil(origin / step_s) * step_s - origin  # offset of the first aligned bucket
    count = int((s._secs[-1] - first) // step_s)
    if count < 1:
        raise InvalidInput([Problem("step_s", "the series is shorter than one bucket", str(step_s),
                                    f"at most {int(s._secs[-1] - s._secs[0])} s for this series")])
    values = [s._integral_s(first + k * step_s, first + (k + 1) * step_s) / step_s for k in range(count)]
    start = s.start + timedelta(seconds=first)
    return series(s.zone, start, step_s, values, s.source)


def implausible(s: IntensitySeries) -> str | None:
    """Why ``s``'s magnitude is implausible for a grid's intensity in g/kWh (a file in
    another unit, most likely), or None when its mean lies in :data:`PLAUSIBLE_G_PER_KWH`.

    >>> implausible(series("GB", EPOCH, 3600, [0.2, 0.3]))[:38]
    'GB: mean 0.25 g/kWh is implausibly low'
    """
    mean = sum(s.values) / len(s.values)
    low, high = PLAUSIBLE_G_PER_KWH
    if mean < low:
        return (f"{s.zone}: mean {mean:.3g} g/kWh is implausibly low for a grid (real grids average "
                f"{low:g} to {high:,.0f}); is the file in kg/kWh or t/MWh? (--carbon-unit kg/kWh)")
    if mean > high:
        return (f"{s.zone}: mean {mean:,.0f} g/kWh is above the dirtiest real grids (about {high:,.0f}); "
                "is the file in lb/MWh? (--carbon-unit lb/MWh)")
    return None


def fill_gaps(real: IntensitySeries | None, zone: str, start: datetime, end: datetime,
              fill: Callable[[datetime], float], source: str) -> tuple[IntensitySeries, tuple[Gap, ...]]:
    """A series covering [start, end): ``real``'s values wherever it has them, ``fill(t)``
    (a typical profile, say) in the spans it misses, at ``real``'s resolution and on its
    grid (hourly from the whole hour without ``real``); and those spans, in order.

    >>> t0 = datetime(2020, 1, 1, tzinfo=UTC)
    >>> real = series("GB", t0 + timedelta(hours=1), 3600, [100.0])
    >>> s, gaps = fill_gaps(real, "GB", t0, t0 + timedelta(hours=3), lambda t: 7.0, "x")
    >>> s.values, [g.hours for g in gaps]
    ((7.0, 100.0, 7.0), [1.0, 1.0])

    Raises:
        InvalidInput: naive times or an empty span.
    """
    a, b = _offset(start, EPOCH, "start"), _offset(end, EPOCH, "end")
    if b <= a:
        raise InvalidInput([Problem("span", "the span must not be empty",
                                    f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
    step = real.step_s if real is not None else HOUR_S
    points: list[tuple[float, float]] = []
    gaps: list[Gap] = []
    cursor = math.floor(a / step) * step if real is None else a
    for lo, hi, pts in _runs(real, a, b):
        if lo > cursor:
            _fill(points, gaps, cursor, lo, step, fill, backwards=True)
        points.extend(pts)
        cursor = max(cursor, hi)
    if cursor < b:
        _fill(points, gaps, cursor, b, step, fill, backwards=False)
    clipped = tuple(Gap(max(g.start, start), min(g.end, end)) for g in gaps)
    return IntensitySeries(zone, tuple(EPOCH + timedelta(seconds=t) for t, _ in points),
                           tuple(v for _, v in points), step, source), clipped


_Run = tuple[float, float, list[tuple[float, float]]]


def _runs(real: IntensitySeries | None, a: float, b: float) -> list[_Run]:
    """``real``'s stretches without holes that reach into [a, b): (from, to, points) in
    epoch seconds; a point holds for ``step_s`` at most."""
    if real is None:
        return []
    origin, step = real.start.timestamp(), real.step_s
    runs: list[_Run] = []
    for off, v in zip(real._secs, real.values, strict=False):
        t = origin + off
        if t + step <= a or t >= b:
            continue
        if runs and runs[-1][1] >= t:
            runs[-1][2].append((t, v))
            runs[-1] = (runs[-1][0], t + step, runs[-1][2])
        else:
            runs.append((t, t + step, [(t, v)]))
    return runs


def _fill(points: list[tuple[float, float]], gaps: list[Gap], x: float, y: float, step: int,
          fill: Callable[[datetime], float], backwards: bool) -> None:
    """Points every ``step`` covering [x, y): on the grid of what follows (ending at ``y``)
    or of what came before (starting at ``x``); either way after the last point so far."""
    first = y - math.ceil((y - x) / step) * step if backwards else x
    points.extend((t, fill(EPOCH + timedelta(seconds=t)))
                  for t in (first + k * step for k in range(math.ceil((y - first) / step))))
    gaps.append(Gap(EPOCH + timedelta(seconds=x), EPOCH + timedelta(seconds=y)))


# ─── internals ───────────────────────────────────────────────────────────────────────────


def _series_problems(s: IntensitySeries) -> list[Problem]:
    problems: list[Problem] = []
    if not s.zone:
        problems.append(Problem("zone", "must not be empty", repr(s.zone), "a grid zone id, e.g. GB"))
    if s.step_s <= 0:
        problems.append(Problem("step_s", "must be positive", str(s.step_s), "seconds > 0"))
    if not s.starts or len(s.starts) != len(s.values):
        problems.append(Problem("values", "need one value per start, and at least one",
                                f"{len(s.starts)} starts, {len(s.values)} values", "equal, >= 1"))
        return problems
    for i, t in enumerate(s.starts):
        if t.utcoffset() is None:
            problems.append(Problem(f"starts[{i}]", "must be timezone-aware", t.isoformat(), "UTC times"))
        elif i and t <= s.starts[i - 1]:
            problems.append(Problem(f"starts[{i}]", "must be after the previous start", t.isoformat(),
                                    f"> {s.starts[i - 1].isoformat()}"))
        if len(problems) >= MAX_PROBLEMS:
            return problems
    for i, v in enumerate(s.values):
        if not (math.isfinite(v) and v >= 0):
            problems.append(Problem(f"values[{i}]", "must be a finite number >= 0", str(v), "g/kWh >= 0"))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def _offset(t: datetime, origin: datetime, where: str) -> float:
    if t.utcoffset() is None:
        raise InvalidInput([Problem(where, "must be timezone-aware", t.isoformat(),
                                    "a UTC time, e.g. 2020-01-01T00:00:00+00:00")])
    return (t - origin).total_seconds()


def _span_seconds(s: IntensitySeries, start: datetime, end: datetime) -> tuple[float, float]:
    a, b = _offset(start, s.start, "start"), _offset(end, s.start, "end")
    if b < a:
        raise InvalidInput([Problem("end", "must not be before start", end.isoformat(),
                                    f">= {start.isoformat()}")])
    if a < s._secs[0] or b > s._secs[-1]:
        raise _not_covered(s, start, end)
    return a, b


def _not_covered(s: IntensitySeries, start: datetime, end: datetime) -> InvalidInput:
    return InvalidInput([Problem("span", f"the {s.zone} series ({s.source}) does not cover it",
                                 f"[{start.isoformat()}, {end.isoformat()})",
                                 f"within [{s.start.isoformat()}, {s.end.isoformat()})")])
