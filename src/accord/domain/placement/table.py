"""A decision's standing table (:mod:`accord.domain.placement.pick`'s rows) in scalar form,
for a loop that keeps the loads, the time and each job's window itself: the simulator's
compiled kernel. What a requester's decisions share on a day under a context (quota left
per pool, the reciprocity gap, the weighted cost and border terms, the agreements that
apply, the forecasts) comes from the domain's own code as arrays (:func:`requester_terms`,
:func:`forecast_arrays`: ``_Placer._limits``, ``_Index.hosts`` and ``agreements``, the
context's :class:`~accord.domain.placement.forecast.ZoneForecast`); what a single job adds
(its GPU-hours against the quota, the reciprocity term of its size, the later agreement
that may still take it, the best start in its window per zone) is :func:`fill_table`,
written with plain loops over numbers and arrays so it can be compiled (numba) as
:func:`~accord.domain.placement.pick.pick` is.

The scalar facts come from :mod:`~accord.domain.placement.scalar`, which the broker's
``_Placer`` calls too: the quota's slack and the GPU-hours it admits, the reciprocity term
of a move, the terms of a pool abroad under a later agreement, the start window and the
best start in it. The per-pool loops below restate, for all pools at once, what
``_Placer._make_rules``, ``_misfits`` and ``_make_fixed`` compute with numpy (interpreted,
these loops would cost the broker several times its decision time), operation for
operation (the same float results); ``tests/sim/test_choose.py`` checks them against
:func:`~accord.domain.placement.place.choose`. Projects' allocations are not modelled here
(the simulator has none).

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import HOUR_S
from accord.domain.federation.model import Federation, QuotaPeriod
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.index import _index
from accord.domain.placement.pick import BEST, KW_BEST, KW_NOW, OK, PART, REF, SPEND, START, WAIT_SCALE
from accord.domain.placement.scalar import (
    _abroad_part,
    _anti,
    _cost,
    _covers,
    _integral,
    _most,
    _moved,
    _slots,
    best_start,
)
from accord.domain.placement.scoring import _Placer

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

# rows of a requester's terms (:func:`requester_terms`), one column per pool
MOST, GAP_RATE, CHARGED, WAITS, FIXED, HOME, RATE0, RATE, FIRST, FLEX, KW, ZONE, HOST = range(13)
LIMIT_ROWS = 13
# fields of an agreement that applies at a pool abroad (in file order), for the quota's slow path
ALT_ID, ALT_LEFT, ALT_GAP, ALT_RENEW, ALT_FLEX = range(5)
ALT_FIELDS = 5
# the weights and flags of a context (:func:`weights`)
W_EMISSIONS, W_RECIPROCITY, W_BORDER, W_COST, W_SLOT, W_CONTEXT, W_FORECASTS, W_GAPS = range(8)
# per zone of :func:`forecast_arrays`: has a forecast, origin (epoch s), slots, mean
F_HAS, F_ORIGIN, F_N, F_MEAN = range(4)


def requester_terms(spec: JobSpec, federation: Federation, at: datetime, context: bool,
                    ) -> tuple[Floats, Floats, Ints]:
    """For ``spec``'s partner, theme and sector on ``at``'s day, with or without a
    placement context: the per-pool rows above (agreements as their index in
    ``federation.agreements``, -1: none; partners as their index in ``federation.partners``)
    but the quota and balance ones, which :func:`fill_limits` adds per context; the
    agreements that apply at each pool abroad, in file order, with whether their quota
    renews and their flexibility, and how many per pool. The weighted cost and border terms
    are ``_Placer._limits``'s own. Raises nothing."""
    ctx = PlacementContext(weights=federation.placement) if context else None
    p = _Placer(spec, federation, {}, at, ctx)
    ix, h, limits = p.ix, p.hosts, p._limits()
    ids, partners = [a.id for a in federation.agreements], [x.id for x in federation.partners]
    n = len(ix.pools)
    out = np.zeros((LIMIT_ROWS, n), np.float64)
    out[CHARGED], out[WAITS], out[FIXED], out[HOME] = limits.charged, limits.wait_scale, limits.fixed, h.home
    out[RATE0], out[RATE], out[KW], out[ZONE] = h.rate_or_0, h.rate, ix.kw, ix.zone
    out[FIRST] = [-1 if a is None else ids.index(a.id) for a in h.first]
    out[FLEX] = [0.0 if a is None else a.default_flexibility_hours for a in h.first]
    out[HOST] = [partners.index(x.partner) if x.partner in partners else -1 for x in ix.pools]
    most = max(1, max((len(v) for v in ix.between.values()), default=1))
    alts, count = np.zeros((n, most, ALT_FIELDS), np.float64), np.zeros(n, np.int64)
    requester = spec.partner or ""
    for k, pool in enumerate(ix.pools):
        found = ix.agreements(requester, pool.partner, spec.theme, p.day, spec.sector)[0]
        for j, a in enumerate(found):
            quota = a.quota(requester, pool.partner)
            renew = quota is not None and quota.per is not QuotaPeriod.AGREEMENT
            alts[k, j] = (ids.index(a.id), math.inf, 0.0, float(renew), a.default_flexibility_hours)
        count[k] = len(found)
    return out, alts, count


def quota_arrays(federation: Federation, context: PlacementContext | None) -> tuple[Floats, Floats]:
    """The context's quota left per (agreement, requester, host) (+inf where none is
    known) and balances per (agreement, partner) (0 where none), by index. Raises nothing."""
    ids, partners = [a.id for a in federation.agreements], [x.id for x in federation.partners]
    quota = np.full((max(1, len(ids)), max(1, len(partners)), max(1, len(partners))), math.inf)
    balance = np.zeros((max(1, len(ids)), max(1, len(partners))))
    if context is not None:
        for (a, r, h), left in context.quota_left.items():
            if a in ids and r in partners and h in partners:
                quota[ids.index(a), partners.index(r), partners.index(h)] = left
        for a, net in context.balances.items():
            for x, v in net.items():
                if a in ids and x in partners:
                    balance[ids.index(a), partners.index(x)] = v
    return quota, balance


def fill_limits(lim: Floats, alts: Floats, count: Ints, quota: Floats, balance: Floats, requester: int,
                context: bool) -> None:
    """``_Placer._limits``' quota and reciprocity rows of one requester (index
    ``requester``, -1: not a partner) into ``lim`` (``MOST``, ``GAP_RATE``), and the quota
    left and gap of every agreement that applies abroad into ``alts``. Raises nothing."""
    for k in range(lim.shape[1]):
        home, a, rate, host = lim[HOME, k] == 1.0, int(lim[FIRST, k]), lim[RATE, k], int(lim[HOST, k])
        most, gap = (math.inf if home else -math.inf), 0.0
        if not context:
            most = math.inf if home or a >= 0 else -math.inf
        elif a >= 0 and not math.isnan(rate):
            most = _most(quota[a, requester, host] if requester >= 0 and host >= 0 else math.inf, rate)
            gap = _gap(balance, a, requester, host)
        lim[MOST, k] = most
        lim[GAP_RATE, k] = gap / rate if context and rate > 0 else gap
        for j in range(count[k]):
            aj = int(alts[k, j, ALT_ID])
            known = context and requester >= 0 and host >= 0
            alts[k, j, ALT_LEFT] = quota[aj, requester, host] if known else math.inf
            alts[k, j, ALT_GAP] = _gap(balance, aj, requester, host) if context else 0.0


def _gap(balance: Floats, a: int, requester: int, host: int) -> float:
    """The host's net units under agreement ``a`` minus the requester's."""
    return (balance[a, host] if host >= 0 else 0.0) - (balance[a, requester] if requester >= 0 else 0.0)


def eligible(spec: JobSpec, federation: Federation) -> Bools:
    """Per pool, whether the job's shape allows it (site, model, size, residency, inputs).
    Raises nothing."""
    return _index(federation).eligible(spec)[0].copy()


def weights(federation: Federation, context: bool, forecasts: Bools) -> Floats:
    """The weights and flags :func:`fill_table` reads (see ``W_*``), with or without a
    context whose zones (in placement's order) have a forecast where ``forecasts`` is
    true. Raises nothing."""
    w = federation.placement
    some = context and bool(forecasts.any())
    gaps = not some or not bool(forecasts.all())
    return np.array([w.emissions, w.reciprocity, w.border, w.cost, w.slot_s, context, some, gaps], np.float64)


def zones(federation: Federation) -> tuple[str, ...]:
    """The grid zones of the federation's pools, in placement's order. Raises nothing."""
    return _index(federation).zones


def forecast_arrays(federation: Federation, context: PlacementContext | None,
                    ) -> tuple[Floats, Floats, Floats]:
    """Per zone of the federation (in placement's order): (has, origin, slots, mean), the
    values and the running integrals of the context's forecast. Raises nothing."""
    fcs = [context.forecasts.get(z) if context is not None else None for z in zones(federation)]
    m = max((len(f.values) for f in fcs if f is not None), default=1)
    info = np.zeros((len(fcs), 4), np.float64)
    values, prefix = np.zeros((len(fcs), m), np.float64), np.zeros((len(fcs), m + 1), np.float64)
    for z, f in enumerate(fcs):
        if f is not None:
            info[z] = (1.0, f.origin_s, len(f.values), f._mean)
            values[z, :len(f.values)] = f.values
            prefix[z, :len(f.values) + 1] = f._prefix
    return info, values, prefix


def fill_table(gpus: int, d: int, s0: float, deadline: float, elig: Bools, lim: Floats, alts: Floats,
               count: Ints, w: Floats, fz: Floats, fv: Floats, fp: Floats, table: Floats, agreement: Ints,
               transient: Bools) -> None:
    """The standing table of a job of ``gpus`` GPUs and ``d`` s requested, first start
    ``s0``, ``deadline`` (epoch s; NaN: none) into ``table``; the agreement it would run
    under per pool into ``agreement`` (-1: at home or none) and, for pools refused abroad,
    whether the refusal may pass later into ``transient``. Raises nothing."""
    gh = gpus * d / HOUR_S
    for k in range(lim.shape[1]):
        agreement[k] = int(lim[FIRST, k])
        transient[k] = False
        ok = gh <= lim[MOST, k] and elig[k]
        recip = lim[GAP_RATE, k] * (1.0 / gh) + 1.0
        recip = min(max(recip, -1.0), 1.0) * lim[CHARGED, k]
        table[PART, k] = w[W_RECIPROCITY] * recip + lim[FIXED, k]
        if elig[k] and not ok and lim[HOME, k] == 0.0:
            ok = _misfit(k, gh, lim, alts, count, w, table, agreement, transient)
        table[OK, k] = 1.0 if ok else 0.0
        table[WAIT_SCALE, k] = lim[WAITS, k]
    _when(gpus, d, s0, deadline, lim, alts, count, agreement, w, fz, fv, fp, table)


def _misfit(k: int, gh: float, lim: Floats, alts: Floats, count: Ints, w: Floats, table: Floats,
            agreement: Ints, transient: Bools) -> bool:
    """``_find_abroad``: the first agreement at pool ``k`` whose quota left covers the job
    (then its reciprocity term; True), else whether the refusal may pass (False)."""
    rate, renew = (lim[RATE, k] if w[W_CONTEXT] == 1.0 else 0.0), False
    for j in range(count[k]):
        if math.isnan(rate):
            continue
        units = gh * rate
        if _covers(units, alts[k, j, ALT_LEFT]):
            recip = _moved(alts[k, j, ALT_GAP], units)
            table[PART, k] = _abroad_part(recip, w[W_RECIPROCITY], w[W_BORDER], w[W_COST], lim[RATE0, k])
            agreement[k] = int(alts[k, j, ALT_ID])
            return True
        renew = renew or alts[k, j, ALT_RENEW] == 1.0
    transient[k] = renew
    return False


def _when(gpus: int, d: int, s0: float, deadline: float, lim: Floats, alts: Floats, count: Ints,
          agreement: Ints, w: Floats, fz: Floats, fv: Floats, fp: Floats, table: Floats) -> None:
    """``_starts`` and the rest of ``_make_fixed``: per pool the run's ∫ intensity now, the
    lowest in its window and its start, the reference rows and the emissions rows."""
    for k in range(lim.shape[1]):
        now, low, start = math.nan, math.nan, s0
        z = int(lim[ZONE, k])
        if w[W_CONTEXT] == 1.0 and w[W_FORECASTS] == 1.0 and fz[z, F_HAS] == 1.0:
            slots = _slots(d, s0, deadline, _flex(k, lim, alts, count, agreement), w[W_EMISSIONS], w[W_SLOT])
            now, low, start = best_start(fz[z, F_ORIGIN], int(w[W_SLOT]), int(fz[z, F_N]), fz[z, F_MEAN],
                                         fv[z], fp[z], s0, d, slots)
        ok = table[OK, k] == 1.0
        known = ok and not math.isnan(now) if w[W_GAPS] == 1.0 else ok
        if w[W_CONTEXT] == 0.0:
            known = False
        home = known and lim[HOME, k] == 1.0
        table[REF, k] = (1.0 if known else 0.0) + (1.0 if home else 0.0)
        kw_best = lim[KW, k] * low
        unknown = math.isnan(kw_best)
        table[BEST, k] = 0.0 if unknown else kw_best
        table[SPEND, k] = 0.0 if unknown else w[W_EMISSIONS]
        table[KW_NOW, k] = lim[KW, k] * now
        table[START, k] = start
        table[KW_BEST, k] = kw_best


def _flex(k: int, lim: Floats, alts: Floats, count: Ints, agreement: Ints) -> float:
    """The default flexibility (hours) of the agreement the job would run under at pool
    ``k``; -1.0 at home (no agreement)."""
    a = agreement[k]
    if a < 0:
        return -1.0
    if a == int(lim[FIRST, k]):
        return float(lim[FLEX, k])
    for j in range(count[k]):
        if int(alts[k, j, ALT_ID]) == a:
            return float(alts[k, j, ALT_FLEX])
    return -1.0


SCALAR = (fill_table, _misfit, _when, _flex, _slots, best_start, _cost, _integral, _anti, fill_limits, _gap,
          _moved, _most, _covers, _abroad_part)
"""The functions a compiled loop compiles together (they call each other by name)."""


def agreement_ids(federation: Federation) -> Sequence[str]:
    """The ids the agreement indices above stand for. Raises nothing."""
    return [a.id for a in federation.agreements]
