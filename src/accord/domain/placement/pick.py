"""The last step of :func:`accord.domain.placement.place.choose` in scalar form: from the loads and
a decision's standing table (what the loads do not change, one row per term, one column per
pool), the winning pool. Written with plain loops over numbers and arrays only, so the
simulator can compile this very function (numba) and call it for every decision, where
``choose`` would spend most of its time in numpy calls on arrays of a few pools.

The arithmetic is ``_Placer._score`` and ``_Placer._top``'s, operation for operation (the
same float results): the wait term, the reference (the best pool at home with a forecast,
else the best with one), the emissions term against it, and the tie rule. A property test
checks ``choose(..., pick=pick)`` against ``choose`` and ``place`` on random cases.

Pure: no I/O; internal to :mod:`accord.domain.placement`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import HOUR_S
from accord.domain.placement.records import TIE

# the rows of a standing table (``_Fixed.table``)
OK = 0          # 1.0 where the job may run (every hard constraint but availability), else 0.0
REF = 1         # 2.0 at home with a forecast, 1.0 abroad with one, 0.0 elsewhere (reference candidates)
WAIT_SCALE = 2  # the wait weight per GPU ahead
PART = 3        # the weighted reciprocity, cost and border terms
BEST = 4        # kW per GPU × the lowest ∫ intensity in the window (0 without a forecast)
SPEND = 5       # the emissions weight where there is a forecast, else 0
KW_NOW = 6      # kW per GPU × ∫ intensity of the run started at s0 (NaN without a forecast)
START = 7       # the start of the lowest ∫ (epoch s; s0 without a forecast)
KW_BEST = 8     # kW per GPU × the lowest ∫ (NaN without a forecast): the estimate's base
ROWS = 9

Floats = NDArray[np.float64]
Picker = Callable[[int, Floats, Floats, NDArray[np.bool_], Floats, float, Floats], int]
""":func:`pick`'s signature: the function itself, or it compiled."""


def pick(gpus: int, free: Floats, queued: Floats, available: NDArray[np.bool_], table: Floats,
         emissions: float, scores: Floats) -> int:
    """The pool ``choose`` picks over the loads, or -1 when no allowed pool is available
    (then the caller's slow path says WAIT or REJECT). ``scores`` (one per pool) receives
    every pool's score (+inf where ruled out). Raises nothing."""
    n = free.shape[0]
    home = False
    for k in range(n):
        if table[REF, k] == 2.0 and available[k]:
            home = True
            break
    want = 2.0 if home else 1.0
    ref, low, allowed = -1, math.inf, False
    for k in range(n):
        wait = gpus - free[k]
        if wait < 0.0:
            wait = 0.0
        base = (wait + queued[k]) * table[WAIT_SCALE, k] + table[PART, k]
        scores[k] = base
        if table[OK, k] == 1.0 and available[k]:
            allowed = True
            if table[REF, k] >= want and base < low:
                ref, low = k, base
    if not allowed:
        return -1
    c, scaled = 0.0, False   # scaled: the emissions term counts (against the reference's grams)
    if ref >= 0:
        ref_g = gpus * table[KW_NOW, ref] / HOUR_S
        if ref_g != 0.0 and emissions > 0:
            c, scaled = gpus * emissions / HOUR_S / ref_g, True
    top, least = -1, math.inf
    for k in range(n):
        if table[OK, k] == 1.0 and available[k]:
            score = table[BEST, k] * c - table[SPEND, k] + scores[k] if scaled else scores[k]
        else:
            score = math.inf
        scores[k] = score
        if top < 0 or score < least:
            top, least = k, score
    bound = least + TIE
    for k in range(n):   # scores within TIE are equal: the earliest start, then id order
        if k != top and scores[k] <= bound and (table[START, k] < table[START, top]
                                                 or (table[START, k] == table[START, top] and k < top)):
            top = k
    return top
