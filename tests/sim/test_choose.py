"""The simulator's fast path, ``placement.choose``, decides exactly as ``place()``: the same
verdict, pool, start and agreement on random federations, loads, quotas and forecasts (the
cases of the brute-force reference test), with and without a context; and the simulator's
kernel, from the domain's terms as arrays and the standing table in scalar form
(``placement.table``), decides exactly as ``choose``."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

import numpy as np
from hypothesis import assume, given, settings

from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement import table
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.pick import KW_BEST, OK, ROWS, START, pick
from accord.domain.placement.place import choose, place, pool_keys, standing_terms
from accord.domain.placement.records import TIE, PoolLoad, Verdict
from tests.unit.test_placement_reference import cases


def _arrays(fed: Federation, loads: dict[tuple[str, str], PoolLoad]) -> tuple[np.ndarray, ...]:
    keys = pool_keys(fed)
    sizes = {(s.id, p.id): p.gpus for s in fed.sites for p in s.pools}
    got = [loads.get(k) for k in keys]
    return (np.array([x.free_gpus if x else sizes[k] for x, k in zip(got, keys, strict=True)], np.float64),
            np.array([x.queued_gpus if x else 0 for x in got], np.float64),
            np.array([x.available if x else True for x in got], np.bool_))


@settings(max_examples=300, deadline=None)
@given(cases())
def test_choose_agrees_with_place(
        case: tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime, PlacementContext],
) -> None:
    spec, fed, loads, at, ctx = case
    free, queued, available = _arrays(fed, loads)
    for context in (ctx, None):
        d = place(spec, fed, loads, at, context=context)
        c = choose(spec, fed, free, queued, available, at, context=context)
        assert c.verdict is d.verdict
        if d.chosen is None:
            assert c.pool == -1
            continue
        assert pool_keys(fed)[c.pool] == (d.chosen.site, d.chosen.pool)
        assert c.start_s == d.chosen.start.timestamp() if d.chosen.start else True
        assert (c.agreement.id if c.agreement else None) == d.chosen.agreement
        if d.chosen.emissions_g is not None:
            assert c.emissions_g is not None
            assert abs(c.emissions_g - d.chosen.emissions_g) <= 1e-9 * d.chosen.emissions_g


def _from_standing(spec: JobSpec, fed: Federation, free: np.ndarray, queued: np.ndarray,
                   available: np.ndarray, at: datetime) -> tuple[Verdict, int]:
    """choose()'s answer without a context, worked out as standing_terms() says it is."""
    st = standing_terms(spec, fed, at)
    up = st.allowed & available
    if not up.any():
        down = bool((st.allowed & ~available).any()) or bool(st.transient.any())
        return (Verdict.WAIT if down else Verdict.REJECT), -1
    score = np.where(up, np.maximum(spec.gpus - free, 0.0) + queued, np.inf) * st.wait_scale + st.part
    score[~up] = np.inf
    return Verdict.PLACE, int(np.flatnonzero(score <= score.min() + TIE)[0])


@settings(max_examples=300, deadline=None)
@given(cases())
def test_standing_terms_and_the_loads_give_chooses_answer(
        case: tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime, PlacementContext],
) -> None:
    """What the simulator's compiled loop relies on (``accord.sim.native``)."""
    spec, fed, loads, at, _ = case
    free, queued, available = _arrays(fed, loads)
    c = choose(spec, fed, free, queued, available, at)
    assert (c.verdict, c.pool) == _from_standing(spec, fed, free, queued, available, at)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_pick_chooses_what_choose_chooses(
        case: tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime, PlacementContext],
) -> None:
    """choose()'s last step in scalar form (what the simulator compiles) gives choose()'s
    Choice, field for field, with and without a context."""
    spec, fed, loads, at, ctx = case
    free, queued, available = _arrays(fed, loads)
    for context in (ctx, None):
        want = choose(spec, fed, free, queued, available, at, context=context)
        got = choose(spec, fed, free, queued, available, at, context=context, pick=pick)
        assert got == want


def _from_table(spec: JobSpec, fed: Federation, free: np.ndarray, queued: np.ndarray, available: np.ndarray,
                at: datetime, ctx: PlacementContext | None) -> tuple[Verdict, int, float, int, float]:
    """choose()'s answer worked out as the simulator's loop does: the domain's terms as
    arrays, the standing table in scalar form (``placement.table``), then ``pick``."""
    if ctx is not None:
        fed = replace(fed, placement=ctx.weights)
    lim, alts, count = table.requester_terms(spec, fed, at, ctx is not None)
    quota, balance = table.quota_arrays(fed, ctx)
    ids = [p.id for p in fed.partners]
    requester = ids.index(spec.partner) if spec.partner in ids else -1
    table.fill_limits(lim, alts, count, quota, balance, requester, ctx is not None)
    fz, fv, fp = table.forecast_arrays(fed, ctx)
    w = table.weights(fed, ctx is not None, fz[:, 0] == 1.0)
    n = len(free)
    rows, agreement, transient = np.zeros((ROWS, n)), np.zeros(n, np.int64), np.zeros(n, np.bool_)
    s0 = at.timestamp()
    deadline = spec.deadline.timestamp() if spec.deadline is not None else math.nan
    table.fill_table(spec.gpus, spec.time_limit_s, s0, deadline, table.eligible(spec, fed), lim, alts, count,
                     w, fz, fv, fp, rows, agreement, transient)
    top = pick(spec.gpus, free, queued, available, rows, float(w[table.W_EMISSIONS]), np.empty(n))
    if top < 0:
        wait = bool(((rows[OK] == 1.0) & ~available).any() or transient.any())
        return (Verdict.WAIT if wait else Verdict.REJECT), -1, s0, -1, math.nan
    start = float(rows[START, top]) if ctx is not None else s0
    grams = spec.gpus * float(rows[KW_BEST, top]) / 3600
    return (Verdict.DEFER if start > s0 else Verdict.PLACE), top, start, int(agreement[top]), grams


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_standing_table_in_scalar_form_gives_chooses_answer(
        case: tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime, PlacementContext],
) -> None:
    """What the simulator's loop decides with (``placement.table.fill_table`` and the terms
    it is fed, then ``pick``) is choose()'s Choice, with and without a context: verdict,
    pool, start, agreement and estimate (jobs as the simulator makes them: no earliest start,
    no project allocations)."""
    spec, fed, loads, at, ctx = case
    assume(spec.earliest_start is None and spec.project not in ctx.allocations)
    free, queued, available = _arrays(fed, loads)
    ids = [a.id for a in fed.agreements]
    for context in (ctx, None):
        want = choose(spec, fed, free, queued, available, at, context=context)
        verdict, pool, start, agreement, grams = _from_table(spec, fed, free, queued, available, at, context)
        assert (verdict, pool) == (want.verdict, want.pool)
        if pool < 0:
            continue
        assert agreement == (ids.index(want.agreement.id) if want.agreement is not None else -1)
        assert start == want.start_s
        assert (math.isnan(grams) and want.emissions_g is None) or grams == want.emissions_g
