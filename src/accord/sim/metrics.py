"""What a run measured: emissions and energy, waits, slowdown, utilisation, balances, fairness.

Definitions (``docs/design/simulator.md``):

* wait = start − submit; bounded slowdown = max(1, (wait + run) / max(run, 10 s));
* utilisation of a site over a bucket = busy GPU-seconds / (GPUs × bucket length);
* an agreement's balance of a partner = units provided − units used under it so far;
* Jain's index over partners of their mean bounded slowdown: (Σx)² / (n Σx²), 1 when every
  partner's jobs are slowed alike, 1/n when one partner takes all the slowdown;
* saving = 1 − E / E_baseline; share of the achievable = (E_baseline − E) /
  (E_baseline − E_oracle), over the jobs every compared run completed with known emissions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.place import allowed_pools
from accord.sim.model import Floats, Outcome, Policy, Workload

SLOWDOWN_FLOOR_S = 10.0
SERIES_POINTS = 120   # buckets of the time series in the report


@dataclass(frozen=True, slots=True, eq=False)
class Run:
    """One simulated run and what is needed to describe it."""

    variant: str
    policy: Policy
    federation: Federation
    keys: tuple[tuple[str, str], ...]
    work: Workload
    outcome: Outcome
    history: tuple[tuple[float, str, str, str, float], ...]   # (end, agreement, requester, host, units)
    seconds: float


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index of ``values`` (1: all equal).

    >>> jain([2.0, 2.0]), jain([1.0, 0.0])
    (1.0, 0.5)
    """
    xs = [v for v in values if math.isfinite(v)]
    square = sum(x * x for x in xs)
    return (sum(xs) ** 2) / (len(xs) * square) if xs and square > 0 else 1.0


def percentiles(x: Floats) -> dict[str, float]:
    """Mean, p50, p95, p99 of ``x`` (NaN when empty)."""
    if len(x) == 0:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan, "p99": math.nan}
    p50, p95, p99 = np.percentile(x, [50, 95, 99]).tolist()
    return {"mean": float(x.mean()), "p50": p50, "p95": p95, "p99": p99}


def summary(run: Run, compare: np.ndarray[Any, np.dtype[np.bool_]], baseline: Run | None,
            oracle: Floats) -> dict[str, Any]:
    """The figures of one run (JSON-ready). ``compare`` marks the jobs the comparison of
    emissions is made over; ``baseline`` is the run savings are measured against."""
    base = None if baseline is None else emissions(baseline)
    return with_comparison(figures(run), comparison(emissions(run), compare, base, oracle))


def figures(run: Run) -> dict[str, Any]:
    """The figures of one run that need no other run (everything :func:`summary` gives but
    ``comparison``), in the order :func:`summary` gives them."""
    w, o = run.work, run.outcome
    start, end = np.array(o.start), np.array(o.end)
    done = np.isfinite(end)
    wait = (start - w.submit_s)[done]
    run_s = w.runtime_s[done]
    bsld = np.maximum(1.0, (wait + run_s) / np.maximum(run_s, SLOWDOWN_FLOOR_S))
    energy, grams = np.array(o.energy_kwh), emissions(run)
    abroad = np.array([a != "" for a in o.agreement])
    out: dict[str, Any] = {
        "variant": run.variant, "policy": run.policy.value, "seconds": round(run.seconds, 3),
        "jobs": len(w), "completed": int(done.sum()), "rejected": int(sum(o.rejected)),
        "deferred": int(sum(o.deferred)), "abroad": int((abroad & done).sum()),
        "decisions": int(sum(o.decisions)),
        "energy_mwh": float(np.nansum(energy)) / 1000, "emissions_t": float(np.nansum(grams)) / 1e6,
        "emissions_unknown": int((done & np.isnan(grams)).sum()),
        "emissions_kg_per_job": _kg_per_job(grams[done]),
        "wait_h": {k: v / 3600 for k, v in percentiles(wait).items()},
        "bounded_slowdown": percentiles(bsld),
    }
    out["unplaced"] = unplaced(run)
    out["partners"] = _partners(run, done, wait, bsld, energy, grams)
    out["jain_slowdown"] = jain([p["bounded_slowdown"] for p in out["partners"].values()])
    out["utilisation"] = utilisation(run)
    out["balances"] = balances(run)
    return out


def with_comparison(figures: Mapping[str, Any], comparison: Mapping[str, float]) -> dict[str, Any]:
    """``figures`` with ``comparison`` in its place (after ``jain_slowdown``)."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        out[key] = value
        if key == "jain_slowdown":
            out["comparison"] = dict(comparison)
    return out


def emissions(run: Run) -> Floats:
    """Each job's emissions in grams (NaN: not run, or unknown)."""
    return np.array(run.outcome.emissions_g, dtype=np.float64)


def _kg_per_job(grams: Floats) -> float:
    """Mean kg per job over the jobs whose emissions are known; NaN when none is."""
    known = grams[np.isfinite(grams)]
    return float(known.mean()) / 1000 if len(known) else math.nan


def unplaced(run: Run) -> dict[str, Any]:
    """The jobs that never ran and why, as far as the inputs tell: ``too_large``, those
    asking for more GPUs than the federation's largest pool has (no policy can place them;
    ``largest_asked`` is the most any of them asked); ``no_pool``, those no pool may ever
    take (none of their partner's fits them, and no agreement in force on their day covers
    their partner, theme and sector at a pool that does); ``other``, the rest (pools allow
    them, but none took them before the run gave up: busy, out of quota, or past a deadline)."""
    never = np.array(run.outcome.rejected, dtype=bool)
    largest = max((p.gpus for site in run.federation.sites for p in site.pools), default=0)
    big = never & (run.work.gpus > largest)
    barred = np.zeros(len(never), dtype=bool)
    memo: dict[tuple[int, int, int], bool] = {}   # a partner's size on a day: the same answer
    for j in np.flatnonzero(never & ~big).tolist():
        key = (int(run.work.home[j]), int(run.work.gpus[j]), int(run.work.submit_s[j] // 86_400))
        if key not in memo:
            memo[key] = _may_run(run, j)
        barred[j] = not memo[key]
    return {"jobs": int(never.sum()), "too_large": int(big.sum()), "largest_pool": largest,
            "largest_asked": int(run.work.gpus[big].max()) if big.any() else None,
            "no_pool": int(barred.sum()), "other": int((never & ~big & ~barred).sum())}


def _may_run(run: Run, j: int) -> bool:
    """Whether some pool may ever take job ``j`` (placement's ``allowed_pools``)."""
    w = run.work
    spec = JobSpec("why", int(w.gpus[j]), int(w.requested_s[j]), partner=w.partners[int(w.home[j])],
                   theme=w.theme, sector=w.sector)
    return any(allowed_pools(spec, run.federation, datetime.fromtimestamp(float(w.submit_s[j]), UTC)))


def _partners(run: Run, done: np.ndarray[Any, np.dtype[np.bool_]], wait: Floats, bsld: Floats,
              energy: Floats, grams: Floats) -> dict[str, dict[str, float]]:
    w = run.work
    home_done = w.home[done]
    out = {}
    for i, p in enumerate(w.partners):
        mine = w.home == i
        if not mine.any():
            continue
        finished = home_done == i
        out[p] = {"jobs": int(mine.sum()), "energy_mwh": float(np.nansum(energy[mine])) / 1000,
                  "emissions_t": float(np.nansum(grams[mine])) / 1e6,
                  "wait_h": float(wait[finished].mean()) / 3600 if finished.any() else math.nan,
                  "bounded_slowdown": float(bsld[finished].mean()) if finished.any() else math.nan}
    return out


def comparison(grams: Floats, compare: np.ndarray[Any, np.dtype[np.bool_]], baseline: Floats | None,
               oracle: Floats) -> dict[str, float]:
    """A run's emissions (``grams`` per job) beside the baseline's and the oracle's, over the
    jobs ``compare`` marks: totals in t, ``saving``, ``oracle_saving``, ``share_of_achievable``."""
    mine = float(np.sum(grams[compare])) / 1e6
    best = float(np.sum(oracle[compare])) / 1e6
    out = {"jobs": int(compare.sum()), "emissions_t": mine, "oracle_t": best}
    if baseline is not None:
        base = float(np.sum(baseline[compare])) / 1e6
        out["baseline_t"] = base
        out["saving"] = 1 - mine / base if base > 0 else math.nan
        out["oracle_saving"] = 1 - best / base if base > 0 else math.nan
        out["share_of_achievable"] = (base - mine) / (base - best) if base - best > 0 else math.nan
    return out


def comparable(runs: Sequence[Run], oracle: Floats) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The jobs every run completed with known emissions, and the oracle could score."""
    return comparable_jobs([emissions(r) for r in runs], oracle)


def comparable_jobs(grams: Sequence[Floats], oracle: Floats) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The jobs with known emissions (``grams`` of each run) in every run and the oracle."""
    ok = np.isfinite(oracle)
    for g in grams:
        ok &= np.isfinite(g)
    return ok


def _edges(run: Run) -> Floats:
    end = np.array(run.outcome.end)
    t0 = float(run.work.submit_s[0]) if len(run.work) else 0.0
    t1 = float(np.nanmax(end)) if np.isfinite(end).any() else t0 + 3600
    step = max(3600.0, math.ceil((t1 - t0) / SERIES_POINTS / 3600) * 3600)
    return t0 + step * np.arange(math.ceil((t1 - t0) / step) + 1, dtype=np.float64)


def utilisation(run: Run) -> dict[str, Any]:
    """Per site: mean utilisation over the run, and per bucket of the time series."""
    o, w = run.outcome, run.work
    start, end, pool = np.array(o.start), np.array(o.end), np.array(o.pool)
    edges = _edges(run)
    done = np.isfinite(end)
    site_of = [k[0] for k in run.keys]
    sizes: dict[str, int] = {}
    for s in run.federation.sites:
        sizes[s.id] = s.total_gpus
    series: dict[str, list[float]] = {}
    mean: dict[str, float] = {}
    for site, gpus in sorted(sizes.items()):
        mine = done & np.isin(pool, [i for i, s in enumerate(site_of) if s == site])
        busy = _busy(start[mine], end[mine], w.gpus[mine].astype(np.float64), edges)
        span = np.diff(edges) * gpus
        series[site] = (busy / span).round(4).tolist() if gpus else []
        mean[site] = float(busy.sum() / span.sum()) if gpus and span.sum() > 0 else 0.0
    return {"t": edges[:-1].tolist(), "sites": series, "mean": mean}


def _busy(start: Floats, end: Floats, gpus: Floats, edges: Floats) -> Floats:
    """Busy GPU-seconds per bucket: the integral of the running GPUs' step function."""
    if len(start) == 0:
        return np.zeros(len(edges) - 1)
    times = np.concatenate([start, end])
    delta = np.concatenate([gpus, -gpus])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(delta[order])
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])   # ∫ up to each event time
    i = np.searchsorted(times, edges, side="right") - 1
    k = np.maximum(i, 0)
    at = np.where(i >= 0, area[k] + level[k] * (edges - times[k]), 0.0)
    busy: Floats = np.diff(at)
    return busy


def balances(run: Run) -> dict[str, Any]:
    """Per agreement and partner: net units (provided − used) at the end of each bucket."""
    edges = _edges(run)
    out: dict[str, dict[str, list[float]]] = {}
    by_agreement: dict[str, list[tuple[float, str, str, float]]] = {}
    for end, agreement, requester, host, units in run.history:
        by_agreement.setdefault(agreement, []).append((end, requester, host, units))
    for a in run.federation.agreements:
        rows = sorted(by_agreement.get(a.id, []))
        t = np.array([r[0] for r in rows], np.float64)
        upto = np.searchsorted(t, edges[1:], side="right")
        per: dict[str, list[float]] = {}
        for p in a.parties:
            delta = np.array([(r[3] if r[2] == p else 0.0) - (r[3] if r[1] == p else 0.0) for r in rows])
            cum = np.concatenate([[0.0], np.cumsum(delta)])
            per[p] = cum[upto].round(3).tolist()
        out[a.id] = per
    return {"t": edges[1:].tolist(), "agreements": out}


def final_balances(run: Run) -> Mapping[str, Mapping[str, float]]:
    """Each agreement's net units per partner at the end of the run."""
    b = balances(run)["agreements"]
    return {a: {p: (v[-1] if v else 0.0) for p, v in per.items()} for a, per in b.items()}
