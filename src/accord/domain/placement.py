"""Placement: choose a site, pool and start time for a job, and say why.

One pure function, :func:`place`, used by the broker (and later the simulator).
Candidates are (site, pool, start) triples, the starts lying in the job's
flexibility window on a slot grid; hard constraints remove (site, pool) pairs,
each with its reason; the remaining candidates are scored (lower is better)
term by term, so a decision can be explained. ``docs/design/placement.md``
describes the terms and their scales.

Without a :class:`PlacementContext` the placement is the pre-carbon one: terms
``wait`` and ``border``, start now. With one, it adds ``emissions`` (from a
forecast per grid zone), ``reciprocity`` and ``cost``, checks the quota left,
and may choose a later start (verdict DEFER).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon import DEFAULT_HOST_SHARE, HOUR_S, IntensitySeries, resample
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation import Agreement, Federation, GpuPool, PlacementWeights, QuotaPeriod, Site
from accord.domain.jobs import JobSpec

MAX_START_SLOTS = 48   # start times considered per job: now and up to 47 slot boundaries
ALTERNATIVES = 3       # alternatives kept in a decision (the best ones)
TIE = 1e-9             # scores this close are equal; equal scores go to the earliest start
_COST_MEMO = 64        # run durations whose per-slot costs a forecast keeps
_T = TypeVar("_T")


class Verdict(enum.Enum):
    """What the broker should do with a job after a placement attempt."""

    PLACE = "place"    # start now at the chosen site
    DEFER = "defer"    # start later (``Decision.start``) at the chosen site; reconsidered then
    WAIT = "wait"      # nothing can take it now, but something may later
    REJECT = "reject"  # nothing can ever take it


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """What a site reports about one pool right now."""

    free_gpus: int
    queued_gpus: int = 0
    available: bool = True
    note: str = ""


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
        at either end are dropped, see :func:`accord.domain.carbon.resample`).

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
            q, rest = divmod(duration_s, self.step_s)
            p, v, n = self._prefix, self.values, len(self.values)
            costs = [p[j + q] - p[j] + v[j + q] * rest for j in range(n - q)]
            t0 = self.origin_s
            costs += [self.integral(t0 + j * self.step_s, t0 + j * self.step_s + duration_s)
                      for j in range(max(0, n - q), n)]
            self._costs[duration_s] = costs
        return costs

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


class Candidate(NamedTuple):
    """A (site, pool, start) that passed every hard constraint, with its weighted score
    terms. (An immutable record; a NamedTuple because a decision builds several.)"""

    site: str
    pool: str
    agreement: str | None                  # the agreement it runs under abroad; None at home
    terms: tuple[tuple[str, float], ...]   # (name, weighted value), in a fixed order
    start: datetime | None = None          # when it would start (``at`` without a context)
    emissions_g: float | None = None       # estimated from the forecast; None without one

    @property
    def score(self) -> float:
        """Sum of the terms; lower is better."""
        return sum(v for _, v in self.terms)

    def term(self, name: str) -> float:
        """One term's weighted value (0 if the decision did not use it)."""
        return next((v for n, v in self.terms if n == name), 0.0)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A (site, pool) ruled out, and why; ``transient`` if it may pass later."""

    site: str
    pool: str
    reason: str
    transient: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`place`.

    ``alternatives`` are the best other candidates (one per pool at its best start, and
    the chosen pool starting now when the choice is later), best first, at most
    :data:`ALTERNATIVES`. ``reference`` is running now at the job's home site (else the
    best site on the other terms): what the emissions saving is measured against.
    ``chosen_now`` is the chosen pool starting now, when the choice is a later start.
    """

    verdict: Verdict
    chosen: Candidate | None
    alternatives: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    at: datetime | None = None
    reference: Candidate | None = None
    notes: tuple[str, ...] = ()
    chosen_now: Candidate | None = None

    @property
    def start(self) -> datetime | None:
        """When the chosen candidate should start (None when nothing was chosen)."""
        return self.chosen.start if self.chosen else None

    def placed_now(self, why: str) -> Decision:
        """This DEFER decision turned into PLACE at the same pool, starting now, with
        ``why`` added to the explanation; any other decision unchanged."""
        if self.verdict is not Verdict.DEFER or self.chosen_now is None or self.chosen is None:
            return self
        others = tuple(a for a in self.alternatives if a is not self.chosen_now)
        return replace(self, verdict=Verdict.PLACE, chosen=self.chosen_now,
                       alternatives=(self.chosen, *others)[:ALTERNATIVES],
                       notes=(why, *self.notes), chosen_now=None)

    def explain(self) -> str:
        """One readable paragraph: where and when, why, what it saves, what else was
        considered and what was ruled out."""
        if self.chosen is None:
            why = "; ".join(f"{r.site}/{r.pool}: {r.reason}" for r in self.rejected)
            verb = "waits" if self.verdict is Verdict.WAIT else "cannot run anywhere"
            return f"The job {verb}: {why or 'the federation has no sites'}."
        c = self.chosen
        parts = [f"{_where(c, self.at, self.verdict)} ({_score_text(c)})"
                 + (f" under agreement {c.agreement}" if c.agreement else "")]
        saving = _saving_text(c, self.reference, self.at)
        if saving:
            parts.append(saving)
        if self.alternatives:
            runner, *rest = self.alternatives
            text = f"Runner-up: {_label(runner, self.at)} (score {runner.score:.2f})"
            if rest:
                text += "; then " + ", ".join(f"{_label(a, self.at)} ({a.score:.2f})" for a in rest[:2])
            parts.append(text)
        if self.rejected:
            r = self.rejected[0]
            parts.append(f"Ruled out: {len(self.rejected)} pool(s), e.g. {r.site}/{r.pool}: {r.reason}")
        parts.extend(self.notes)
        return ". ".join(p.rstrip(".") for p in parts) + "."


def place(
    spec: JobSpec,
    federation: Federation,
    loads: Mapping[tuple[str, str], PoolLoad],
    at: datetime,
    *,
    context: PlacementContext | None = None,
) -> Decision:
    """Choose the best (site, pool, start) for ``spec`` at time ``at``.

    ``loads`` maps (site id, pool id) to its current load; a pool missing from it is taken
    as idle and available. Without ``context`` the start is now and only the wait and
    border terms count. With it, starts run from max(at, earliest start) to the latest
    that finishes by the deadline (no deadline: the agreement's default flexibility; at
    home, now only), at most :data:`MAX_START_SLOTS`, and the emissions, reciprocity and
    cost terms and the quota left count too.

    The verdict is PLACE (start now) or DEFER (start later) with a chosen candidate, WAIT
    when every ruled-out pool may pass later (busy, down, quota to renew), or REJECT when
    nothing can ever take the job.
    """
    return _Placer(spec, federation, loads, at, context).decide()


def forecast_zones(spec: JobSpec, federation: Federation) -> frozenset[str]:
    """The grid zones whose forecast could change where or when ``spec`` runs: those of the
    sites that could take it, when it has a choice of site or of start (a deadline, or a
    partner abroad under an agreement with default flexibility). Empty when it has neither:
    then a pass need not ask for any forecast on its account.
    """
    ix = _index(federation)
    sites = {p.site.id: p.site for p in ix.pools if _static_reason(spec, p) is None}
    abroad = [s for s in sites.values() if spec.partner is not None and s.partner != spec.partner]
    flexible = spec.deadline is not None or any(
        a.default_flexibility_hours > 0 for s in abroad
        for a in ix.between.get((spec.partner or "", s.partner), ()))
    if len(sites) < 2 and not flexible:
        return frozenset()
    return frozenset(s.grid_zone for s in sites.values() if s.grid_zone)


class Choice(NamedTuple):
    """What :func:`choose` returns: the verdict, the chosen pool (an index into
    :func:`pool_keys`; -1 when nothing was chosen), its start (epoch seconds), the
    agreement it runs under abroad and its estimated emissions (g; None without a forecast)."""

    verdict: Verdict
    pool: int
    start_s: float
    agreement: Agreement | None
    emissions_g: float | None


def pool_keys(federation: Federation) -> tuple[tuple[str, str], ...]:
    """The (site id, pool id) of every pool, in the order :func:`choose` uses for its load
    arrays and its answer (sorted by site id, then pool id)."""
    return _index(federation).keys


def choose(
    spec: JobSpec,
    federation: Federation,
    free: NDArray[np.float64],
    queued: NDArray[np.float64],
    available: NDArray[np.bool_],
    at: datetime,
    *,
    context: PlacementContext | None = None,
) -> Choice:
    """The fast path of :func:`place` for callers that keep the loads as arrays (the
    simulator): the same constraints, scores and choice, without the decision's records
    (explanation, alternatives, reference). ``free``, ``queued`` and ``available`` are per
    pool in :func:`pool_keys` order; the caller must not change them while this runs.

    ``place(spec, fed, loads, at, context=c).chosen`` is the pool and start this returns
    (a property test checks it on random federations and loads).
    """
    return _Placer(spec, federation, {}, at, context, (free, queued, available)).quick()


def allowed_pools(spec: JobSpec, federation: Federation, at: datetime) -> tuple[bool, ...]:
    """Per pool (in :func:`pool_keys` order), whether the job may ever run there, capacity
    and quota left aside: its shape fits and, abroad, an agreement in force on ``at``'s day
    covers its partner, theme and sector. What the simulator's emissions oracle may use."""
    ix = _index(federation)
    elig, _ = ix.eligible(spec)
    hosts = ix.hosts(spec.partner, spec.theme, at.date(), spec.sector)
    return tuple((elig & (hosts.home | hosts.has)).tolist())


def flexibility_s(spec: JobSpec, federation: Federation, at: datetime) -> tuple[float, ...]:
    """Per pool (in :func:`pool_keys` order), how long after max(at, earliest start) the job
    could start there by its window: up to its deadline minus its run, else, abroad, the
    default flexibility of the agreement that applies; 0 at home without a deadline. Not
    capped at the slots :func:`place` looks at in one decision (a deferred job is placed
    again at its start)."""
    ix = _index(federation)
    s0 = max(at, spec.earliest_start or at).timestamp()
    if spec.deadline is not None:
        span = max(0.0, spec.deadline.timestamp() - spec.time_limit_s - s0)
        return (span,) * len(ix.pools)
    hosts = ix.hosts(spec.partner, spec.theme, at.date(), spec.sector)
    return tuple(0.0 if a is None else a.default_flexibility_hours * HOUR_S for a in hosts.first)


# ─── internals ───────────────────────────────────────────────────────────────────────────
#
# Speed (docs/benchmarks.md): a decision weighs every pool of the federation, so the terms
# are computed for all pools at once with numpy, over arrays in federation order; a pool
# that fails a hard constraint just gets an infinite score. What depends only on the job's
# shape (which pools it may ever use), on the partners, theme and day (which agreements
# apply, exchange rates) is cached per federation; quota left, reciprocity gaps and the best
# start per (zone, window) are cached per context, which every job of a pass shares; the
# loads are turned into arrays again only when they changed.

_MEMO = 4096  # entries per cache before it is emptied
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _Pool:
    site: Site
    pool: GpuPool
    key: tuple[str, str]  # (site id, pool id), as in ``loads``
    partner: str
    country: str
    zone: str
    model: str
    gpus: int
    kw_per_gpu: float  # facility kW per GPU of the pool: power × (1 + host share) × PUE / 1000


@dataclass(frozen=True, slots=True)
class _Hosts:
    """Per pool, for one (requester, theme, day): at the job's home or not, and the first
    agreement that applies abroad (quota aside)."""

    home: Bools
    has: Bools                          # abroad with an agreement that applies
    first: tuple[Agreement | None, ...]
    rate: Floats                        # units per GPU-hour of the pool's model that day (NaN: none)
    rate_or_1: Floats                   # the rate where positive, else 1 (a safe divisor)
    rate_or_0: tuple[float, ...]        # the rate, 0 where there is none (the cost term)
    charged: Floats                     # 1.0 abroad at a positive rate (reciprocity counts), else 0.0


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


def _remember(memo: dict[Any, Any], key: Any, make: Callable[[], _T]) -> _T:
    hit: _T | None = memo.get(key)
    if hit is None:
        if len(memo) >= _MEMO:
            memo.clear()
        hit = memo[key] = make()
    return hit


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a key of context caches
class _Index:
    """What placement needs of a federation, as arrays over its pools. The pools are in
    (site id, pool id) order, the last tie-break, so the first of equals is the one to take."""

    fed: Federation
    pools: tuple[_Pool, ...]
    gpus: Floats            # pool size
    kw: Floats              # kW per GPU
    zone: NDArray[np.intp]  # into zones
    zones: tuple[str, ...]
    keys: tuple[tuple[str, str], ...]
    between: Mapping[tuple[str, str], tuple[Agreement, ...]]
    memo: dict[Any, Any] = field(default_factory=dict)

    @staticmethod
    def of(fed: Federation) -> _Index:
        country = {p.id: p.country for p in fed.partners}
        pools = tuple(_Pool(s, p, (s.id, p.id), s.partner, country.get(s.partner, ""), s.grid_zone,
                            p.gpu_model, p.gpus, p.power_w * (1 + DEFAULT_HOST_SHARE) * s.pue / 1000)
                      for s in fed.sites for p in s.pools)
        pools = tuple(sorted(pools, key=lambda p: p.key))
        zones = tuple(sorted({p.zone for p in pools}))
        between: dict[tuple[str, str], tuple[Agreement, ...]] = {}
        for a in fed.agreements:
            for x in a.parties:
                for y in a.parties:
                    between[(x, y)] = (*between.get((x, y), ()), a)
        return _Index(fed, pools, np.array([p.gpus for p in pools], np.float64),
                      np.array([p.kw_per_gpu for p in pools], np.float64),
                      np.array([zones.index(p.zone) for p in pools], np.intp), zones,
                      tuple(p.key for p in pools), between)

    def eligible(self, spec: JobSpec) -> tuple[Bools, tuple[Rejection, ...]]:
        """Which pools the job's shape allows, and the others with why."""
        def make() -> tuple[Bools, tuple[Rejection, ...]]:
            reasons = [_static_reason(spec, p) for p in self.pools]
            return (np.array([r is None for r in reasons], np.bool_),
                    tuple(Rejection(p.site.id, p.pool.id, r)
                          for p, r in zip(self.pools, reasons, strict=True) if r is not None))

        return _remember(self.memo, ("shape", spec.site, spec.gpu_model, spec.gpus, spec.data_residency),
                         make)

    def hosts(self, requester: str | None, theme: str | None, day: date,
              sector: str | None = None) -> _Hosts:
        """Per pool: home or not, and the agreement that applies abroad (quota aside)."""
        def make() -> _Hosts:
            home = [requester in (None, p.partner) for p in self.pools]
            first = {h: next(iter(self.agreements(requester, h, theme, day, sector)[0]), None)
                     for h in {p.partner for p in self.pools}}
            agreements = tuple(None if at_home else first[p.partner]
                               for p, at_home in zip(self.pools, home, strict=True))
            rates = {m: self.rate(m, day) for m in {p.model for p in self.pools}}
            rate = np.array([rates[p.model] for p in self.pools], np.float64)
            known = np.nan_to_num(rate)
            positive = known > 0
            return _Hosts(np.array(home, np.bool_), np.array([a is not None for a in agreements], np.bool_),
                          agreements, rate, np.where(positive, rate, 1.0), tuple(known.tolist()),
                          (positive & ~np.array(home, np.bool_)).astype(np.float64))

        return _remember(self.memo, ("hosts", requester, theme, day, sector), make)

    def agreements(self, requester: str | None, host: str, theme: str | None, day: date,
                   sector: str | None = None) -> tuple[tuple[Agreement, ...], tuple[str, ...]]:
        """The agreements (in file order) under which ``requester`` (of ``sector``, when
        known) may use ``host`` for ``theme`` on ``day``, quota left aside; and why each
        other one may not."""
        ok: list[Agreement] = []
        reasons: list[str] = []
        for a in self.between.get((requester or "", host), ()):
            if not a.in_force(day):
                reasons.append(f"agreement {a.id} is not in force on {day.isoformat()}")
            elif a.quota(requester or "", host) is None:
                reasons.append(f"agreement {a.id} grants {requester} no quota at {host}")
            elif a.themes and theme not in a.themes:
                reasons.append(f"agreement {a.id} covers themes {', '.join(a.themes)}, "
                               f"not {theme or '(no theme given)'}")
            elif sector is not None and a.sectors and sector not in {x.value for x in a.sectors}:
                reasons.append(f"agreement {a.id} is open to the {', '.join(x.value for x in a.sectors)} "
                               f"sector(s), not {sector}")
            elif a.residency_countries and self.fed.partner(host).country not in a.residency_countries:
                reasons.append(f"agreement {a.id} keeps work in {', '.join(a.residency_countries)}")
            else:
                ok.append(a)
        if not ok and not reasons:
            reasons.append(f"no agreement between {requester} and {host}")
        return tuple(ok), tuple(reasons)

    def rate(self, model: str, day: date) -> float:
        """Units per GPU-hour of ``model`` on ``day``; NaN when no rate covers it."""
        return next((r.units_per_gpu_hour for r in self.fed.exchange_rates
                     if r.gpu_model == model and r.covers(day)), math.nan)

    def loads(self, loads: Mapping[tuple[str, str], PoolLoad]) -> tuple[Floats, Floats, Bools]:
        """Free GPUs, queued GPUs and availability per pool (a missing pool is idle)."""
        now = list(map(loads.get, self.keys))
        last = self.memo.get("loads")
        if last is not None and last[0] == now:  # the same PoolLoad objects: the common case
            return last[1]  # type: ignore[no-any-return]
        arrays = (np.array([x.free_gpus if x else p.gpus for x, p in zip(now, self.pools, strict=True)],
                           np.float64),
                  np.array([x.queued_gpus if x else 0 for x in now], np.float64),
                  np.array([x.available if x else True for x in now], np.bool_))
        self.memo["loads"] = (now, arrays)
        return arrays


_INDEXES: dict[int, _Index] = {}  # by id(federation); the index holds the federation, pinning its id


def _index(fed: Federation) -> _Index:
    ix = _INDEXES.get(id(fed))
    if ix is None or ix.fed is not fed:
        if len(_INDEXES) >= 8:
            _INDEXES.clear()
        ix = _INDEXES[id(fed)] = _Index.of(fed)
    return ix


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

    def quick(self) -> Choice:
        """The fast path: the same scoring and choice as :meth:`decide`, without building
        the decision's records (explanation, alternatives, reference)."""
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
        key = ("fixed", self.ix, spec.site, spec.gpu_model, spec.gpus, spec.data_residency, spec.partner,
               spec.theme, spec.sector, held, self.day, spec.time_limit_s, window,
               self.s0_s if self.ctx is not None else None)
        return _remember(self.ctx.memo if self.ctx is not None else self.ix.memo, key, self._make_fixed)

    def _make_fixed(self) -> _Fixed:
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
        rows = self._starts() if self.ctx is not None else None
        known = ok & ~np.isnan(rows[0]) if rows is not None and self.gaps else ok.copy()
        if rows is None:
            known[:] = False   # no forecast anywhere: no reference
        unknown = np.isnan(rows[3]) if rows is not None else np.ones(len(ix.pools), np.bool_)
        best = np.where(unknown, 0.0, rows[3] if rows is not None else 0.0)
        spend = np.where(unknown, 0.0, w.emissions)
        home = known & self.hosts.home
        return _Fixed(ok, int(np.count_nonzero(ok)), recip, part, limits.wait_scale, static, tuple(refused),
                      tuple(self.agreements), self.gaps, rows, known, home, best, spend,
                      np.where(ok, 0.0, math.inf), np.where(home if home.any() else known, 0.0, math.inf))

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
                    left = ctx.quota_left.get((a.id, requester, p.partner), math.inf) + 1e-9
                    most[i] = left / h.rate[i] if h.rate[i] > 0 else math.inf if left >= 0 else -math.inf
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
            part[k] = w.reciprocity * recip[k] + w.border + w.cost * self.hosts.rate_or_0[k]
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
            if units <= left + 1e-9:
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
        """How many slot boundaries after s0 the job may start at (0: start at s0 only)."""
        if self.ctx is None or self.w.emissions <= 0:
            return 0
        d = self.spec.time_limit_s
        if self.spec.deadline is not None:
            latest = self.spec.deadline.timestamp() - d
        elif agreement is not None:
            latest = self.s0_s + agreement.default_flexibility_hours * HOUR_S
        else:
            return 0
        step = self.ctx.slot_s
        count = math.floor(latest / step) - math.floor(self.s0_s / step)
        return max(0, min(MAX_START_SLOTS - 1, count))

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
        terms = (("wait", wait), ("emissions", emissions), ("reciprocity", w.reciprocity * recip),
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


def _static_reason(spec: JobSpec, p: _Pool) -> str | None:
    """Why the pool can never take the job, judged from the job and the pool alone."""
    if spec.site is not None and spec.site != p.site.id:
        return f"the job asks for site {spec.site}"
    if spec.gpu_model is not None and p.model != spec.gpu_model:
        return f"GPU model {p.model}, the job asks for {spec.gpu_model}"
    if spec.gpus > p.gpus:
        return f"pool has {p.gpus} GPUs, the job asks for {spec.gpus}"
    if spec.data_residency and p.country not in spec.data_residency:
        return f"site is in {p.country}; the job's data must stay in {', '.join(spec.data_residency)}"
    return None


def _reciprocity(balance: Mapping[str, float], requester: str, host: str, units: float) -> float:
    """How a move of ``units`` from requester to host changes the agreement's imbalance
    between them, from −1 (cuts it by 2 × units: the host owed the requester) to +1 (adds
    2 × units). ``balance`` is each partner's net units (provided − used).

    >>> _reciprocity({}, "uk", "fr", 10.0)            # balanced: the move adds imbalance
    1.0
    >>> _reciprocity({"uk": 30.0, "fr": -30.0}, "uk", "fr", 10.0)   # fr owes uk: it repays
    -1.0
    """
    if units <= 0:
        return 0.0
    gap = balance.get(host, 0.0) - balance.get(requester, 0.0)
    return (abs(gap + 2 * units) - abs(gap)) / (2 * units)


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _label(c: Candidate, at: datetime | None) -> str:
    if c.start is not None and at is not None and c.start > at:
        return f"{c.site}/{c.pool} at {_utc(c.start)}"
    return f"{c.site}/{c.pool} now"


def _where(c: Candidate, at: datetime | None, verdict: Verdict) -> str:
    if verdict is Verdict.DEFER and c.start is not None and at is not None:
        wait = _duration(c.start - at)
        return f"Deferred to start at {_utc(c.start)} (in {wait}) at {c.site}/{c.pool}"
    return f"Placed at {c.site}/{c.pool} to start now"


def _score_text(c: Candidate) -> str:
    terms = ", ".join(f"{n} {v:.2f}" for n, v in c.terms)
    return f"score {c.score:.2f}: {terms}"


def _saving_text(c: Candidate, ref: Candidate | None, at: datetime | None) -> str:
    if c.emissions_g is None:
        return ""
    text = f"Estimated emissions {_grams(c.emissions_g)} CO2e"
    if ref is None or ref.emissions_g is None or ref.emissions_g <= 0:
        return text
    if (ref.site, ref.pool) == (c.site, c.pool) and c.start == ref.start:
        return text + f" (running now at {ref.site}/{ref.pool}: the baseline, nothing saved)"
    delta = ref.emissions_g - c.emissions_g
    how = "less" if delta >= 0 else "more"
    return (text + f", {_grams(abs(delta))} ({abs(delta) / ref.emissions_g:.0%}) {how} than "
            f"running now at {ref.site}/{ref.pool}")


def _grams(g: float) -> str:
    return f"{g / 1000:.2f} kg" if g >= 1000 else f"{g:.0f} g"


def _duration(d: timedelta) -> str:
    minutes = round(d.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
