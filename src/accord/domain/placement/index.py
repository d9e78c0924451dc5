"""Placement's view of a federation (internal to :mod:`accord.domain.placement`): its
pools as numpy arrays in (site id, pool id) order (:class:`_Index`, cached per federation
by :func:`_index`), which pools a job's shape allows (:func:`_static_reason`), which
agreements and exchange rates apply per (requester, theme, day), the loads as arrays, and
the bounded memo (:func:`_remember`) every placement cache uses.

Pure: the caches hold only what the federation and the job determine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.energy import DEFAULT_HOST_SHARE
from accord.domain.federation.model import Agreement, BackendKind, Federation, GpuPool, Site
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.records import PoolLoad, Rejection

_T = TypeVar("_T")
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

        return _remember(self.memo, ("shape", spec.site, spec.gpu_model, spec.gpus, spec.data_residency,
                                     bool(spec.inputs)), make)

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
    if spec.inputs and p.site.backend is not BackendKind.AGENT:
        return "the job has input files: only a site that runs Accord's agent fetches them"
    return None
