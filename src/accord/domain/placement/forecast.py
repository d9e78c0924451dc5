"""Placement's inputs beyond the federation and the loads: :class:`ZoneForecast`, a grid
zone's forecast intensity on the placement slot grid with the arithmetic that scores runs
on it (integrals, the best start in a window), and :class:`PlacementContext`, the record
that brings the forecasts, quota left, balances and allocations to a decision.

Pure, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from accord.domain.carbon.series import IntensitySeries, resample
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import PlacementWeights
from accord.domain.placement.records import TIE

_COST_MEMO = 64        # run durations whose per-slot costs a forecast keeps


@dataclass(frozen=True, slots=True)
class ZoneForecast:
    """A zone's forecast intensity on the placement slot grid, with running integrals at
    every slot boundary, so the intensity integral of any run is two look-ups.

    ``values[i]`` (g/kWh) holds on [origin + i × step, origin + (i+1) × step), origin in
    epoch seconds, aligned to a multiple of ``step_s``. Outside the grid the forecast's
    mean stands in, so a run that outlasts the forecast is still scored (the builder asks
    for a horizon covering 48 starts and a day-long run).

    Raises:
        InvalidInput: no values, a step that is not positive, or an origin off the grid.
    """

    zone: str
    origin_s: float
    step_s: int
    values: tuple[float, ...]
    source: str
    _prefix: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _mean: float = field(init=False, repr=False, compare=False)
    # Memos for the hot path: per run duration, the integral of a run from each slot
    # boundary; per (first start, duration, later slots), the best start (see best_start).
    _costs: dict[int, list[float]] = field(init=False, repr=False, compare=False)
    _best: dict[tuple[float, int, int], tuple[float, float, float]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.values or self.step_s <= 0 or self.origin_s % self.step_s:
            raise InvalidInput([Problem("forecast", "needs values on a grid aligned to its step",
                                        f"{len(self.values)} values, step {self.step_s} s, "
                                        f"origin {self.origin_s}", "an epoch-aligned slot grid")])
        prefix = [0.0]
        for v in self.values:
            prefix.append(prefix[-1] + v * self.step_s)
        object.__setattr__(self, "_prefix", tuple(prefix))
        object.__setattr__(self, "_mean", prefix[-1] / (len(self.values) * self.step_s))
        object.__setattr__(self, "_costs", {})
        object.__setattr__(self, "_best", {})

    @staticmethod
    def of(s: IntensitySeries, step_s: int) -> ZoneForecast:
        """``s`` as exact means over slots of ``step_s`` aligned to the epoch (partial slots
        at either end are dropped, see :func:`accord.domain.carbon.series.resample`).

        Raises:
            InvalidInput: ``step_s`` is not positive, or ``s`` is shorter than one slot.
        """
        r = resample(s, step_s)
        return ZoneForecast(s.zone, r.start.timestamp(), step_s, r.values, s.source)

    @property
    def start(self) -> datetime:
        """When the first slot begins."""
        return datetime.fromtimestamp(self.origin_s, UTC)

    def integral(self, a: float, b: float) -> float:
        """∫ intensity over [a, b) (epoch seconds), in (g/kWh)·s."""
        return self._antiderivative(b) - self._antiderivative(a)

    def run_costs(self, duration_s: int) -> list[float]:
        """The integral of a run of ``duration_s`` from each slot boundary of the grid."""
        costs = self._costs.get(duration_s)
        if costs is None:
            if len(self._costs) >= _COST_MEMO:
                self._costs.clear()
            costs = self._run_costs(duration_s)
            self._costs[duration_s] = costs
        return costs

    def _run_costs(self, duration_s: int) -> list[float]:
        """:meth:`run_costs` computed, with numpy, in the same float operations as
        :meth:`integral` (so the same figures): runs that end on the grid are prefix
        differences; the last ``q`` run past its end, where the mean stands in."""
        step, n, t0 = self.step_s, len(self.values), self.origin_s
        q, rest = divmod(duration_s, step)
        p, v = np.array(self._prefix), np.array(self.values)
        inside = p[q:n] - p[:max(0, n - q)] + v[q:n] * rest
        j = np.arange(max(0, n - q), n)
        x = t0 + j * step + duration_s
        off = x - t0
        u = off / step
        past = u >= n
        i = np.where(past, 0, np.minimum(u.astype(np.int64), n - 1))
        end = np.where(past, p[n] + self._mean * (off - n * step), p[i] + v[i] * (off - i * step))
        out: list[float] = np.concatenate([inside, end - p[j]]).tolist()
        return out

    def window(self, duration_s: int, first: int, count: int) -> list[float]:
        """Integrals of runs of ``duration_s`` from slot boundaries ``first`` .. ``first +
        count - 1`` (indices of the grid; outside it, the mean stands in)."""
        costs = self.run_costs(duration_s)
        if first >= 0 and first + count <= len(costs):
            return costs[first:first + count]
        t0, step = self.origin_s, self.step_s
        return [self.integral(t0 + j * step, t0 + j * step + duration_s)
                for j in range(first, first + count)]

    def best_start(self, s0: float, duration_s: int, slots: int) -> tuple[float, float, float]:
        """(integral if the run starts at ``s0``, the lowest integral, its start) over ``s0``
        and the next ``slots`` slot boundaries (epoch seconds; integrals in (g/kWh)·s).
        Integrals within :data:`TIE` (relative) of the lowest count as equal, and equal
        ones go to the earliest start: waiting longer for the same emissions gains nothing.

        >>> f = ZoneForecast("GB", 0.0, 3600, (300.0, 100.0, 50.0, 200.0), "test")
        >>> f.best_start(0.0, 7200, 3)[1:]        # 1 h + 2 h at 100 and 50 g/kWh
        (540000.0, 3600.0)
        """
        key = (s0, duration_s, slots)
        hit = self._best.get(key)
        if hit is None:
            if len(self._best) >= 4096:
                self._best.clear()
            now = self.integral(s0, s0 + duration_s)
            hit = (now, now, s0)
            if slots:
                first = math.floor((s0 - self.origin_s) / self.step_s) + 1
                seg = self.window(duration_s, first, slots)
                low = min(seg)
                if low < now - TIE * abs(now):
                    i = seg.index(low)
                    if i and min(seg[:i]) <= low + TIE * abs(low):
                        i = next(k for k, c in enumerate(seg) if c <= low + TIE * abs(low))
                    hit = (now, seg[i], self.origin_s + (first + i) * self.step_s)
            self._best[key] = hit
        return hit

    def _antiderivative(self, x: float) -> float:
        u = (x - self.origin_s) / self.step_s
        n = len(self.values)
        if u <= 0:
            return self._mean * (x - self.origin_s)
        if u >= n:
            return self._prefix[n] + self._mean * (x - self.origin_s - n * self.step_s)
        i = int(u)
        return self._prefix[i] + self.values[i] * (x - self.origin_s - i * self.step_s)


@dataclass(frozen=True, slots=True)
class PlacementContext:
    """Everything placement needs beyond the federation and the loads (a pure record,
    built once per dispatcher pass by ``accord.service.placement_context``).

    ``forecasts``: per grid zone, on the slot grid of ``weights.slot_s``; a zone without
    one gets no emissions term and no later starts (``notes`` may say why).
    ``quota_left``: normalised units left, per (agreement, requester, host); a missing
    key means no limit is known. ``balances``: per agreement, each partner's net units
    (provided − used) so far; missing means 0. ``allocations``: per registered project,
    the (agreement, site) pairs its approved allocations cover today; a project in it
    may run abroad only under those; a project not in it is not limited.

    Raises:
        InvalidInput: a forecast on a grid other than ``weights.slot_s``.
    """

    weights: PlacementWeights = field(default_factory=PlacementWeights)
    forecasts: Mapping[str, ZoneForecast] = field(default_factory=dict)
    quota_left: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    balances: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    allocations: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    # Work shared by every decision made with this context (see the internals of place()).
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wrong = [z for z, f in self.forecasts.items() if f.step_s != self.weights.slot_s]
        if wrong:
            raise InvalidInput([Problem("forecasts", "must be on the placement slot grid",
                                        ", ".join(wrong), f"step_s = {self.weights.slot_s}")])

    @property
    def slot_s(self) -> int:
        """The spacing of candidate start times, in seconds."""
        return self.weights.slot_s


