"""How one placement decision is made (internal to :mod:`accord.domain.placement`):
:class:`_Placer` applies the hard constraints (the job's shape, agreements, quota,
allocations, availability), scores every pool term by term with numpy, finds the best start
per grid zone in the job's window and picks the winner, both for
:func:`~accord.domain.placement.place.place` (a full :class:`Decision`, with its alternatives,
reference and notes) and for :func:`~accord.domain.placement.place.choose` (a bare
:class:`Choice`). :func:`_reciprocity` is the reciprocity term of one move.

The scalar arithmetic it shares with the simulator's compiled kernel (the quota's slack, the
reciprocity of a move, the terms abroad under a later agreement, the start window, the best
start per zone) is declared once, in :mod:`accord.domain.placement.scalar`, and called
from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import HOUR_S
from accord.domain.federation.model import Agreement, Federation, QuotaPeriod
from accord.domain.jobs.model import JobSpec
from accord.domain.placement import scalar
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.index import Bools, Floats, _Hosts, _index, _Pool, _remember
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
    Picker,
)
from accord.domain.placement.records import (
    ALTERNATIVES,
    TIE,
    Candidate,
    Choice,
    Decision,
    PoolLoad,
    Rejection,
    Verdict,
    _short,
    _utc,
)

# ─── internals ───────────────────────────────────────────────────────────────────────────
#
# Speed (docs/benchmarks.md): a decision weighs every pool of the federation, so the terms
# are computed for all pools at once with numpy, over arrays in federation order; a pool
# that fails a hard constraint just gets an infinite score. What depends only on the job's
# shape (which pools it may ever use), on the partners, theme and day (which agreements
# apply, exchange rates) is cached per federation; quota left, reciprocity gaps and the best
# start per (zone, window) are cached per context, which every job of a pass shares; the
# loads are turned into arrays again only when they changed.


@dataclass(frozen=True, slots=True)
class _Limits:
    """Per pool, for one context and (requester, theme, day): quota left under the first
    agreement, the reciprocity gap (host's net − requester's) and the weighted cost and
    border terms."""

    most: Floats       # the most GPU-hours the quota admits (+inf at home, -inf: see the slow path)
    gap_rate: Floats   # gap / rate: the reciprocity term is clip(1 + gap_rate / GPU-hours, -1, 1)
    charged: Floats    # 1.0 where the reciprocity term counts (abroad, at a positive rate, in context)
    wait_scale: Floats  # wait weight / pool size
    fixed: Floats      # weighted cost and border terms


class _Scored(NamedTuple):
    """A decision's scoring, shared by :func:`place` and :func:`choose`."""

    ok: Bools          # the pools that passed every hard constraint
    wait: Floats       # weighted wait term per pool
    recip: Floats      # reciprocity term per pool (unweighted)
    rows: Floats       # per pool: ∫ at s0, lowest ∫, its start, kW per GPU × lowest ∫ (see _starts)
    score: Floats      # the total score per pool at its best start; +inf where ruled out
    ref: int | None    # the reference pool (running now at home), if any
    ref_g: float | None  # its estimated emissions, g
    rejected: tuple[Rejection, ...]


class _Fixed(NamedTuple):
    """The part of a decision the loads do not change (see ``_Placer._fixed``)."""

    ok: Bools          # pools allowed before availability: shape, agreements, quota, allocations
    allowed: int       # how many
    recip: Floats      # reciprocity term per pool (unweighted)
    part: Floats       # weighted reciprocity, cost and border terms
    wait_scale: Floats  # wait weight / pool size
    static: tuple[Rejection, ...]                 # pools the job's shape rules out
    refused: tuple[tuple[int, Rejection], ...]    # (pool, why) refused abroad by agreement or quota
    agreements: Sequence[Agreement | None]        # the agreement per pool abroad
    gaps: bool         # whether some zone may lack a forecast
    rows: Floats | None  # _starts() (None without a context)
    known: Bools       # allowed pools with a forecast (reference candidates)
    home: Bools        # ... of those, at home
    best: Floats       # kW per GPU × lowest ∫, 0 where there is no forecast
    spend: Floats      # the emissions weight where there is a forecast, else 0
    block: Floats      # 0 where allowed, +inf elsewhere (added to the scores)
    candidates: Floats  # 0 where the reference may be (home pools with a forecast, else any), +inf elsewhere
    table: Floats      # the same, one row per term, for :func:`~accord.domain.placement.pick.pick`


class _Rules(NamedTuple):
    """The part of :class:`_Fixed` that the first start does not change either: what the
    job's shape, partner, theme, sector, allocations, day and run time allow, and the
    terms that follow (cached per context however the pass times move)."""

    ok: Bools
    recip: Floats
    part: Floats
    wait_scale: Floats
    static: tuple[Rejection, ...]
    refused: tuple[tuple[int, Rejection], ...]
    agreements: tuple[Agreement | None, ...]
    block: Floats


class _Placer:
    """One placement decision (a class only to share its inputs between small steps)."""

    def __init__(self, spec: JobSpec, fed: Federation, loads: Mapping[tuple[str, str], PoolLoad],
                 at: datetime, context: PlacementContext | None,
                 arrays: tuple[Floats, Floats, Bools] | None = None) -> None:
        self.spec, self.fed, self.loads, self.at, self.ctx = spec, fed, loads, at, context
        self.arrays = arrays
        self.ix = _index(fed)
        self.day = at.date()
        self.w = context.weights if context else fed.placement
        self.s0 = max(at, spec.earliest_start or at) if context else at
        self.s0_s = self.s0.timestamp()
        self.at_s = self.s0_s if self.s0 is at else at.timestamp()
        self.gpu_hours = spec.gpus * spec.time_limit_s / HOUR_S
        self.agreements: Sequence[Agreement | None] = ()   # per pool; set by _score (a list once changed)
        self.gaps = True  # whether some zone may lack a forecast (set by _starts)

    @cached_property
    def hosts(self) -> _Hosts:
        """Per pool: home or not, the agreement that applies abroad, rates (for the job's
        partner, theme, sector and day); only worked out when the cache misses."""
        return self.ix.hosts(self.spec.partner, self.spec.theme, self.day, self.spec.sector)

    def decide(self) -> Decision:
        scored = self._score()
        if not isinstance(scored, _Scored):
            return Decision(scored[0], None, (), scored[1], self.at)
        return self._choose(scored)

    def quick(self, pick: Picker | None = None) -> Choice:
        """The fast path: the same scoring and choice as :meth:`decide`, without building
        the decision's records (explanation, alternatives, reference); with ``pick``
        (:func:`~accord.domain.placement.pick.pick`, or that function compiled), the
        winner comes from it over the standing table."""
        if pick is not None:
            fx = self._fixed()
            free, queued, available = self.arrays if self.arrays is not None else self.ix.loads(self.loads)
            top = pick(self.spec.gpus, free, queued, available, fx.table, self.w.emissions,
                       np.empty(len(free), np.float64))
            if top >= 0:
                start, kw_best = fx.table.item(START, top), fx.table.item(KW_BEST, top)
                grams = None if math.isnan(kw_best) else self.spec.gpus * kw_best / HOUR_S
                verdict = Verdict.DEFER if start > self.at_s else Verdict.PLACE
                return Choice(verdict, top, start, fx.agreements[top], grams)
        scored = self._score()
        if not isinstance(scored, _Scored):
            return Choice(scored[0], -1, self.s0_s, None, None)
        top = self._top(scored)
        _, best, start, kw_best = scored.rows[:, top].tolist()
        grams = None if math.isnan(best) else self.spec.gpus * kw_best / HOUR_S
        verdict = Verdict.DEFER if start > self.at_s else Verdict.PLACE
        return Choice(verdict, top, start, self.agreements[top], grams)

    def _score(self) -> _Scored | tuple[Verdict, tuple[Rejection, ...]]:
        """Every pool's score (+inf where ruled out) and what the choice needs; or, when
        no pool is allowed, WAIT or REJECT with the rejections. What the loads do not change
        comes from :meth:`_fixed`; this adds the wait term, availability and the reference."""
        ix, spec, w = self.ix, self.spec, self.w
        fx = self._fixed()
        self.agreements, self.gaps = fx.agreements, fx.gaps
        free, queued, available = self.arrays if self.arrays is not None else ix.loads(self.loads)
        wait = np.subtract(spec.gpus, free)
        np.maximum(wait, 0.0, out=wait)
        wait += queued
        wait *= fx.wait_scale   # the weighted wait term: pool-fulls of GPUs ahead of the job
        base = wait + fx.part
        rows = fx.rows
        if rows is None:   # no context: start now, no forecast
            rows = np.full((4, len(ix.pools)), math.nan)
            rows[2] = self.s0_s
        if np.count_nonzero(available) == len(available) and not fx.refused:   # the common case
            if not fx.allowed:
                return (Verdict.REJECT, fx.static)
            ok, block, candidates = fx.ok, fx.block, fx.candidates
            rejected = fx.static
        else:
            ok = fx.ok & available
            down = [(k, self._down(k)) for k in np.flatnonzero(fx.ok & ~available).tolist()]
            rejected = (*fx.static, *[r for _, r in sorted([*fx.refused, *down], key=lambda x: x[0])])
            if not ok.any():
                verdict = Verdict.WAIT if any(r.transient for r in rejected) else Verdict.REJECT
                return verdict, rejected
            block = np.where(ok, 0.0, math.inf)
            known, home = fx.known & available, fx.home & available
            candidates = np.where(home if home.any() else known, 0.0, math.inf)
        # the reference: running now at home (the best home pool on the other terms), else at
        # the best pool with a forecast; None without any forecast
        masked = base + candidates
        ref: int | None = int(masked.argmin())   # the first of equals: pools are in id order
        if masked[ref] == math.inf:
            ref = None
        ref_g = spec.gpus * float(ix.kw[ref] * rows[0, ref]) / HOUR_S if ref is not None else None
        if ref_g and w.emissions > 0:   # zones without a forecast get no emissions term (spend 0)
            score = fx.best * (spec.gpus * w.emissions / HOUR_S / ref_g)
            score -= fx.spend
            score += base   # = base + emissions term, as place() has always added them
            score += block
        else:
            score = base + block
        return _Scored(ok, wait, fx.recip, rows, score, ref, ref_g, rejected)

    def _fixed(self) -> _Fixed:
        """What the decision needs that the loads do not change, cached per context (or
        federation) by everything it depends on: the job's shape, partner, theme, sector,
        project allocations, day, run time, first start and window."""
        spec, held = self.spec, self._held()
        window = self._slots(None) if spec.deadline is not None else None
        key = ("fixed", self.ix, spec.site, spec.gpu_model, spec.gpus, spec.data_residency, bool(spec.inputs),
               spec.partner, spec.theme, spec.sector, held, self.day, spec.time_limit_s, window,
               self.s0_s if self.ctx is not None else None)
        return _remember(self.ctx.memo if self.ctx is not None else self.ix.memo, key, self._make_fixed)

    def _make_fixed(self) -> _Fixed:
        ix, w, spec = self.ix, self.w, self.spec
        key = ("rules", ix, spec.site, spec.gpu_model, spec.gpus, spec.data_residency, bool(spec.inputs),
               spec.partner, spec.theme, spec.sector, self._held(), self.day, spec.time_limit_s)
        r = _remember(self.ctx.memo if self.ctx is not None else ix.memo, key, self._make_rules)
        ok, self.agreements = r.ok, r.agreements
        rows = self._starts() if self.ctx is not None else None
        known = ok & ~np.isnan(rows[0]) if rows is not None and self.gaps else ok.copy()
        if rows is None:
            known[:] = False   # no forecast anywhere: no reference
        unknown = np.isnan(rows[3]) if rows is not None else np.ones(len(ix.pools), np.bool_)
        best = np.where(unknown, 0.0, rows[3] if rows is not None else 0.0)
        spend = np.where(unknown, 0.0, w.emissions)
        home = known & self.hosts.home
        table = np.empty((ROWS, len(ix.pools)), np.float64)
        table[OK], table[REF] = ok, known.astype(np.float64) + home
        table[WAIT_SCALE], table[PART], table[BEST], table[SPEND] = r.wait_scale, r.part, best, spend
        if rows is None:
            table[KW_NOW] = table[KW_BEST] = math.nan
            table[START] = self.s0_s
        else:
            table[KW_NOW], table[START], table[KW_BEST] = ix.kw * rows[0], rows[2], rows[3]
        return _Fixed(ok, int(np.count_nonzero(ok)), r.recip, r.part, r.wait_scale, r.static, r.refused,
                      r.agreements, self.gaps, rows, known, home, best, spend, r.block,
                      np.where(home if home.any() else known, 0.0, math.inf), table)

    def _make_rules(self) -> _Rules:
        ix, w = self.ix, self.w
        self.agreements = self.hosts.first
        elig, static = ix.eligible(self.spec)
        limits = self._limits()
        ok = (self.gpu_hours <= limits.most) & elig
        held = self._held()
        if held is not None:   # the project's allocations decide abroad: the slow path checks
            for k, (p, a) in enumerate(zip(ix.pools, self.hosts.first, strict=True)):
                if a is not None and (a.id, p.site.id) not in held:
                    ok[k] = False
        # reciprocity abroad: (|gap + 2u| - |gap|) / 2u for u units = clip(1 + gap / u, -1, 1)
        recip = limits.gap_rate * (1.0 / self.gpu_hours) + 1.0
        recip = np.minimum(np.maximum(recip, -1.0, out=recip), 1.0, out=recip) * limits.charged
        part = w.reciprocity * recip + limits.fixed
        refused: list[tuple[int, Rejection]] = []
        if np.count_nonzero(ok) != len(ix.pools) - len(static):
            self._misfits(np.flatnonzero(elig & ~ok), ok, recip, part, refused)
        return _Rules(ok, recip, part, limits.wait_scale, static, tuple(refused), tuple(self.agreements),
                      np.where(ok, 0.0, math.inf))

    @staticmethod
    def _top(s: _Scored) -> int:
        """The winner: the lowest score; scores within TIE are equal and go to the earliest
        start, then the pool's place in id order (never to float noise below TIE)."""
        sc = s.score
        k = int(sc.argmin())
        near = sc <= sc[k] + TIE
        if np.count_nonzero(near) == 1:
            return k
        st = s.rows[2]
        return min(np.flatnonzero(near).tolist(), key=lambda i: (st[i], i))

    # ── hard constraints abroad: agreements, quota; terms that depend on the host ──
    def _limits(self) -> _Limits:
        ctx, w, h, requester = self.ctx, self.w, self.hosts, self.spec.partner or ""

        def make() -> _Limits:
            n = len(self.ix.pools)
            most, gap = np.where(h.home | (h.has & (ctx is None)), math.inf, -math.inf), np.zeros(n)
            for i, (p, a) in enumerate(zip(self.ix.pools, h.first, strict=True)):
                if a is not None and ctx is not None and not math.isnan(h.rate[i]):
                    left = ctx.quota_left.get((a.id, requester, p.partner), math.inf)
                    most[i] = scalar._most(left, h.rate[i])
                    balance = ctx.balances.get(a.id, {})
                    gap[i] = balance.get(p.partner, 0.0) - balance.get(requester, 0.0)
            if ctx is None:   # the pre-carbon placement: wait and border only
                return _Limits(most, gap, np.zeros(n), w.wait / self.ix.gpus,
                               np.where(h.home, 0.0, w.border))
            return _Limits(most, gap / h.rate_or_1, h.charged, w.wait / self.ix.gpus,
                           w.cost * np.nan_to_num(h.rate) + np.where(h.home, 0.0, w.border))

        memo = ctx.memo if ctx is not None else self.ix.memo
        return _remember(memo, ("limits", self.ix, requester, self.spec.theme, self.spec.sector, self.day, w),
                         make)

    def _misfits(self, misfits: NDArray[np.intp], ok: Bools, recip: Floats, part: Floats,
                 refused: list[tuple[int, Rejection]]) -> None:
        """The slow path for allowed pools the fast test refused abroad: a later agreement
        with quota left (and, when the project is limited, an allocation) may still take one
        (then it is kept, in ``ok``); else the rejection says why."""
        w = self.w
        for k in misfits.tolist():
            p = self.ix.pools[k]
            if self.hosts.home[k]:
                continue
            found = self._abroad(p)
            if isinstance(found[0], str):
                refused.append((k, Rejection(p.site.id, p.pool.id, found[0], bool(found[1]))))
                continue
            if not isinstance(self.agreements, list):
                self.agreements = list(self.agreements)
            self.agreements[k], recip[k] = found
            part[k] = scalar._abroad_part(recip[k], w.reciprocity, w.border, w.cost, self.hosts.rate_or_0[k])
            ok[k] = True

    def _down(self, k: int) -> Rejection:
        """Pool ``k`` is allowed but its site is not answering."""
        p = self.ix.pools[k]
        load = self.loads.get(p.key)
        note = (load.note if load else "") or "backend not answering"
        return Rejection(p.site.id, p.pool.id, f"site unavailable: {note}", transient=True)

    def _abroad(self, p: _Pool) -> tuple[Agreement, float] | tuple[str, bool]:
        """The first agreement whose quota left covers the job at pool ``p`` abroad, with
        the reciprocity term under it; or why none does and whether that may change.
        Cached per context (or federation) and job size: a pass sees the same few often."""
        key = ("abroad", self.ix, self.spec.partner, self.spec.theme, self.spec.sector, self.day, p.partner,
               p.model, self.gpu_hours, self.spec.gpus, self._held(), self._held() and p.site.id)
        return _remember(self.ctx.memo if self.ctx else self.ix.memo, key, lambda: self._find_abroad(p))

    def _held(self) -> frozenset[tuple[str, str]] | None:
        """The (agreement, site) pairs the job's project holds allocations for, or None
        when its project is not limited."""
        return self.ctx.allocations.get(self.spec.project) if self.ctx else None

    def _find_abroad(self, p: _Pool) -> tuple[Agreement, float] | tuple[str, bool]:
        requester, host = self.spec.partner or "", p.partner
        ok, reasons = self.ix.agreements(requester, host, self.spec.theme, self.day, self.spec.sector)
        why, renewable = list(reasons), False
        held = self._held()
        if held is not None:
            why.extend(f"project {self.spec.project} holds no approved allocation under agreement {a.id} "
                       f"at {p.site.id}" for a in ok if (a.id, p.site.id) not in held)
            ok = tuple(a for a in ok if (a.id, p.site.id) in held)
        rate = self.ix.rate(p.model, self.day) if self.ctx is not None else 0.0
        for a in ok:
            quota = a.quota(requester, host)
            assert quota is not None
            if math.isnan(rate):
                why.append(f"no exchange rate for GPU model {p.model} on {self.day.isoformat()}, "
                           f"so agreement {a.id} cannot account the job")
                continue
            units = self.gpu_hours * rate
            left = self.ctx.quota_left.get((a.id, requester, host), math.inf) if self.ctx else math.inf
            if scalar._covers(units, left):
                balance = self.ctx.balances.get(a.id, {}) if self.ctx else {}
                return a, _reciprocity(balance, requester, host, units)
            span = "in total" if quota.per is QuotaPeriod.AGREEMENT else f"this {quota.per.value}"
            why.append(f"agreement {a.id} has {max(left, 0.0):.2f} {self.fed.reference_unit} of "
                       f"{requester}'s quota at {host} left {span}; the job needs about {units:.2f} "
                       f"({self.spec.gpus} GPUs × {self.spec.time_limit_s / HOUR_S:g} h × {rate:g})")
            renewable = renewable or quota.per is not QuotaPeriod.AGREEMENT
        return "; ".join(why), renewable

    # ── when: the window and the best start per zone ──
    def _slots(self, agreement: Agreement | None) -> int:
        """How many slot boundaries after s0 the job may start at (0: start at s0 only), by
        :func:`~accord.domain.placement.scalar._slots`."""
        if self.ctx is None:
            return 0
        deadline = self.spec.deadline.timestamp() if self.spec.deadline is not None else math.nan
        flex = agreement.default_flexibility_hours if agreement is not None else -1.0
        d, step = self.spec.time_limit_s, self.ctx.slot_s
        return scalar._slots(d, self.s0_s, deadline, flex, self.w.emissions, step)

    def _starts(self) -> Floats:
        """Per pool (rows): ∫ intensity (g/kWh·s) of the run started at s0, the lowest ∫
        over its window, that start (epoch seconds), and kW per GPU × the lowest ∫; NaN
        integrals where there is no forecast."""
        n, ctx = len(self.ix.pools), self.ctx
        if ctx is None or not ctx.forecasts:
            return np.array([[math.nan] * n, [math.nan] * n, [self.s0_s] * n, [math.nan] * n])
        self.gaps = _remember(ctx.memo, ("gaps", self.ix),
                              lambda: any(z not in ctx.forecasts for z in self.ix.zones))
        if self.spec.deadline is not None or not any(self.agreements):
            return self._pool_rows(self._slots(None))
        slots = {a: self._pool_rows(self._slots(a)) for a in {*self.agreements, None}}
        return np.array([slots[a][:, k] for k, a in enumerate(self.agreements)]).T

    def _pool_rows(self, slots: int) -> Floats:
        """:meth:`_starts`'s rows for one window (cached per context, as every job of a pass
        has the same s0)."""
        def make() -> Floats:
            rows = self._zone_rows(slots)[self.ix.zone].T
            return np.vstack([rows, self.ix.kw * rows[1]])

        assert self.ctx is not None
        return _remember(self.ctx.memo, ("pools", self.ix, self.s0_s, self.spec.time_limit_s, slots), make)

    def _zone_rows(self, slots: int) -> Floats:
        """Per zone: (∫ at s0, lowest ∫, its start) for ``slots`` later starts (cached per
        context: every job of a pass has the same s0)."""
        ctx, d = self.ctx, self.spec.time_limit_s
        assert ctx is not None

        def make() -> Floats:
            nan = (math.nan, math.nan, self.s0_s)
            return np.array([f.best_start(self.s0_s, d, slots) if (f := ctx.forecasts.get(z)) else nan
                             for z in self.ix.zones], np.float64)

        return _remember(ctx.memo, ("zones", self.ix, self.s0_s, d, slots), make)

    # ── choice ──
    def _choose(self, s: _Scored) -> Decision:
        wait, recip, ref, ref_g = s.wait, s.recip, s.ref, s.ref_g
        now, best, start, _ = s.rows
        order = np.argsort(s.score, kind="stable").tolist()   # equal scores stay in id order
        sc, st = s.score.tolist(), start.tolist()
        low, ties = sc[order[0]], []
        for k in order:
            if sc[k] > low + TIE:
                break
            ties.append(k)
        top = self._top(s)   # the same winner as choose(): earliest start, then id order
        ranked = sorted((k for k in order[:ALTERNATIVES + len(ties)] if k != top and sc[k] < math.inf),
                        key=lambda k: (sc[k], st[k], k))
        rejected = s.rejected

        def candidate(k: int, at_s0: bool = False) -> Candidate:
            cost, begin = (float(now[k]), self.s0_s) if at_s0 else (float(best[k]), st[k])
            return self._candidate(k, float(wait[k]), float(recip[k]), cost, begin, ref_g)

        chosen = candidate(top)
        later = candidate(top, at_s0=True) if st[top] > self.s0_s else None
        reference = None if ref is None else (later or chosen) if ref == top else candidate(ref, at_s0=True)
        alternatives = [reference if k == ref and st[k] == self.s0_s and reference else candidate(k)
                        for k in ranked[:ALTERNATIVES]]
        if later is not None:
            alternatives = sorted([*alternatives[:ALTERNATIVES - 1], later], key=lambda c: c.score)
        verdict = Verdict.DEFER if st[top] > self.at.timestamp() else Verdict.PLACE
        return Decision(verdict, chosen, tuple(alternatives), rejected, self.at, reference,
                        self._notes(top), later if verdict is Verdict.DEFER else None)

    def _candidate(self, k: int, wait: float, recip: float, cost: float, start: float,
                   ref_g: float | None) -> Candidate:
        """``wait`` is weighted already; ``recip`` is not."""
        w, p, a = self.w, self.ix.pools[k], self.agreements[k]
        border = w.border if a is not None else 0.0
        if self.ctx is None:
            terms: tuple[tuple[str, float], ...] = (("wait", round(wait, 6)), ("border", border))
            return Candidate(p.site.id, p.pool.id, None if a is None else a.id, terms, self.s0)
        grams = self.spec.gpus * p.kw_per_gpu * cost / HOUR_S if not math.isnan(cost) else None
        emissions = w.emissions * (grams / ref_g - 1.0) if grams is not None and ref_g and w.emissions > 0 \
            else 0.0
        # + 0.0: a term that is off (weight 0, or nothing charged) reads 0.00, never -0.00
        terms = (("wait", wait), ("emissions", emissions), ("reciprocity", w.reciprocity * recip + 0.0),
                 ("cost", w.cost * self.hosts.rate_or_0[k]), ("border", border))
        return Candidate(p.site.id, p.pool.id, None if a is None else a.id, terms, self._time(start), grams)

    def _time(self, epoch_s: float) -> datetime:
        """The UTC time at ``epoch_s`` (cached per context, keyed by the bare number: the few
        starts of a pass repeat)."""
        assert self.ctx is not None
        t: datetime | None = self.ctx.memo.get(epoch_s)
        if t is None:
            t = _remember(self.ctx.memo, epoch_s, lambda: datetime.fromtimestamp(epoch_s, UTC))
        return t

    def _notes(self, k: int) -> tuple[str, ...]:
        notes: list[str] = []
        deadline = self.spec.deadline
        if deadline is not None and self.s0_s + self.spec.time_limit_s > deadline.timestamp():
            notes.append(f"Starts at once: too little time is left before its deadline {_utc(deadline)} "
                         "to wait")
        if self.ctx is not None:
            zone = self.ix.pools[k].zone
            f = self.ctx.forecasts.get(zone)
            if f is not None:
                notes.append(f"Intensity forecast for {zone}: {_short(f.source)}")
            elif zone in self.ctx.notes:
                notes.append(f"No intensity forecast for {zone}: {_short(self.ctx.notes[zone])}")
        return tuple(notes)



def _reciprocity(balance: Mapping[str, float], requester: str, host: str, units: float) -> float:
    """How a move of ``units`` from requester to host changes the agreement's imbalance
    between them, from −1 (cuts it by 2 × units: the host owed the requester) to +1 (adds
    2 × units). ``balance`` is each partner's net units (provided − used).

    >>> _reciprocity({}, "uk", "fr", 10.0)            # balanced: the move adds imbalance
    1.0
    >>> _reciprocity({"uk": 30.0, "fr": -30.0}, "uk", "fr", 10.0)   # fr owes uk: it repays
    -1.0
    """
    return scalar._moved(balance.get(host, 0.0) - balance.get(requester, 0.0), units)
