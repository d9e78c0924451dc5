"""The glue between a run (:class:`accord.sim.run_state.RunState`, as
:class:`accord.sim.kernel.Simulation` holds it) and its compiled loop
(:mod:`accord.sim.native`): placement's standing terms per rule epoch and job class, asked
of the domain (:func:`accord.domain.placement.place.standing_terms`); the arrays the loop
fills; then energy and emissions by the accounting code, and the ledger posts in the order
the loop read them.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from accord.domain.federation.model import Federation
from accord.domain.placement.place import standing_terms
from accord.domain.placement.records import TIE
from accord.service import broker
from accord.sim.model import GIVE_UP_S, Outcome
from accord.sim.run_state import RunState


def rule_epochs(fed: Federation) -> list[float]:
    """The UTC midnights (epoch s) at which an agreement or an exchange rate starts or
    stops applying: between two of them, the pre-carbon placement's standing terms of a job
    do not change."""
    days: set[date] = set()
    for a in fed.agreements:
        days |= {a.start, a.end + timedelta(days=1)}
    for r in fed.exchange_rates:
        days.add(r.valid_from)
        if r.valid_until is not None:
            days.add(r.valid_until)
    return sorted(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in days)


def run_native(sim: RunState) -> Outcome | None:
    """Run ``sim`` (home-site FIFO) through the compiled loop and fill its outcome and
    ledger; None when the loop could not finish (its event heap filled up: the caller then
    runs the Python loop)."""
    from accord.sim import native  # numba: imported (and compiled, or loaded from its cache) on first use

    w, n = sim.work, len(sim.work)
    gpus = np.ascontiguousarray(w.gpus, np.int64)
    cls, first = _classes(np.asarray(w.home, np.int64) * (int(gpus.max()) + 1) + gpus)
    terms = _terms(sim, first)
    if terms is None:
        return None
    names, *arrays = terms
    caps = np.array([p.gpus for p in sim.pools], np.int64)
    ids = sorted({k[0] for k in sim.keys})
    site_of = np.array(sim.site_index, np.int64)
    outages = (np.array([ids.index(o.site) if o.site in ids else -1 for o in sim.outages], np.int64),
               np.array([o.start_s for o in sim.outages], np.float64),
               np.array([o.end_s for o in sim.outages], np.float64))
    cfg = np.array([sim.cfg.pass_s, sim.cfg.refresh_s, float(sim.cfg.backfill), float(sim.cfg.backfill_depth),
                    float(broker.BATCH), TIE])
    sub = np.ascontiguousarray(w.submit_s, np.float64)
    jobs = (sub, gpus, np.ascontiguousarray(w.runtime_s, np.float64),
            np.ascontiguousarray(w.requested_s, np.float64), cls)
    nan = np.full(n, math.nan)
    out = (nan.copy(), nan.copy(), nan.copy(), np.full(n, -1, np.int64), np.full(n, -1, np.int64),
           np.zeros(n, np.int64), np.zeros(n, np.bool_), np.zeros(n, np.int64), np.empty(len(caps)))
    # pending, waiting, read (posted), read at, held, a pass's batch; the jobs by number (a sort key)
    lists = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), nan.copy(),
             np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n, dtype=np.int64))
    waiting, posted, complete = native.run_loop(jobs, tuple(arrays), caps, site_of, outages, cfg,
                                                float(sub[-1]) + GIVE_UP_S, out, lists)
    if not complete:
        return None
    _fill(sim, names, out)
    for job in lists[2][:posted].tolist():
        k = int(out[3][job])
        sim._post(names[int(out[4][job]) + 1], w.partners[int(w.home[job])], k, int(gpus[job]),
                  float(out[1][job]), float(out[2][job]), read=float(lists[3][job]))
    sim.ledger.flush(math.inf)
    sim.out.rejected_waiting(lists[1][:waiting].tolist())
    if sim.progress is not None:
        sim.progress(n, n)
    return sim.out


def _classes(key: NDArray[np.int64]) -> tuple[NDArray[np.int64], list[int]]:
    """Each job's class (by ``key``: home partner and GPUs) and a job of each class."""
    seen = np.zeros(int(key.max()) + 1, np.bool_)
    seen[key] = True
    number = np.cumsum(seen) - 1
    cls = number[key]
    first = np.empty(int(seen.sum()), np.int64)
    first[cls[::-1]] = np.arange(len(key) - 1, -1, -1)
    return cls.astype(np.int64), first.tolist()


def _terms(sim: RunState, first: list[int]) -> tuple[list[str], NDArray[np.bool_], NDArray[np.float64],
                                                     NDArray[np.int64], NDArray[np.bool_],
                                                     NDArray[np.float64], NDArray[np.float64]] | None:
    """(agreement ids with "" first, then per (epoch, class, pool): allowed, the other
    terms, the agreement's index, transient refusal; the wait scale per pool; the epochs'
    bounds); None if the wait scale were not the same for every job (the loop assumes it)."""
    bounds = rule_epochs(sim.fed)
    pools, classes = len(sim.pools), len(first)
    shape = (len(bounds) + 1, classes, pools)
    ok, part = np.zeros(shape, np.bool_), np.zeros(shape, np.float64)
    agr, transient = np.full(shape, -1, np.int64), np.zeros(shape, np.bool_)
    names = [""]
    scale: NDArray[np.float64] | None = None
    for e in range(len(bounds) + 1):
        t = bounds[e - 1] if e else (bounds[0] - 86_400 if bounds else float(sim.work.submit_s[0]))
        at = datetime.fromtimestamp(t, UTC)
        for c, job in enumerate(first):
            st = standing_terms(sim._spec(job), sim.fed, at)
            if scale is None:
                scale = st.wait_scale
            elif not np.array_equal(scale, st.wait_scale):
                return None
            ok[e, c], part[e, c], transient[e, c] = st.allowed, st.part, st.transient
            for k, a in enumerate(st.agreements):
                if a is not None:
                    if a.id not in names:
                        names.append(a.id)
                    agr[e, c, k] = names.index(a.id) - 1
    assert scale is not None
    return names, ok, part, agr, transient, np.ascontiguousarray(scale), np.array(bounds, np.float64)


def _fill(sim: RunState, names: list[str], out: tuple[NDArray, ...]) -> None:  # type: ignore[type-arg]
    o = sim.out
    o.placed_at, o.start, o.end = out[0].tolist(), out[1].tolist(), out[2].tolist()
    o.pool = out[3].tolist()
    o.agreement = np.array(names, object)[out[4] + 1].tolist()
    o.decisions, o.rejected = out[5].tolist(), out[6].tolist()
    sim.account((out[3], out[1], out[2]))
