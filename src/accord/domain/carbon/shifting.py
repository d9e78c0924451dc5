"""Choosing when (or where) to run by intensity (pure): the best start in a window,
a forecast from history, and what shifting jobs in time or space saves over a series
(the oracle with perfect knowledge, a policy deciding by forecast, another zone).

Units as in :mod:`accord.domain.carbon.series`. Errors are
:class:`~accord.domain.errors.InvalidInput` with one :class:`Problem` per fault.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from accord.domain.carbon.series import DAY_S, HOUR_S, IntensitySeries, _offset, _span_seconds, series
from accord.domain.errors import InvalidInput, Problem


class Forecast(enum.Enum):
    """How a shifting policy sees the future when it decides."""

    PERFECT = "perfect"        # the actual values (an upper bound: the oracle's knowledge)
    HISTORY_7D = "history-7d"  # per slot, the mean of the same time of day on the 7 days before
    PROFILE = "profile"        # the zone's built-in typical value for the month and hour (no feed at all)


def best_start(s: IntensitySeries, earliest: datetime, deadline: datetime, duration_s: int,
               step_s: int) -> datetime:
    """The start in ``earliest + k × step_s`` (k = 0, 1, ...) that minimises the intensity
    integral of a run of ``duration_s`` finishing by ``deadline``; ties go to the earliest.

    Pass a forecast as ``s`` to decide without knowing the future.

    >>> from datetime import UTC
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

    >>> from datetime import UTC
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

    >>> from datetime import UTC
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
