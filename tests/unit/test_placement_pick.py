"""``accord.domain.placement.pick.pick``, choose()'s last step in scalar form, on hand-built standing
tables: the wait term, the reference at home, the emissions term against it, availability,
and the tie rule (earliest start, then the pool's place). ``tests/sim/test_choose.py``
checks it against ``choose`` and ``place`` on random federations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.domain.carbon.series import HOUR_S
from accord.domain.placement.pick import (
    BEST,
    KW_BEST,
    KW_NOW,
    OK,
    PART,
    REF,
    ROWS,
    SPEND,
    START,
    WAIT_SCALE,
    pick,
)
from accord.domain.placement.records import TIE


def table(n: int, **rows: list[float]) -> np.ndarray:
    """A standing table of ``n`` pools: allowed, no forecast, wait scale 1, start 0, unless given."""
    t = np.zeros((ROWS, n))
    t[OK], t[WAIT_SCALE], t[KW_NOW], t[KW_BEST] = 1.0, 1.0, math.nan, math.nan
    names = {"ok": OK, "ref": REF, "wait_scale": WAIT_SCALE, "part": PART, "best": BEST, "spend": SPEND,
             "kw_now": KW_NOW, "start": START, "kw_best": KW_BEST}
    for name, values in rows.items():
        t[names[name]] = values
    return t


def run(t: np.ndarray, free: list[float], queued: list[float] | None = None, up: list[bool] | None = None,
        gpus: int = 4, emissions: float = 1.0) -> tuple[int, list[float]]:
    n = t.shape[1]
    scores = np.empty(n)
    top = pick(gpus, np.array(free, np.float64), np.array(queued or [0.0] * n, np.float64),
               np.array(up or [True] * n, np.bool_), t, emissions, scores)
    return top, scores.tolist()


def test_the_pool_with_the_fewest_gpus_ahead_wins() -> None:
    top, scores = run(table(3, wait_scale=[0.1, 0.1, 0.1]), free=[2, 8, 0], queued=[0, 4, 0])
    assert top == 0
    assert scores == pytest.approx([0.2, 0.4, 0.4])   # (max(4 − free, 0) + queued) × scale


def test_pools_ruled_out_or_down_score_infinity_and_none_left_is_minus_one() -> None:
    top, scores = run(table(3, ok=[0, 1, 1]), free=[8, 0, 8], up=[True, True, False])
    assert top == 1 and scores[0] == scores[2] == math.inf
    assert run(table(2, ok=[0, 1]), free=[8, 8], up=[True, False])[0] == -1


def test_the_emissions_term_is_against_the_best_home_pool_with_a_forecast() -> None:
    # pool 0 at home (ref 2), pool 1 abroad (ref 1) with the lower base: the reference is
    # still the home pool; pool 1's run, half as dirty, then wins on emissions
    kw_now = [2.0 * HOUR_S, 1.0 * HOUR_S]
    t = table(2, ref=[2, 1], part=[0.5, 0.2], best=kw_now, spend=[1.0, 1.0], kw_now=kw_now)
    top, scores = run(t, free=[8, 8], gpus=1, emissions=1.0)
    c = 1 * 1.0 / HOUR_S / (1 * kw_now[0] / HOUR_S)      # against the home pool's 2 g
    assert scores == [kw_now[0] * c - 1.0 + 0.5, kw_now[1] * c - 1.0 + 0.2]   # [0.5, -0.3]
    assert top == 1
    t[REF, 0] = 0.0   # no forecast at home: the reference is the best pool with one
    c = 1 * 1.0 / HOUR_S / (1 * kw_now[1] / HOUR_S)      # against pool 1's 1 g
    assert run(t, free=[8, 8], gpus=1)[1] == [kw_now[0] * c - 1.0 + 0.5, kw_now[1] * c - 1.0 + 0.2]


def test_without_a_reference_or_weight_only_the_base_counts() -> None:
    t = table(2, ref=[0, 0], part=[1.0, 0.5], best=[0.0, 9.0], spend=[1.0, 1.0])
    assert run(t, free=[8, 8])[1] == [1.0, 0.5]
    t[REF], t[KW_NOW] = 2.0, 3600.0
    assert run(t, free=[8, 8], emissions=0.0)[1] == [1.0, 0.5]


def test_equal_scores_go_to_the_earliest_start_then_the_first_pool() -> None:
    t = table(3, part=[0.5, 0.5 + TIE / 2, 0.5], start=[200.0, 100.0, 100.0])
    assert run(t, free=[8, 8, 8])[0] == 1
    t[PART, 1] = 0.5 + 3 * TIE
    assert run(t, free=[8, 8, 8])[0] == 2
