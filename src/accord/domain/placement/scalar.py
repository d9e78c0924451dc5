"""The scalar arithmetic of a placement decision, declared once for the broker's
``_Placer`` (:mod:`~accord.domain.placement.scoring`, interpreted), the forecasts'
:class:`~accord.domain.placement.forecast.ZoneForecast` and the simulator's compiled kernel
(:mod:`~accord.domain.placement.table`, compiled with numba): the quota's slack and the
GPU-hours it admits, the reciprocity term of a move, the terms of a pool abroad under a
later agreement, a job's start window, and the intensity integrals and best start over a
forecast's slots. Plain functions of numbers and arrays (or tuples), so numba compiles
them as they are.

Pure: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import HOUR_S
from accord.domain.placement.records import MAX_START_SLOTS, TIE

Row = NDArray[np.float64] | tuple[float, ...]
"""A forecast's values or running integrals: arrays (the simulator) or the tuples of
:class:`~accord.domain.placement.forecast.ZoneForecast`."""


def _most(left: float, rate: float) -> float:
    """The most GPU-hours a quota with ``left`` units left admits at ``rate`` units per
    GPU-hour (+inf at rate 0 unless the quota is overdrawn: then -inf), with the slack of
    :func:`_covers`. Raises nothing."""
    left += 1e-9
    return left / rate if rate > 0 else math.inf if left >= 0 else -math.inf


def _covers(units: float, left: float) -> bool:
    """Whether a quota with ``left`` units left covers ``units`` (up to float noise).
    Raises nothing."""
    return units <= left + 1e-9


def _abroad_part(recip: float, reciprocity: float, border: float, cost: float, rate0: float) -> float:
    """The weighted reciprocity, border and cost terms of a pool abroad: ``recip`` the
    reciprocity term, the weights, ``rate0`` the rate (0 where none). Raises nothing."""
    return reciprocity * recip + border + cost * rate0


def _moved(gap: float, units: float) -> float:
    """How a move of ``units`` from requester to host changes the imbalance between them,
    ``gap`` the host's net units minus the requester's: from −1 (cuts it by 2 × units: the
    host owed the requester) to +1 (adds 2 × units); 0 for no units. Raises nothing."""
    return 0.0 if units <= 0 else (abs(gap + 2 * units) - abs(gap)) / (2 * units)


def _slots(d: int, s0: float, deadline: float, flex_h: float, emissions: float, step: float) -> int:
    """How many slot boundaries after ``s0`` (epoch s; ``step`` s apart) a run of ``d`` s may
    start at (0: at ``s0`` only): up to its ``deadline`` minus its run (NaN: none), else up
    to the flexibility ``flex_h`` (hours; -1.0: none) of the agreement it runs under; none
    when the emissions weight is off; at most :data:`MAX_START_SLOTS` in all. Raises
    nothing."""
    if emissions <= 0:
        return 0
    if not math.isnan(deadline):
        latest = deadline - d
    elif flex_h >= 0:
        latest = s0 + flex_h * HOUR_S
    else:
        return 0
    count = math.floor(latest / step) - math.floor(s0 / step)
    return int(max(0, min(MAX_START_SLOTS - 1, count)))


def best_start(origin: float, step: int, n: int, mean: float, values: Row, prefix: Row, s0: float,
               d: int, slots: int) -> tuple[float, float, float]:
    """Over a forecast's slots (from ``origin``, ``step`` s apart, ``n`` values, their
    ``mean`` standing in off the grid, the running integrals ``prefix``): (∫ intensity if
    the run of ``d`` s starts at ``s0``, the lowest ∫ over ``s0`` and the next ``slots``
    slot boundaries, its start). Integrals within :data:`TIE` (relative) of the lowest
    count as equal, and equal ones go to the earliest start: waiting longer for the same
    emissions gains nothing. Plain loops over numbers, so that the simulator can compile it
    (numba; :mod:`accord.domain.placement.table`). Raises nothing."""
    now = _integral(origin, step, n, mean, values, prefix, s0, s0 + d)
    if not slots:
        return now, now, s0
    first = math.floor((s0 - origin) / step) + 1
    low, at = math.inf, 0
    inside = first >= 0 and first + slots <= n
    for i in range(slots):
        c = _cost(origin, step, n, mean, values, prefix, first + i, d, inside)
        if c < low:
            low, at = c, i
    if not low < now - TIE * abs(now):
        return now, now, s0
    for i in range(at):   # an earlier start within TIE of the lowest: waiting gains nothing
        if _cost(origin, step, n, mean, values, prefix, first + i, d, inside) <= low + TIE * abs(low):
            at = i
            break
    low = _cost(origin, step, n, mean, values, prefix, first + at, d, inside)
    return now, low, origin + (first + at) * step


def _cost(origin: float, step: int, n: int, mean: float, values: Row, prefix: Row, j: int, d: int,
          inside: bool) -> float:
    """The integral of a run of ``d`` s from slot boundary ``j``: as prefix differences
    when the window of starts is ``inside`` the grid, else by :func:`_integral`."""
    if not inside:
        return _integral(origin, step, n, mean, values, prefix, origin + j * step, origin + j * step + d)
    q, rest = d // step, d % step
    if j < n - q:
        return float(prefix[j + q] - prefix[j] + values[j + q] * rest)
    off = origin + j * step + d - origin
    u = off / step
    if u >= n:
        end = prefix[n] + mean * (off - n * step)
    else:
        i = min(int(u), n - 1)
        end = prefix[i] + values[i] * (off - i * step)
    return float(end - prefix[j])


def _integral(origin: float, step: int, n: int, mean: float, values: Row, prefix: Row, a: float,
              b: float) -> float:
    return _anti(origin, step, n, mean, values, prefix, b) - _anti(origin, step, n, mean, values, prefix, a)


def _anti(origin: float, step: int, n: int, mean: float, values: Row, prefix: Row, x: float) -> float:
    u = (x - origin) / step
    if u <= 0:
        return mean * (x - origin)
    if u >= n:
        return float(prefix[n] + mean * (x - origin - n * step))
    i = int(u)
    return float(prefix[i] + values[i] * (x - origin - i * step))
