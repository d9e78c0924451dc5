"""Placement's inputs beyond the federation and the loads: :class:`ZoneForecast`, a grid
zone's forecast intensity on the placement slot grid with the arithmetic that scores runs
on it (integrals, the best start in a window), and :class:`PlacementContext`, the record
that brings the forecasts, quota left, balances and allocations to a decision.

Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from accord.domain.carbon.series import IntensitySeries, resample
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import PlacementWeights
from accord.domain.placement.scalar import _cost, _integral, best_start


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
    # The memo of the hot path: per (first start, duration, later slots), the best start.
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
        return _integral(self.origin_s, self.step_s, len(self.values), self._mean, self.values, self._prefix,
                         a, b)

    def run_costs(self, duration_s: int) -> list[float]:
        """The integral of a run of ``duration_s`` from each slot boundary of the grid."""
        n, t0, step = len(self.values), self.origin_s, self.step_s
        values, prefix = self.values, self._prefix
        return [_cost(t0, step, n, self._mean, values, prefix, j, duration_s, True) for j in range(n)]

    def best_start(self, s0: float, duration_s: int, slots: int) -> tuple[float, float, float]:
        """(integral if the run starts at ``s0``, the lowest integral, its start) over ``s0``
        and the next ``slots`` slot boundaries (epoch seconds; integrals in (g/kWh)·s), by the
        module's :func:`best_start` (cached per arguments).

        >>> f = ZoneForecast("GB", 0.0, 3600, (300.0, 100.0, 50.0, 200.0), "test")
        >>> f.best_start(0.0, 7200, 3)[1:]        # 1 h + 2 h at 100 and 50 g/kWh
        (540000.0, 3600.0)
        """
        key = (s0, duration_s, slots)
        hit = self._best.get(key)
        if hit is None:
            if len(self._best) >= 4096:
                self._best.clear()
            hit = best_start(self.origin_s, self.step_s, len(self.values), self._mean, self.values,
                             self._prefix, s0, duration_s, slots)
            self._best[key] = hit
        return hit


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
