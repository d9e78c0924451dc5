"""The event-driven simulation kernel: a federation, a workload, one policy, one run.

Time jumps from event to event (a heap; no fixed step). Jobs arrive in submit order (a
sorted stream merged with the heap, so arrivals cost no heap operation); the broker places
the jobs that arrived in dispatcher passes (every ``pass_s``; 0: at once), with the same
:func:`accord.domain.placement.choose` as the live broker's ``place()``; each site runs
the jobs placed at each of its pools first come, first served, optionally with EASY
backfilling. A deferred job is released at its start and placed again, as the broker does:
at the pool then chosen, starting then (a job is shifted in time once).
When a job ends, its energy and emissions come from ``accord.domain.carbon`` (the same
arithmetic as the broker's usage records) and its cross-border use goes into the
simulated ledger (``accord.sim.accounting``), whose quota used and balances feed the next
placement contexts. The same inputs give the same run.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from accord.domain.carbon import IntensitySeries
from accord.domain.federation import Federation
from accord.domain.jobs import JobSpec
from accord.domain.placement import (
    PlacementContext,
    Verdict,
    ZoneForecast,
    choose,
    flexibility_s,
    pool_keys,
)
from accord.sim.accounting import Accounts, SimLedger
from accord.sim.model import Outcome, Policy, Settings, Workload, policy_weights

FINISH, RELEASE, PASS = 0, 1, 2   # event kinds; at equal times, capacity is freed first
FORECAST_DAYS = 5                 # a day's forecast covers it, the next day's starts and 3-day runs
GIVE_UP_S = 366 * 86_400          # jobs still waiting this long after the last submission are rejected


@dataclass(slots=True)
class _PoolState:
    """One pool's scheduler: capacity, what runs (by expected end) and its FIFO queue."""

    index: int
    capacity: int
    free: int
    queue: deque[int]
    running: dict[int, float]   # job -> expected end (start + requested time), for backfilling


class Simulation:
    """One run of one policy over one federation and workload. Call :meth:`run` once.

    ``carbon`` maps grid zones to their actual intensity (what jobs pay, and what a
    perfect forecast sees); zones without a series get no forecast and unknown emissions.
    """

    def __init__(self, federation: Federation, workload: Workload, carbon: Mapping[str, IntensitySeries],
                 settings: Settings, progress: Callable[[int, int], None] | None = None) -> None:
        self.fed, self.work, self.carbon, self.cfg = federation, workload, carbon, settings
        self.progress = progress
        self.keys = pool_keys(federation)
        sites = {s.id: s for s in federation.sites}
        self.sites = [sites[k[0]] for k in self.keys]
        self.pools = [sites[k[0]].pool(k[1]) for k in self.keys]
        n = len(self.keys)
        self.free = np.array([p.gpus for p in self.pools], np.float64)
        self.queued = np.zeros(n, np.float64)
        self.available = np.ones(n, np.bool_)
        self.state = [_PoolState(i, p.gpus, p.gpus, deque(), {}) for i, p in enumerate(self.pools)]
        self.weights = policy_weights(settings.policy, federation.placement)
        self.ledger = SimLedger(federation)
        self.accounts = Accounts(federation, self.keys, carbon, len(workload))
        self.out = Outcome.empty(len(workload))
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.pending: list[int] = []
        self.waiting: list[int] = []     # WAIT verdicts: tried again when the context is rebuilt
        self.pass_at = math.inf
        self.context: PlacementContext | None = None
        self.context_until = -math.inf
        self.forecasts: dict[tuple[str, int], ZoneForecast] = {}
        self.specs: dict[int, JobSpec] = {}
        self.residency = tuple((federation.partner(p).country,) for p in workload.partners)

    # ── the loop ──
    def run(self) -> Outcome:
        """Simulate every job to its end (or rejection); the per-job outcome."""
        sub = self.work.submit_s.tolist()
        n, i, heap = len(sub), 0, self.heap
        tick = max(1, n // 200)
        while i < n or heap or self.pending or self.waiting:
            t_arrive = sub[i] if i < n else math.inf
            t_event = heap[0][0] if heap else math.inf
            if i < n and (t_arrive < t_event or (t_arrive == t_event and heap[0][2] > FINISH)):
                self._arrive(i, t_arrive)
                i += 1
                if self.progress is not None and i % tick == 0:
                    self.progress(i, n)
                continue
            if not heap:
                # nothing will change but the quota periods: try again later, for at most a
                # year after the last submission (a job that waits that long never runs)
                if self.waiting and self.context_until <= (sub[-1] if n else 0.0) + GIVE_UP_S:
                    self._schedule_pass(_next_month(self.context_until))   # when quotas renew
                    continue
                break
            t, _, kind, job = heapq.heappop(heap)
            if kind == FINISH:
                self._finish(job, t)
            elif kind == RELEASE:
                self.pending.append(job)
                self._schedule_pass(t)
            else:
                self.pass_at = math.inf
                self._pass(t)
        if self.progress is not None:
            self.progress(n, n)
        self.ledger.flush()
        self.out.rejected_waiting(self.waiting)
        return self.out

    def _push(self, t: float, kind: int, job: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, job))

    def _arrive(self, job: int, t: float) -> None:
        self.pending.append(job)
        if self.cfg.pass_s <= 0:
            self.pass_at = math.inf
            self._pass(t)
        else:
            self._schedule_pass(t)

    def _schedule_pass(self, t: float) -> None:
        step = self.cfg.pass_s
        at = math.ceil(t / step) * step if step > 0 else t
        if at < self.pass_at:
            self.pass_at = at
            self._push(at, PASS, -1)

    # ── placement ──
    def _pass(self, t: float) -> None:
        if t >= self.context_until:
            self._refresh(t)
            self.pending.extend(self.waiting)
            self.waiting.clear()
        jobs, self.pending = self.pending, []
        at = datetime.fromtimestamp(t, UTC)
        for job in sorted(jobs):   # first come, first served: job numbers follow submit order
            self._place(job, t, at)

    def _place(self, job: int, t: float, at: datetime) -> None:
        spec = self.specs.pop(job, None) or self._spec(job)
        spec_ctx = None if self.cfg.policy is Policy.HOME else self.context
        c = choose(spec, self.fed, self.free, self.queued, self.available, at, context=spec_ctx)
        self.out.decisions[job] += 1
        if c.verdict is Verdict.DEFER and self.out.deferred[job]:
            # as the broker: a job is shifted in time once; at the start it chose it runs
            c = c._replace(verdict=Verdict.PLACE, start_s=t, emissions_g=None)
        if c.verdict is Verdict.DEFER:
            if spec.deadline is None:   # keep the window the first decision saw (no chasing)
                flex = flexibility_s(spec, self.fed, at)[c.pool]
                spec = _with_deadline(spec, t + flex + spec.time_limit_s)
            self.specs[job] = spec
            self.out.deferred[job] = True
            self._push(c.start_s, RELEASE, job)
        elif c.verdict is Verdict.PLACE:
            self.out.placed_at[job] = t
            self.out.agreement[job] = c.agreement.id if c.agreement is not None else ""
            self.out.estimate_g[job] = c.emissions_g if c.emissions_g is not None else math.nan
            self._enqueue(job, c.pool, t)
        elif c.verdict is Verdict.WAIT:
            self.specs[job] = spec
            self.waiting.append(job)
        else:
            self.out.rejected[job] = True

    def _spec(self, job: int) -> JobSpec:
        w = self.work
        home = int(w.home[job])
        deadline = None
        if w.window_s is not None:
            deadline = datetime.fromtimestamp(float(w.submit_s[job] + w.requested_s[job]) + w.window_s, UTC)
        return JobSpec("sim", int(w.gpus[job]), int(w.requested_s[job]), partner=w.partners[home],
                       theme=w.theme, sector=w.sector, deadline=deadline,
                       data_residency=self.residency[home] if self.cfg.policy is Policy.HOME else ())

    def _refresh(self, t: float) -> None:
        """A new placement context: quota left and balances from the simulated ledger, the
        day's forecasts (perfect knowledge: the actual intensity)."""
        slot = self.fed.placement.slot_s
        self.context_until = (math.floor(t / self.cfg.refresh_s) + 1) * self.cfg.refresh_s
        if self.cfg.policy is Policy.HOME:
            return
        self.ledger.flush()
        at = datetime.fromtimestamp(t, UTC)
        forecasts = {} if self.weights.emissions <= 0 else self._forecasts(t, slot)
        self.context = PlacementContext(self.weights, forecasts, self.ledger.quota_left(at),
                                       self.ledger.balances(), {})

    def _forecasts(self, t: float, slot: int) -> dict[str, ZoneForecast]:
        day = int(t // 86_400)
        out = {}
        for zone, s in self.carbon.items():
            f = self.forecasts.get((zone, day))
            if f is None:
                f = _day_forecast(s, day, slot)
                if f is None:
                    continue
                self.forecasts = {k: v for k, v in self.forecasts.items() if k[1] >= day - 1}
                self.forecasts[(zone, day)] = f
            out[zone] = f
        return out

    # ── the sites ──
    def _enqueue(self, job: int, pool: int, t: float) -> None:
        ps = self.state[pool]
        self.out.pool[job] = pool
        ps.queue.append(job)
        self.queued[pool] += self.work.gpus[job]
        self._schedule(ps, t)

    def _schedule(self, ps: _PoolState, t: float) -> None:
        gpus, queue = self.work.gpus, ps.queue
        while queue and gpus[queue[0]] <= ps.free:
            self._start(ps, queue.popleft(), t)
        if queue and self.cfg.backfill:
            self._backfill(ps, t)

    def _backfill(self, ps: _PoolState, t: float) -> None:
        """EASY: the head job gets a reservation at the earliest time enough GPUs free up
        (by the running jobs' requested times); a later job may start now if it fits and
        either ends by then or uses only GPUs the head will not need."""
        gpus, req = self.work.gpus, self.work.requested_s
        need = int(gpus[ps.queue[0]])
        free, shadow = ps.free, math.inf
        for end, job in sorted((e, j) for j, e in ps.running.items()):
            free += int(gpus[job])
            if free >= need:
                shadow = end
                break
        extra = free - need
        depth = self.cfg.backfill_depth
        for job in list(ps.queue)[1:depth + 1]:
            g = int(gpus[job])
            if g <= ps.free and (t + req[job] <= shadow or g <= extra):
                if t + req[job] > shadow:
                    extra -= g
                ps.queue.remove(job)
                self._start(ps, job, t)

    def _start(self, ps: _PoolState, job: int, t: float) -> None:
        g = int(self.work.gpus[job])
        ps.free -= g
        self.free[ps.index] = ps.free
        self.queued[ps.index] -= g
        ps.running[job] = t + float(self.work.requested_s[job])
        self.out.start[job] = t
        self._push(t + float(self.work.runtime_s[job]), FINISH, job)

    def _finish(self, job: int, t: float) -> None:
        pool = int(self.out.pool[job])
        ps = self.state[pool]
        g = int(self.work.gpus[job])
        ps.free += g
        self.free[pool] = ps.free
        del ps.running[job]
        self.out.end[job] = t
        agreement = self.out.agreement[job]
        self.accounts.record(job, pool, g, self.out.start[job], t, self.out)
        if agreement:
            home = self.work.partners[int(self.work.home[job])]
            self.ledger.post(agreement, home, pool, self.sites[pool], self.pools[pool], g,
                             self.out.start[job], t)
        self._schedule(ps, t)


def _next_month(t: float) -> float:
    """The start of the UTC month after the one containing ``t`` (epoch seconds)."""
    d = datetime.fromtimestamp(t, UTC)
    return datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC).timestamp()


def _with_deadline(spec: JobSpec, deadline_s: float) -> JobSpec:
    return JobSpec(spec.name, spec.gpus, spec.time_limit_s, partner=spec.partner, theme=spec.theme,
                   sector=spec.sector, data_residency=spec.data_residency,
                   deadline=datetime.fromtimestamp(deadline_s, UTC))


def _day_forecast(s: IntensitySeries, day: int, slot: int) -> ZoneForecast | None:
    """The actual intensity from the start of ``day`` (days since the epoch) for
    :data:`FORECAST_DAYS`, on the slot grid; None when the series does not reach it."""
    start = datetime.fromtimestamp(day * 86_400, UTC)
    end = datetime.fromtimestamp((day + FORECAST_DAYS) * 86_400, UTC)
    lo, hi = max(start, s.start), min(end, s.end)
    if (hi - lo).total_seconds() < 2 * slot:
        return None
    return ZoneForecast.of(s.slice(lo, hi), slot)
