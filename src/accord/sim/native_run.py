"""The glue between a run (:class:`accord.sim.run_state.RunState`) and the kernel's loop
(:mod:`accord.sim.native`): the arrays the loop fills; what the domain says of each home
partner's decisions under each placement context and on each day
(:func:`accord.domain.placement.table.requester_terms`), and of each job class's shape
(:func:`~accord.domain.placement.table.eligible`), answered whenever the loop asks; the
contexts themselves, built by the broker's
:func:`~accord.service.placement_context.build_context` over the simulated ledger; then
energy and emissions by the accounting code, and the ledger posts in the order the loop
read them.
"""

from __future__ import annotations

import math
import types
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.pick import ROWS
from accord.domain.placement.records import MAX_START_SLOTS
from accord.domain.placement.table import (
    agreement_ids,
    eligible,
    forecast_arrays,
    quota_arrays,
    requester_terms,
    weights,
)
from accord.domain.placement.table import zones as table_zones
from accord.ports import CarbonSource
from accord.service import broker
from accord.service.placement_context import RUN_HORIZON_S, build_context, forecasts_for
from accord.sim import native
from accord.sim.accounting import SimLedger
from accord.sim.forecast import PerfectForecast
from accord.sim.model import DOWN, GIVE_UP_S, UP, Outcome, Policy
from accord.sim.native import C_CONTEXT, DONE, EPOCH, HEAP_FULL, I_NEXT, N_ENTERED, N_FILLS, NEED_CONTEXT
from accord.sim.native_sites import FROM, MONTH_FROM, MONTH_UNTIL, N_POSTED, N_WAIT, NEED_AT, READY_AT, UNTIL
from accord.sim.run_state import RunState


@cache
def kernel(compiled: bool = True) -> types.SimpleNamespace:
    """The loop's functions, compiled (numba: compiled, or loaded from its cache, on first
    use) or interpreted (:func:`accord.sim.native.build`). Raises nothing."""
    return native.build(compiled)


def run_native(sim: RunState, source: CarbonSource, compiled: bool = True) -> Outcome:
    """Run ``sim`` through the kernel's loop (``compiled=False``: the same source,
    interpreted) and fill its outcome and ledger. ``source`` is where the placement
    contexts' forecasts come from. Raises nothing of its own."""
    k = kernel(compiled)
    room = 3
    while True:
        run = _Run(sim, source, k, room)
        if run.go():
            break
        room *= 4   # the event heap filled up: again, with more room (from a fresh ledger)
        sim.ledger = SimLedger(sim.ledger.fed)
    run.finish()
    return sim.out


TABLES = 4096   # rows of the standing tables' cache (a power of 2)
RENEW = True    # whether the loop may make a context itself when the ledger cannot have changed


def rule_epochs(fed: Federation) -> list[float]:
    """The UTC midnights (epoch s) at which an agreement or an exchange rate starts or
    stops applying: between two of them, what :func:`requester_terms` says of a partner's
    decisions does not change but for the context's quota left and balances."""
    days: set[date] = set()
    for a in fed.agreements:
        days |= {a.start, a.end + timedelta(days=1)}
    for r in fed.exchange_rates:
        days.add(r.valid_from)
        if r.valid_until is not None:
            days.add(r.valid_until)
    return sorted(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in days)


class _Run:
    """One attempt at a run: the loop's arrays, and the answers to what it asks."""

    def __init__(self, sim: RunState, source: CarbonSource, k: types.SimpleNamespace, room: int) -> None:
        self.sim, self.source, self.k = sim, source, k
        w, n, npools = sim.work, len(sim.work), len(sim.pools)
        gpus = np.ascontiguousarray(w.gpus, np.int64)
        cls, first = _classes(np.asarray(w.home, np.int64) * (int(gpus.max()) + 1) + gpus)
        self.names = ["", *agreement_ids(sim.fed)]
        self.static: dict[tuple[str, int], tuple[Any, Any, Any]] = {}   # requester_terms by partner, epoch
        self.bounds = rule_epochs(sim.fed)
        ids = [x.id for x in sim.fed.partners]
        self.requester = [ids.index(p) if p in ids else -1 for p in w.partners]
        self.quota = quota_arrays(sim.fed, None)
        self._feed()
        self.read = 0      # cross-border jobs posted to the ledger so far
        self.elig = np.array([eligible(sim._spec(j), sim.fed) for j in first], np.bool_)
        sub = np.ascontiguousarray(w.submit_s, np.float64)
        req = np.ascontiguousarray(w.requested_s, np.float64)
        dl = np.full(n, math.nan)
        if w.window_s is not None:
            k.deadlines(sub, req, float(w.window_s), dl)
        self.jobs = (sub, gpus, np.ascontiguousarray(w.runtime_s, np.float64), req, cls,
                     np.ascontiguousarray(w.home, np.int64), dl)
        # placeholders of the terms' types until the loop asks for the first day's
        self.terms: tuple[Any, ...] = (np.zeros((1, 1, 1)), np.zeros((1, 1, 1, 1)),
                                       np.zeros((1, 1), np.int64), self.elig, np.zeros(8), np.zeros((1, 4)),
                                       np.zeros((1, 1)), np.zeros((1, 2)))
        self.cfg = np.array([sim.cfg.pass_s, sim.cfg.refresh_s, float(sim.cfg.backfill),
                             float(sim.cfg.backfill_depth), float(broker.BATCH), sim.cfg.replan_s,
                             float(sim.cfg.policy is not Policy.HOME), float(sim.weights.slot_s)])
        ids = sorted({key[0] for key in sim.keys})
        self.site_of = np.array(sim.site_index, np.int64)
        self.outages = (np.array([ids.index(o.site) for o in sim.outages], np.int64),
                        np.array([o.start_s for o in sim.outages], np.float64),
                        np.array([o.end_s for o in sim.outages], np.float64))
        nan, z = np.full(n, math.nan), np.zeros(n, np.int64)
        self.out = (nan.copy(), nan.copy(), nan.copy(), np.full(n, -1, np.int64), np.full(n, -1, np.int64),
                    z.copy(), np.zeros(n, np.bool_), z.copy(), np.empty(npools), np.zeros(n, np.bool_),
                    nan.copy())
        self.lists = (z.copy(), z.copy(), z.copy(), nan.copy(), z.copy(), z.copy(),
                      np.arange(n, dtype=np.int64),
                      z.copy(), np.zeros(n, np.bool_))
        self.state = (dl, np.zeros(n, np.bool_), np.full(n, -1, np.int64), nan.copy(), z.copy(), self.site_of)
        h = TABLES   # the standing tables of recent decisions, by a hash of what they depend on
        self.tables = (np.zeros((h, ROWS, npools)), np.zeros((h, npools), np.int64),
                       np.zeros((h, npools), np.bool_),
                       np.full((h, 4), -2, np.int64), np.zeros(h))
        self._sites(room)

    def _feed(self) -> None:
        """The forecasts' arrays (filled per context), and what the loop needs to make the
        perfect forecast's itself (:func:`accord.sim.native._renew`)."""
        sim, zones = self.sim, table_zones(self.sim.fed)
        slot = sim.weights.slot_s
        self.horizon = MAX_START_SLOTS * slot + RUN_HORIZON_S   # as the broker's context builder asks
        cap = (self.horizon + 86_400) // slot + 8
        z = len(zones)
        self.forecasts = (np.zeros((z, 4)), np.zeros((z, cap)), np.zeros((z, cap + 1)))
        source = self.source if isinstance(self.source, PerfectForecast) else None
        info, secs, vals, least = (source.series_arrays(zones) if source is not None
                                   else (np.zeros((z, 5)), np.zeros(1), np.zeros(1), 60))
        itself = RENEW and (source is not None or sim.weights.emissions <= 0)
        min_s = source.min_s if source is not None else 0
        self.feed = (info, secs, vals, np.empty((2, self.horizon // least + 8)),
                     np.array([slot, self.horizon, min_s, float(itself)], np.float64))

    def _sites(self, room: int) -> None:
        """The event heap (with the outages on it) and the pools' arrays."""
        sim, n, k = self.sim, len(self.sim.work), self.k
        size = room * n + 2 * len(sim.outages) + 4096
        self.heap = (np.empty(size), np.empty(size, np.int64), np.empty(size, np.int64))
        self.si = np.zeros(13, np.int64)
        self.sf = np.array([math.inf, -math.inf, float(self.jobs[0][-1]) + GIVE_UP_S, math.nan, math.nan,
                            math.nan, math.nan, math.nan, math.nan])
        caps = np.array([p.gpus for p in sim.pools], np.int64)
        npools = len(caps)
        self.pools = (caps, caps.copy(), np.zeros(npools, np.int64), np.full(npools, -1, np.int64),
                      np.full(npools, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int64))
        scratch = n if sim.cfg.backfill else 0   # only backfilling sorts what runs
        self.runs = (np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64), np.zeros(npools, np.int64),
                     np.empty(max(1, int(caps.sum())), np.int64), np.zeros(n, np.int64),
                     np.empty(scratch), np.empty(scratch, np.int64), np.empty(scratch, np.int64))
        self.exp_end = np.empty(scratch)
        self.loads = (caps.astype(np.float64), np.zeros(npools), caps.astype(np.float64), np.zeros(npools),
                      np.ones(npools, np.bool_), np.zeros(npools, np.bool_))
        for x in range(len(sim.outages)):
            k._push(self.heap, self.si, self.outages[1][x], DOWN, x)
            k._push(self.heap, self.si, self.outages[2][x], UP, x)

    def go(self) -> bool:
        """Run the loop to its end, answering what it asks; False if its heap filled up."""
        n, progress = len(self.sim.work), self.sim.progress
        while True:
            code = self.k.run_loop(self.jobs, self.terms, self.site_of, self.outages, self.cfg, self.out,
                                   self.lists, self.state, self.tables, self.heap, self.si, self.sf,
                                   self.pools, self.runs, self.exp_end, self.loads, self.feed)
            if code == DONE:
                return True
            if code == HEAP_FULL:
                return False
            t = float(self.sf[NEED_AT])
            if code == NEED_CONTEXT:
                self._refresh(t)
            self._day(t)
            if progress is not None:
                progress(int(self.si[I_NEXT]), n)

    def _refresh(self, t: float) -> None:
        """A new placement context at ``t``, as the Python loop builds one: the usage read
        up to the previous pass in the ledger, then the broker's context builder (quota left
        and balances) and the forecasts it would add (:func:`_forecasts`)."""
        sim = self.sim
        self._post()
        sim.ledger.flush(t - sim.cfg.pass_s)
        at = datetime.fromtimestamp(t, UTC)
        context = build_context(sim.fed, None, at, quota_used=sim.ledger.quota_used,
                                balance=sim.ledger.balance)
        self.quota = quota_arrays(sim.fed, context)
        self._forecasts(at)
        self.si[N_ENTERED] = self.read - len(sim.ledger.ended)
        month = datetime(at.year, at.month, 1, tzinfo=UTC)
        self.sf[MONTH_FROM] = month.timestamp()
        after = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        self.sf[MONTH_UNTIL] = after.timestamp()
        self.sf[READY_AT] = t

    def _forecasts(self, at: datetime) -> None:
        """The forecasts of a context built at ``at``, into :attr:`forecasts`: none without an
        emissions weight (the broker's builder is then given no source); from the perfect
        forecast's series, as the loop makes them; else as the builder makes them."""
        sim, zones = self.sim, table_zones(self.sim.fed)
        fz, fv, fp = self.forecasts
        fz[:, 0] = 0.0
        if sim.weights.emissions <= 0:
            return
        slot = sim.weights.slot_s
        origin = math.floor(at.timestamp() / slot) * slot
        if isinstance(self.source, PerfectForecast):
            info, secs, vals, scratch, params = self.feed
            for z in range(len(zones)):
                self.k.forecast_window(z, origin, slot, self.horizon, params[2], info, secs, vals, scratch,
                                       fz, fv, fp)
            return
        found, _ = forecasts_for(sorted({z for z in zones if z}), self.source, at, slot, self.horizon)
        a, b, c = forecast_arrays(sim.fed, PlacementContext(weights=sim.fed.placement, forecasts=found))
        fz[:], fv[:, :b.shape[1]], fp[:, :c.shape[1]] = a, b, c

    def _day(self, t: float) -> None:
        """The terms of every home partner's decisions at ``t`` under the current context."""
        sim, w, k = self.sim, self.sim.work, self.k
        at = datetime.fromtimestamp(t, UTC)
        now = at.timestamp()
        epoch, context = bisect_right(self.bounds, now), self.cfg[C_CONTEXT] == 1.0
        for p in w.partners:
            if (p, epoch) not in self.static:
                spec = JobSpec("sim", 1, 60, partner=p, theme=w.theme, sector=w.sector)
                self.static[(p, epoch)] = requester_terms(spec, sim.fed, at, context)
        rows = [self.static[(p, epoch)] for p in w.partners]
        lim, alts, count = (np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                            np.stack([r[2] for r in rows]))
        quota, balance = self.quota
        for r in range(len(rows)):
            k.fill_limits(lim[r], alts[r], count[r], quota, balance, self.requester[r], context)
        fz, fv, fp = self.forecasts
        self.terms = (lim, alts, count, self.elig, weights(sim.fed, context, fz[:, 0] == 1.0), fz, fv, fp)
        self.si[EPOCH] += 1   # the tables filled before are stale
        bounds = self.bounds
        self.sf[FROM] = bounds[epoch - 1] if epoch > 0 else -math.inf
        self.sf[UNTIL] = bounds[epoch] if epoch < len(bounds) else math.inf

    def _post(self) -> None:
        """Post the cross-border jobs the loop read since the last time, in order."""
        sim, w, out = self.sim, self.sim.work, self.out
        posted, read_s = self.lists[2], self.lists[3]
        upto = int(self.si[N_POSTED])
        for job in posted[self.read:upto].tolist():
            sim._post(self.names[int(out[4][job]) + 1], w.partners[int(w.home[job])], int(out[3][job]),
                      int(w.gpus[job]), float(out[1][job]), float(out[2][job]), read=float(read_s[job]))
        self.read = upto

    def finish(self) -> None:
        """The outcome: every job's record, energy and emissions; the ledger flushed."""
        sim, out = self.sim, self.out
        self._post()
        sim.ledger.flush(math.inf)
        o = sim.out
        o.placed_at, o.start, o.end = out[0].tolist(), out[1].tolist(), out[2].tolist()
        o.pool = out[3].tolist()
        o.agreement = np.array(self.names, object)[out[4] + 1].tolist()
        o.decisions, o.rejected = out[5].tolist(), out[6].tolist()
        o.deferred, o.estimate_g = out[9].tolist(), out[10].tolist()
        o.rejected_waiting(self.lists[1][:int(self.si[N_WAIT])].tolist())
        sim.fills = int(self.si[N_FILLS])
        sim.account((out[3], out[1], out[2]))
        if sim.progress is not None:
            sim.progress(len(sim.work), len(sim.work))


def _classes(key: NDArray[np.int64]) -> tuple[NDArray[np.int64], list[int]]:
    """Each job's class (by ``key``: home partner and GPUs) and a job of each class."""
    seen = np.zeros(int(key.max()) + 1, np.bool_)
    seen[key] = True
    number = np.cumsum(seen) - 1
    cls = number[key]
    first = np.empty(int(seen.sum()), np.int64)
    first[cls[::-1]] = np.arange(len(key) - 1, -1, -1)
    return cls.astype(np.int64), first.tolist()
