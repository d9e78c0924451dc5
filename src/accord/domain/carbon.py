"""Carbon intensity series and energy/emission arithmetic (pure).

``IntensitySeries`` is the contract between carbon sources (adapters) and
everything that uses intensities (placement, accounting, the simulator).

Units, everywhere in this module:

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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from accord.domain.errors import InvalidInput, Problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_S = 3600
DAY_S = 86_400
MAX_PROBLEMS = 20  # a broken series of 17,000 rows should not give 17,000 lines of errors

# Host share of a GPU job's power: what the rest of the node (CPUs, memory, NICs, NVSwitch,
# fans, storage) draws on top of the GPUs. Source: NVIDIA DGX H100 datasheet (2023): 8 x H100
# SXM5 at 700 W TDP each = 5.6 kW of a system "~10.2 kW max". (10.2 - 5.6) / 5.6 = 0.82.
# Both figures are maxima, so this is a full-load ratio; measured energy (Slurm) replaces it.
DGX_H100_GPUS = 8
DGX_H100_GPU_W = 700.0
DGX_H100_MAX_W = 10_200.0
DEFAULT_HOST_SHARE = (DGX_H100_MAX_W - DGX_H100_GPUS * DGX_H100_GPU_W) / (DGX_H100_GPUS * DGX_H100_GPU_W)


class IntensityBasis(enum.Enum):
    """What emissions an intensity counts: life-cycle (plants' construction, fuel chains)
    or direct (stack emissions only). Life-cycle is the default throughout Accord."""

    LIFECYCLE = "lifecycle"
    DIRECT = "direct"


class EnergyBasis(enum.Enum):
    """Where a job's energy figure came from."""

    MODEL = "model"        # GPUs x power x runtime x (1 + host share) x PUE
    MEASURED = "measured"  # the scheduler's consumed energy (e.g. Slurm ConsumedEnergyRaw) x PUE


class Forecast(enum.Enum):
    """How a shifting policy sees the future when it decides."""

    PERFECT = "perfect"        # the actual values (an upper bound: the oracle's knowledge)
    HISTORY_7D = "history-7d"  # per slot, the mean of the same time of day on the 7 days before


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
        origin = self.starts[0].timestamp()
        a, b = start_s - origin, end_s - origin
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


# ─── energy and emissions ────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Footprint:
    """A job's energy and emissions, and what they were computed from."""

    energy_kwh: float
    emissions_g: float
    mean_intensity: float
    zone: str
    intensity_source: str
    energy_basis: EnergyBasis


def job_energy_kwh(gpus: int, power_w: float, seconds: float, pue: float,
                   host_share: float = DEFAULT_HOST_SHARE) -> float:
    """Facility energy of a GPU job: GPUs × power per GPU × (1 + host share) × runtime × PUE.

    ``host_share`` is the rest of the node's draw as a fraction of its GPUs' draw; the
    default, 0.82, is the NVIDIA DGX H100 ratio (8 × 700 W GPUs of a 10.2 kW node maximum).
    Pass 0 when ``power_w`` already covers the whole node share per GPU.

    >>> round(job_energy_kwh(8, 700, 3600, 1.0), 6)   # one DGX H100 at full power, 1 h
    10.2
    >>> job_energy_kwh(1, 1000, 3600, 1.5, host_share=0)
    1.5

    Raises:
        InvalidInput: a negative count, power, runtime or host share, or a PUE below 1.
    """
    problems = []
    if gpus < 0:
        problems.append(Problem("gpus", "must not be negative", str(gpus), "an integer >= 0"))
    for name, value in (("power_w", power_w), ("seconds", seconds), ("host_share", host_share)):
        if not (math.isfinite(value) and value >= 0):
            problems.append(Problem(name, "must be a finite number >= 0", str(value), "a number >= 0"))
    problems += _pue_problems(pue)
    if problems:
        raise InvalidInput(problems)
    return _facility_kwh(float(gpus), power_w, seconds, pue, host_share)


_N = TypeVar("_N", float, NDArray[np.float64])


def _facility_kwh(gpus: _N, power_w: _N, seconds: _N, pue: _N, host_share: float) -> _N:
    return gpus * power_w * (1.0 + host_share) * seconds / 3.6e6 * pue


def jobs_energy_kwh(gpus: NDArray[np.float64], power_w: NDArray[np.float64], seconds: NDArray[np.float64],
                    pue: NDArray[np.float64], host_share: float = DEFAULT_HOST_SHARE) -> NDArray[np.float64]:
    """:func:`job_energy_kwh` of many jobs at once (arrays of equal length), the same figures.

    >>> jobs_energy_kwh(np.array([8.0, 1.0]), np.array([700.0, 1000.0]), np.array([3600.0, 3600.0]),
    ...                 np.array([1.0, 1.5]), 0.0).tolist()
    [5.6, 1.5]

    Raises:
        InvalidInput: a negative count, power or runtime, a non-finite one, or a PUE below 1.
    """
    problems = [Problem(name, "must be finite numbers >= 0", str(v[~(np.isfinite(v) & (v >= 0))][0]),
                        "numbers >= 0")
                for name, v in (("gpus", gpus), ("power_w", power_w), ("seconds", seconds))
                if not bool(np.all(np.isfinite(v) & (v >= 0)))]
    if not bool(np.all(pue >= 1)):
        problems.append(Problem("pue", "must be at least 1", str(pue[~(pue >= 1)][0]), "a number >= 1"))
    if problems:
        raise InvalidInput(problems)
    return _facility_kwh(gpus, power_w, seconds, pue, host_share)


def energy_kwh_from_joules(consumed_j: float, pue: float) -> float:
    """Facility energy from the scheduler's measured IT energy (Slurm ``ConsumedEnergyRaw``,
    joules, which covers the whole node when gathered by IPMI), × PUE for cooling and
    power distribution. No host share: the measurement already includes the host.

    >>> energy_kwh_from_joules(3.6e6, 1.2)
    1.2

    Raises:
        InvalidInput: negative or non-finite energy, or a PUE below 1.
    """
    problems = _pue_problems(pue)
    if not (math.isfinite(consumed_j) and consumed_j >= 0):
        problems.append(Problem("consumed_energy_j", "must be a finite number >= 0", str(consumed_j),
                                "joules >= 0"))
    if problems:
        raise InvalidInput(problems)
    return consumed_j / 3.6e6 * pue


def job_emissions_g(energy_kwh: float, s: IntensitySeries, start: datetime, end: datetime) -> float:
    """Emissions of ``energy_kwh`` spread evenly over the run [start, end):
    energy × mean intensity over the actual interval (= energy / hours × ∫ intensity dt).

    >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 300.0])
    >>> job_emissions_g(2.0, s, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, 1, tzinfo=UTC))
    400.0

    Raises:
        InvalidInput: negative or non-finite energy, an empty span, or one not covered.
    """
    if not (math.isfinite(energy_kwh) and energy_kwh >= 0):
        raise InvalidInput([Problem("energy_kwh", "must be a finite number >= 0", str(energy_kwh),
                                    "kWh >= 0")])
    return energy_kwh * s.mean(start, end)


def footprint(energy_kwh: float, s: IntensitySeries, start: datetime, end: datetime,
              energy_basis: EnergyBasis = EnergyBasis.MODEL) -> Footprint:
    """Energy, emissions and the mean intensity of a run, with the intensity's source.

    Raises:
        InvalidInput: as :func:`job_emissions_g`.
    """
    mean = s.mean(start, end)
    return Footprint(energy_kwh, job_emissions_g(energy_kwh, s, start, end), mean, s.zone,
                     s.source, energy_basis)


# ─── choosing when to run ────────────────────────────────────────────────────────────────


def best_start(s: IntensitySeries, earliest: datetime, deadline: datetime, duration_s: int,
               step_s: int) -> datetime:
    """The start in ``earliest + k × step_s`` (k = 0, 1, ...) that minimises the intensity
    integral of a run of ``duration_s`` finishing by ``deadline``; ties go to the earliest.

    Pass a forecast as ``s`` to decide without knowing the future.

    >>> t0 = datetime(2020, 1, 1, tzinfo=UTC)
    >>> s = series("GB", t0, 3600, [300, 100, 50, 200])
    >>> best_start(s, t0, t0 + timedelta(hours=4), 7200, 3600).hour
    1

    Raises:
        InvalidInput: non-positive duration or step, a window shorter than the run, or a
            window the series does not cover.
    """
    problems = [Problem(n, "must be positive", str(v), "seconds > 0")
                for n, v in (("duration_s", duration_s), ("step_s", step_s)) if v <= 0]
    if problems:
        raise InvalidInput(problems)
    a, b = _offset(earliest, s.start, "earliest"), _offset(deadline, s.start, "deadline")
    if b - a < duration_s:
        raise InvalidInput([Problem("deadline", "the window is shorter than the run",
                                    f"{b - a:.0f} s", f">= duration_s ({duration_s} s)")])
    last = a + (b - a - duration_s) // step_s * step_s
    count = int((last - a) // step_s) + 1
    _span_seconds(s, earliest, earliest + timedelta(seconds=(count - 1) * step_s + duration_s))
    costs = [s._integral_s(a + c * step_s, a + c * step_s + duration_s) for c in range(count)]
    return earliest + timedelta(seconds=_argmin_earliest(costs) * step_s)


def forecast_from_history(s: IntensitySeries, at: datetime, horizon_s: int, days: int = 7) -> IntensitySeries:
    """A forecast for [at, at + horizon) made only from data that ended by ``at``: each
    slot (of ``s.step_s``) gets the mean of the same time of day on the ``days`` most recent
    days whose slot had ended by ``at`` (so a slot 30 h ahead uses days 2..8 back).

    >>> t0 = datetime(2020, 1, 1, tzinfo=UTC)
    >>> hist = series("GB", t0, 43_200, [100, 300, 200, 400])   # two days, 12 h slots
    >>> forecast_from_history(hist, t0 + timedelta(days=2), 86_400, days=2).values
    (150.0, 350.0)

    Raises:
        InvalidInput: non-positive horizon or days, or not enough history before ``at``.
    """
    if horizon_s <= 0 or days <= 0:
        raise InvalidInput([Problem("horizon_s/days", "must be positive", f"{horizon_s}/{days}",
                                    "integers > 0")])
    at_s, step = _offset(at, s.start, "at"), s.step_s
    slots = math.ceil(horizon_s / step)
    values = []
    for k in range(slots):
        slot = at_s + k * step
        first_day = max(1, math.ceil((slot + step - at_s) / DAY_S))
        starts = [slot - d * DAY_S for d in range(first_day, first_day + days)]
        if starts[-1] < s._secs[0] or starts[0] + step > s._secs[-1]:
            need = s.start + timedelta(seconds=starts[-1])
            raise InvalidInput([Problem("history", f"a {days}-day forecast needs data from "
                                        f"{need.isoformat()}", s.start.isoformat(),
                                        f"a series starting by {need.isoformat()}")])
        values.append(sum(s._integral_s(x, x + step) for x in starts) / (days * step))
    return series(s.zone, at, step, values, f"forecast:history-{days}d({s.source})")


@dataclass(frozen=True, slots=True)
class ShiftingResult:
    """What delaying jobs saved over a set of submit times.

    ``mean_relative_saving`` is the mean over submit times of (cost if run at once − cost
    paid) / cost if run at once; ``aggregate_saving`` is 1 − Σ paid / Σ at once.
    """

    decisions: int
    mean_relative_saving: float
    aggregate_saving: float


def oracle_saving(s: IntensitySeries, duration_s: int, window_s: int,
                  submit_from: datetime | None = None, submit_until: datetime | None = None) -> float:
    """The mean relative saving of starting each job at the best start in [t, t + window]
    (perfect knowledge) instead of at t, for every submit time t at the series resolution
    whose window fits in the series. O(n): a sliding-window minimum over prefix sums.

    >>> t0 = datetime(2020, 1, 1, tzinfo=UTC)
    >>> round(oracle_saving(series("GB", t0, 3600, [100, 50, 100, 100]), 3600, 3600), 4)
    0.1667

    Raises:
        InvalidInput: an irregular series (see :func:`resample`), a duration or window that is
            not a multiple of the step, or no submit time whose window fits.
    """
    return _oracle(s, duration_s, window_s, submit_from, submit_until).mean_relative_saving


def oracle_shifting(s: IntensitySeries, duration_s: int, window_s: int,
                    submit_from: datetime | None = None,
                    submit_until: datetime | None = None) -> ShiftingResult:
    """As :func:`oracle_saving`, with the aggregate saving and the number of decisions.

    Raises:
        InvalidInput: as :func:`oracle_saving`.
    """
    return _oracle(s, duration_s, window_s, submit_from, submit_until)


def policy_shifting(s: IntensitySeries, duration_s: int, window_s: int, forecast: Forecast,
                    submit_from: datetime | None = None,
                    submit_until: datetime | None = None) -> ShiftingResult:
    """Choose each start by forecast, pay by actual: at each submit time t the policy sees
    only ``forecast`` (``PERFECT`` = the actual future; ``HISTORY_7D`` = what
    :func:`forecast_from_history` would say at t), picks the start in [t, t + window] with
    the lowest forecast integral (ties to the earliest), and pays the actual integral.

    Raises:
        InvalidInput: as :func:`oracle_saving`; for ``HISTORY_7D`` also a submit time with
            less than 7 days of history before it.
    """
    g = _Grid.of(s, duration_s, window_s, submit_from, submit_until)
    if forecast is Forecast.HISTORY_7D:
        g.require_history(7)
        view = _history_view(g.values, DAY_S // g.step, 7)
    paid_total = now_total = rel = 0.0
    for i in g.decisions:
        span = range(i, i + g.w + g.k)
        f = [g.values[j] for j in span] if forecast is Forecast.PERFECT else [
            view(i, j) for j in span]
        pre = [0.0]
        for v in f:
            pre.append(pre[-1] + v)
        choice = i + _argmin_earliest([pre[c + g.k] - pre[c] for c in range(g.w + 1)])
        paid, now = g.cost[choice], g.cost[i]
        paid_total, now_total = paid_total + paid, now_total + now
        rel += (now - paid) / now if now > 0 else 0.0
    return g.result(rel, paid_total, now_total)


def spatial_shifting(home: IntensitySeries, away: IntensitySeries, duration_s: int,
                     submit_from: datetime | None = None,
                     submit_until: datetime | None = None) -> ShiftingResult:
    """The saving of running each job in ``away``'s zone instead of ``home``'s at the same
    moment (same energy), for every submit time on ``home``'s grid both series cover.

    Raises:
        InvalidInput: as :func:`oracle_saving`, or series on different grids.
    """
    g = _Grid.of(home, duration_s, 0, submit_from, submit_until)
    shift = (home.start - away.start).total_seconds()  # home offsets -> away offsets
    rel = paid_total = now_total = 0.0
    count = 0
    for i in g.decisions:
        a = g.secs[i] + shift
        b = a + duration_s
        if not (away._secs[0] <= a and b <= away._secs[-1]):
            continue
        now, paid = g.cost[i], away._integral_s(a, b) / HOUR_S
        rel += (now - paid) / now if now > 0 else 0.0
        paid_total, now_total, count = paid_total + paid, now_total + now, count + 1
    if count == 0:
        raise InvalidInput([Problem("away", "the two series share no submit time",
                                    f"{away.start.isoformat()}..{away.end.isoformat()}",
                                    f"overlapping {home.start.isoformat()}..{home.end.isoformat()}")])
    return ShiftingResult(count, rel / count, 1 - paid_total / now_total if now_total else 0.0)


# ─── internals ───────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class _Grid:
    """A regular series prepared for evaluating many decisions: job costs per start slot,
    ``k`` slots per job, ``w`` slots of window, and the decision slots."""

    origin: datetime
    secs: tuple[float, ...]
    values: tuple[float, ...]
    step: int
    k: int
    w: int
    cost: tuple[float, ...]
    decisions: range

    @staticmethod
    def of(s: IntensitySeries, duration_s: int, window_s: int, submit_from: datetime | None,
           submit_until: datetime | None) -> _Grid:
        _require_grid(s, duration_s, window_s)
        step, n = s.step_s, len(s.values)
        k, w = duration_s // step, window_s // step
        cum = s._cum
        cost = tuple((cum[i + k] - cum[i]) / HOUR_S for i in range(n - k + 1))
        lo = 0 if submit_from is None else bisect_right(
            s._secs, _offset(submit_from, s.start, "submit_from") - 1e-6)
        hi = n - k - w + 1
        if submit_until is not None:
            hi = min(hi, bisect_right(s._secs, _offset(submit_until, s.start, "submit_until") - 1e-6))
        if hi <= lo:
            raise InvalidInput([Problem("submit_from/submit_until", "no submit time has its whole "
                                        "window inside the series", f"{n} slots",
                                        f"a series of at least {k + w} slots after submit_from")])
        return _Grid(s.start, s._secs, s.values, step, k, w, cost, range(lo, hi))

    def require_history(self, days: int) -> None:
        need = days * DAY_S // self.step
        if self.decisions.start < need:
            at = self.origin + timedelta(seconds=self.secs[self.decisions.start])
            raise InvalidInput([Problem("submit_from", f"a {days}-day history forecast needs "
                                        f"{need} slots before the first decision", at.isoformat(),
                                        f"a submit time at least {days} days into the series")])

    def result(self, rel: float, paid_total: float, now_total: float) -> ShiftingResult:
        n = len(self.decisions)
        return ShiftingResult(n, rel / n, 1 - paid_total / now_total if now_total else 0.0)


def _oracle(s: IntensitySeries, duration_s: int, window_s: int, submit_from: datetime | None,
            submit_until: datetime | None) -> ShiftingResult:
    g = _Grid.of(s, duration_s, window_s, submit_from, submit_until)
    cost = g.cost
    window: deque[int] = deque()  # candidate indices, their costs increasing
    rel = paid_total = now_total = 0.0
    nxt = g.decisions.start
    for i in g.decisions:
        while nxt <= i + g.w:
            while window and cost[window[-1]] >= cost[nxt]:
                window.pop()
            window.append(nxt)
            nxt += 1
        while window[0] < i:
            window.popleft()
        now, paid = cost[i], cost[window[0]]
        rel += (now - paid) / now if now > 0 else 0.0
        paid_total, now_total = paid_total + paid, now_total + now
    return g.result(rel, paid_total, now_total)


def _argmin_earliest(costs: Sequence[float]) -> int:
    """The index of the lowest cost; costs within rounding of it count as ties, and ties go
    to the earliest (waiting longer for the same emissions gains nothing)."""
    low = min(costs)
    tolerance = 1e-9 * abs(low)
    return next(i for i, c in enumerate(costs) if c <= low + tolerance)


def _history_view(values: tuple[float, ...], per_day: int, days: int) -> Callable[[int, int], float]:
    """``view(i, j)``: the history forecast of slot j as made at decision slot i — the mean
    of slot j's time of day on the ``days`` most recent days that had ended by slot i."""
    mean_back = [0.0] * len(values)
    for j in range(days * per_day, len(values)):
        mean_back[j] = sum(values[j - d * per_day] for d in range(1, days + 1)) / days

    def view(i: int, j: int) -> float:
        first_day = max(1, -(-(j - i + 1) // per_day))
        return mean_back[j - (first_day - 1) * per_day]

    return view


def _require_grid(s: IntensitySeries, duration_s: int, window_s: int) -> None:
    problems = []
    if not s.regular:
        problems.append(Problem("series", "the evaluation needs a regular series", s.source,
                                f"equal spacing of {s.step_s} s; use resample()"))
    if duration_s <= 0 or duration_s % s.step_s:
        problems.append(Problem("duration_s", "must be a positive multiple of the step", str(duration_s),
                                f"a multiple of {s.step_s}"))
    if window_s < 0 or window_s % s.step_s:
        problems.append(Problem("window_s", "must be a multiple of the step", str(window_s),
                                f"a multiple of {s.step_s}, >= 0"))
    if problems:
        raise InvalidInput(problems)


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


def _pue_problems(pue: float) -> list[Problem]:
    if math.isfinite(pue) and pue >= 1.0:
        return []
    return [Problem("pue", "must be at least 1", str(pue), "a number >= 1.0 (1.1 is a good data centre)")]


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
