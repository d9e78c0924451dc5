"""The event-driven simulation kernel: a federation, a workload, one policy, one run.

Time jumps from event to event (a heap; no fixed step). Jobs arrive in submit order (a
sorted stream merged with the heap, so arrivals cost no heap operation); the broker places
the jobs that arrived in dispatcher passes (every ``pass_s``, at most the broker's
``BATCH`` a pass, oldest first; 0: at once), with the same
:func:`accord.domain.placement.place.choose` as the live broker's ``place()``, over loads it
updates within a pass by the broker's rule (:func:`~accord.domain.placement.records.after_placing`),
with contexts built by the broker's :func:`~accord.service.placement_context.build_context`
from a perfect forecast (:class:`~accord.sim.forecast.PerfectForecast`) and the simulated
ledger. Each site runs the jobs placed at each of its pools first come, first served,
optionally with EASY backfilling (:class:`~accord.sim.sites.PoolScheduler`).

As the broker does, a deferred job is reconsidered every ``replan_s`` and released at once
when the best choice moved to another site or at least a slot earlier; otherwise it is
released at its start and placed then, at the pool then chosen (a job is shifted in time
once); a deferral that would end the run after the job's deadline places it now.
When a job ends, its cross-border use goes into the simulated ledger
(``accord.sim.accounting``), whose quota used and balances feed the next placement
contexts; once every job has run, the energy and emissions of all come from
``accord.domain.carbon.energy`` at once (:meth:`~accord.sim.accounting.Accounts.record_all`: the
arithmetic of the broker's usage records, in vector form). The same inputs give the same run.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.pick import Picker
from accord.domain.placement.place import choose, flexibility_s
from accord.domain.placement.records import Choice, Verdict, after_placing, retry_waiting_at
from accord.service import broker
from accord.service.placement_context import build_context
from accord.sim.forecast import forecast_source
from accord.sim.model import (
    DOWN,
    FINISH,
    GIVE_UP_S,
    PASS,
    RELEASE,
    REPLAN,
    UP,
    Outage,
    Outcome,
    Policy,
    Settings,
    Workload,
)
from accord.sim.native_run import run_native
from accord.sim.run_state import RunState
from accord.sim.sites import PoolScheduler


class Simulation(RunState):
    """One run of one policy over one federation and workload. Call :meth:`run` once.

    What either loop needs of the run (its inputs, pools, ledger, accounts and outcome) is
    :class:`~accord.sim.run_state.RunState`'s; this adds the event loop's own state.

    ``carbon`` maps grid zones to their actual intensity (what jobs pay, and what a
    perfect forecast sees); zones without a series get no forecast and unknown emissions.
    ``settings.outages`` take sites down for a while (:class:`~accord.sim.model.Outage`).

    Raises:
        InvalidInput: an outage names no site of the federation, or does not end after it starts.
    """

    def __init__(self, federation: Federation, workload: Workload, carbon: Mapping[str, IntensitySeries],
                 settings: Settings, progress: Callable[[int, int], None] | None = None, *,
                 native: bool = True) -> None:
        super().__init__(federation, workload, carbon, settings, progress)
        self.native = native and settings.policy is Policy.HOME and len(workload) > 0
        self.pick: Picker | None = None   # choose()'s last step compiled, for the other policies
        if native and settings.policy is not Policy.HOME and len(workload) > 0:
            from accord.sim.native import pick  # numba: compiled, or loaded from its cache, on first use
            self.pick = pick
        n = len(self.keys)
        self.free = np.array([p.gpus for p in self.pools], np.float64)     # what the sites have
        self.queued = np.zeros(n, np.float64)
        self.view_free = self.free.copy()                                   # what a pass sees
        self.view_queued = self.queued.copy()
        self.available = np.ones(n, np.bool_)
        self.sched = [PoolScheduler(p.gpus, settings.backfill, settings.backfill_depth) for p in self.pools]
        self.source = forecast_source(settings.forecast, carbon, 2 * self.weights.slot_s, settings.profiles)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.pending: list[int] = []
        self.waiting: list[int] = []     # WAIT verdicts: tried again when the context is rebuilt
        self.due: list[int] = []         # deferred jobs to reconsider at the next pass
        self.deferral: dict[int, tuple[int, float, int]] = {}   # job -> (live RELEASE's seq, start, site)
        self.released: set[int] = set()  # jobs released at the start their deferral chose
        self.pass_at = math.inf
        self.give_up = math.inf
        self.context: PlacementContext | None = None
        self.context_until = -math.inf
        self.specs: dict[int, JobSpec] = {}
        self.paused = [False] * n        # pools of a site that is down: nothing starts there
        self.held: dict[str, list[tuple[str, str, int, int, float, float]]] = {}   # posts to read at UP
        self._plan_outages()

    # ── the loop ──
    def run(self) -> Outcome:
        """Simulate every job to its end (or rejection); the per-job outcome.

        A run whose placement needs no context (home-site FIFO) goes through the same loop
        compiled (:mod:`accord.sim.native`), unless ``native=False`` was passed."""
        if self.native:
            out = run_native(self)
            if out is not None:
                return out
        collecting = gc.isenabled()
        gc.disable()   # the loop makes no reference cycles; a collection would only walk its records
        try:
            return self._loop()
        finally:
            if collecting:
                gc.enable()

    def _loop(self) -> Outcome:
        sub = self.work.submit_s.tolist()
        self.give_up = (sub[-1] if sub else 0.0) + GIVE_UP_S
        n, i, heap = len(sub), 0, self.heap
        tick = max(1, n // 200)
        while i < n or heap or self.pending or self.waiting:
            t_arrive = sub[i] if i < n else math.inf
            t_event = heap[0][0] if heap else math.inf
            if i < n and (t_arrive < t_event or (t_arrive == t_event and heap[0][1] > DOWN)):
                self._arrive(i, t_arrive)
                i += 1
                if self.progress is not None and i % tick == 0:
                    self.progress(i, n)
                continue
            if not heap:   # jobs still waiting now wait beyond the last retry (see _pass)
                break
            t, kind, seq, job = heapq.heappop(heap)
            if kind == FINISH:
                self._finish(job, t)
            elif kind == RELEASE:
                self._release(job, seq, t)
            elif kind in (UP, DOWN):
                self._site(self.outages[job], kind == UP, t)
            elif kind == REPLAN:
                if job in self.deferral:
                    self.due.append(job)
                    self._schedule_pass(t)
            else:
                self.pass_at = math.inf
                self._pass(t)
        if self.progress is not None:
            self.progress(n, n)
        self.ledger.flush(math.inf)
        self.out.rejected_waiting(self.waiting)
        self.account()
        return self.out

    def _push(self, t: float, kind: int, job: int) -> int:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, job))
        return self.seq

    def _arrive(self, job: int, t: float) -> None:
        self.pending.append(job)
        if self.cfg.pass_s <= 0:
            self.pass_at = math.inf
            self._pass(t)
        else:
            self._schedule_pass(t)

    def _release(self, job: int, seq: int, t: float) -> None:
        """A deferred job's start has come (unless a reconsideration released it before)."""
        live = self.deferral.get(job)
        if live is None or live[0] != seq:
            return
        del self.deferral[job]
        self.released.add(job)
        self.pending.append(job)
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
        np.copyto(self.view_free, self.free)
        np.copyto(self.view_queued, self.queued)
        at = datetime.fromtimestamp(t, UTC)
        if self.due:
            self._reconsider(t, at)
        jobs = sorted(self.pending)   # first come, first served: job numbers follow submit order
        if self.cfg.pass_s > 0 and len(jobs) > broker.BATCH:   # as the broker: a batch a pass
            jobs, self.pending = jobs[:broker.BATCH], jobs[broker.BATCH:]
            self._schedule_pass(t + self.cfg.pass_s)
        else:
            self.pending = []
        for job in jobs:
            self._place(job, t, at)
        if self.waiting and t < self.give_up:
            # The broker tries them every pass, but only a new day (an agreement comes into
            # force) or month (quotas renew) can change their verdict: a pass at the first
            # context refresh of the next UTC day. A job still waiting a year after the last
            # submission never runs.
            refresh = self.cfg.refresh_s
            self._schedule_pass(math.ceil(retry_waiting_at(t) / refresh) * refresh)

    def _choose(self, job: int, spec: JobSpec, at: datetime) -> Choice:
        self.out.decisions[job] += 1
        return choose(spec, self.fed, self.view_free, self.view_queued, self.available, at,
                      context=None if self.cfg.policy is Policy.HOME else self.context, pick=self.pick)

    def _place(self, job: int, t: float, at: datetime) -> None:
        spec = self.specs.get(job) or self._spec(job)
        c = self._choose(job, spec, at)
        if c.verdict is Verdict.DEFER and (job in self.released or _late(spec, c)):
            # as the broker: a job is shifted in time once (at the start it chose, it runs),
            # and never deferred past its deadline
            c = c._replace(verdict=Verdict.PLACE, start_s=t, emissions_g=None)
        self.released.discard(job)
        if c.verdict is Verdict.DEFER:
            if spec.deadline is None:   # as the broker: it keeps the window of its first deferral
                flex = flexibility_s(spec, self.fed, at)[c.pool]
                spec = replace(spec, deadline=datetime.fromtimestamp(t + flex + spec.time_limit_s, UTC))
            self.specs[job] = spec
            self.out.deferred[job] = True
            self.deferral[job] = (self._push(c.start_s, RELEASE, job), c.start_s, self.site_index[c.pool])
            self._plan_check(job, t, c.start_s)
        elif c.verdict is Verdict.PLACE:
            self.specs.pop(job, None)
            self.out.placed_at[job] = t
            self.out.agreement[job] = c.agreement.id if c.agreement is not None else ""
            self.out.estimate_g[job] = c.emissions_g if c.emissions_g is not None else math.nan
            k = c.pool
            self.view_free[k], self.view_queued[k] = after_placing(
                int(self.view_free[k]), int(self.view_queued[k]), int(self.work.gpus[job]))
            self._enqueue(job, k, t)
        elif c.verdict is Verdict.WAIT:
            self.specs[job] = spec
            self.waiting.append(job)
        else:
            self.specs.pop(job, None)
            self.out.rejected[job] = True

    def _plan_check(self, job: int, t: float, start: float) -> None:
        if self.cfg.replan_s > 0 and t + self.cfg.replan_s < start:
            self._push(t + self.cfg.replan_s, REPLAN, job)

    def _reconsider(self, t: float, at: datetime) -> None:
        """As the broker's passes: place each due deferred job again over this pass's loads
        (before this pass places anything); release it now if the best choice moved to
        another site or at least a slot earlier, else check it again ``replan_s`` later."""
        slot = self.weights.slot_s
        due, self.due = sorted(set(self.due)), []
        for job in due:
            live = self.deferral.get(job)
            if live is None or live[1] <= t:
                continue
            c = self._choose(job, self.specs[job], at)
            if c.verdict not in (Verdict.PLACE, Verdict.DEFER):
                self._plan_check(job, t, live[1])
                continue
            start = c.start_s if c.verdict is Verdict.DEFER else t
            if self.site_index[c.pool] != live[2] or start + slot <= live[1]:
                del self.deferral[job]
                self.pending.append(job)
            else:
                self._plan_check(job, t, live[1])

    def _refresh(self, t: float) -> None:
        """A new placement context, built as the broker builds one: quota left and balances
        from the simulated ledger (usage read up to the previous pass, as the broker's
        ledger posts what its last pass polled), forecasts from the perfect forecast."""
        self.context_until = (math.floor(t / self.cfg.refresh_s) + 1) * self.cfg.refresh_s
        if self.cfg.policy is Policy.HOME:
            return
        self.ledger.flush(t - self.cfg.pass_s)
        at = datetime.fromtimestamp(t, UTC)
        source = self.source if self.weights.emissions > 0 else None
        self.context = build_context(self.fed, source, at, quota_used=self.ledger.quota_used,
                                     balance=self.ledger.balance)

    # ── the sites ──
    def _enqueue(self, job: int, pool: int, t: float) -> None:
        self.out.pool[job] = pool
        self.sched[pool].enqueue(job, int(self.work.gpus[job]), float(self.work.requested_s[job]))
        self._schedule(pool, t)

    def _schedule(self, pool: int, t: float) -> None:
        ps = self.sched[pool]
        if ps.queue and not self.paused[pool]:
            for job in ps.schedule(t):
                self.out.start[job] = t
                self._push(t + float(self.work.runtime_s[job]), FINISH, job)
        self.free[pool] = ps.free
        self.queued[pool] = ps.queued

    def _finish(self, job: int, t: float) -> None:
        pool = int(self.out.pool[job])
        g = int(self.work.gpus[job])
        self.sched[pool].finish(job)
        self.out.end[job] = t
        agreement = self.out.agreement[job]
        if agreement:
            post = (agreement, self.work.partners[int(self.work.home[job])], pool, g, self.out.start[job], t)
            if self.paused[pool]:   # the broker reads its usage once the site answers again
                self.held.setdefault(self.sites[pool].id, []).append(post)
            else:
                self._post(*post)
        self._schedule(pool, t)

    # ── outages ──
    def _plan_outages(self) -> None:
        """The heap's DOWN and UP events of every outage."""
        for i, o in enumerate(self.outages):
            self._push(o.start_s, DOWN, i)
            self._push(o.end_s, UP, i)

    def _site(self, outage: Outage, up: bool, t: float) -> None:
        """The site of ``outage`` goes down, or comes back: then what queued there starts,
        the usage of jobs that ended meanwhile is read, and the jobs that had to wait are
        tried again at the next pass (the broker tries them every pass)."""
        pools = [k for k, site in enumerate(self.sites) if site.id == outage.site]
        for k in pools:
            self.available[k] = up
            self.paused[k] = not up
        if not up:
            return
        for k in pools:
            self._schedule(k, t)
        for post in self.held.pop(outage.site, []):
            self._post(*post, read=t)
        if self.waiting:
            self.pending.extend(self.waiting)
            self.waiting.clear()
            self._schedule_pass(t)


def _late(spec: JobSpec, c: Choice) -> bool:
    """Whether a run started at the choice's start would end after the job's deadline."""
    return spec.deadline is not None and c.start_s + spec.time_limit_s > spec.deadline.timestamp()
