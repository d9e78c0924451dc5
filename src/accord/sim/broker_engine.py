"""The simulator's second engine: a faithful replay of the live broker through its ports.

:class:`BrokerEngine` takes the same inputs as the fast kernel (:class:`accord.sim.kernel.Simulation`)
and gives the same :class:`~accord.sim.model.Outcome`, but nothing in it re-implements the
broker: every job is submitted to the real :class:`~accord.service.broker.Broker`, which places,
defers, dispatches and tracks it through its ports, and the real
:class:`~accord.service.ledger.LedgerService` posts its usage. The ports are fakes: a clock the
engine sets (:class:`SimClock`), a SQLite store in a temporary directory, a perfect forecast
for the carbon port, and one simulated Slurm-like site per site (:class:`SimSite`), whose pools
run the kernel's own scheduler (:class:`~accord.sim.sites.PoolScheduler`).

It exists to check the kernel: on small workloads both engines should give every job the same
pool, start and end. It is slow (a dispatcher pass is a few SQL transactions per job): for
thousands of jobs, not millions.
"""

from __future__ import annotations

import heapq
import itertools
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from accord.adapters import keys
from accord.adapters.clock import FakeClock
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.domain.federation.model import Federation, Site
from accord.domain.jobs.model import Event, EventKind, Job, JobState
from accord.domain.jobs.model import Outcome as SiteOutcome
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.jobs.spec import parse_job_spec
from accord.domain.ledger import signing
from accord.domain.ledger.entries import Entry
from accord.domain.ledger.statement import key_id
from accord.domain.ledger.usage import UsageRecord
from accord.domain.placement.place import pool_keys
from accord.domain.placement.records import PoolLoad, retry_waiting_at
from accord.ports import CarbonSource
from accord.service import broker as live_broker
from accord.service.broker import Broker, StepReport
from accord.service.ledger import LedgerService
from accord.sim.forecast import forecast_source
from accord.sim.model import (
    GIVE_UP_S,
    Outage,
    Outcome,
    Policy,
    Settings,
    Workload,
    checked_outages,
    policy_weights,
)
from accord.sim.sites import PoolScheduler

OWNER = "sim"
WAITING = (JobState.SUBMITTED, JobState.DEFERRED, JobState.PLACED)


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class SimClock(FakeClock):
    """A :class:`FakeClock` set in epoch seconds that keeps the float it was set to (``t``),
    so the simulated sites' times are the kernel's to the bit."""

    def __init__(self, t: float) -> None:
        super().__init__(_at(t))
        self.t = t

    def set(self, t: float) -> None:
        """Move to ``t`` (epoch seconds)."""
        self.t = t
        self._now = _at(t)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self.set(self.t + seconds)


@dataclass(slots=True)
class _Run:
    """One job at a simulated site (times in epoch seconds, NaN until they happen)."""

    ref: str
    pool: str
    gpus: int
    run_s: float
    start: float = math.nan
    end: float = math.nan
    cancelled: bool = False


class SimSite:
    """A simulated Slurm-like site behind the :class:`~accord.ports.SiteBackend` port.

    Each pool runs its jobs first come, first served (optionally with EASY backfilling) with
    a :class:`~accord.sim.sites.PoolScheduler`, by the time limit each job asked for; a job
    then runs for its actual run time, ``runtime_s[job.spec.name]``. Before answering any
    call the site catches up with ``clock.t``: it ends, in time order, every run due by then,
    and starts what each end lets start at that end's exact time. During its ``outages``
    (this site's, :func:`~accord.sim.model.merged`) every call raises
    :class:`~accord.domain.errors.Unavailable` and nothing starts; runs end on time, and what
    is queued starts when the outage ends (ends at the same time come first, as in the kernel).
    """

    def __init__(self, site: Site, clock: SimClock, runtime_s: Mapping[str, float],
                 backfill: bool = False, depth: int = 100, outages: Sequence[Outage] = ()) -> None:
        self.site_id = site.id
        self.clock = clock
        self.runtime_s = runtime_s
        self.pools = {p.id: PoolScheduler(p.gpus, backfill, depth) for p in site.pools}
        self.runs: list[_Run] = []
        self.by_job: dict[str, int] = {}
        self.by_ref: dict[str, int] = {}
        self.ends: list[tuple[float, int, int]] = []   # (end, push order, run)
        self.pushed = 0
        # (time, back up?) of each outage's start and end, in time order; the next is marks[mark]
        self.marks = sorted([(o.start_s, False) for o in outages] + [(o.end_s, True) for o in outages])
        self.mark = 0
        self.down = False

    # ── the port ──
    def loads(self) -> Mapping[str, PoolLoad]:
        """Free and queued GPUs per pool now.

        Raises:
            Unavailable: the site is down.
        """
        self._answer()
        return {pid: PoolLoad(ps.free, ps.queued) for pid, ps in self.pools.items()}

    def look_up(self, job: Job) -> Dispatched | None:
        """The run of ``job`` at this site (adopted), if it was submitted.

        Raises:
            Unavailable: the site is down.
        """
        self._answer()
        known = self.by_job.get(job.id)
        return None if known is None else Dispatched(self.runs[known].ref, adopted=True)

    def submit(self, job: Job) -> Dispatched:
        """Queue ``job`` at its placement's pool (and start it if it fits); a job already
        submitted is adopted.

        Raises:
            Unavailable: the site is down, or the job is not placed at a pool of this site.
            KeyError: no run time is known for the job's name.
        """
        now = self._answer()
        known = self.by_job.get(job.id)
        if known is not None:
            return Dispatched(self.runs[known].ref, adopted=True)
        if job.placement is None or job.placement.pool not in self.pools:
            raise Unavailable(f"site {self.site_id} has no pool for job {job.id}'s placement")
        r = len(self.runs)
        run = _Run(str(r + 1), job.placement.pool, job.spec.gpus, float(self.runtime_s[job.spec.name]))
        self.runs.append(run)
        self.by_job[job.id], self.by_ref[run.ref] = r, r
        self.pools[run.pool].enqueue(r, run.gpus, float(job.spec.time_limit_s))
        self._schedule(run.pool, now)
        return Dispatched(run.ref)

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        """Each run's state now; refs this site never issued are LOST.

        Raises:
            Unavailable: the site is down.
        """
        self._answer()
        return {ref: self._status(ref) for ref in refs}

    def cancel(self, ref: str) -> None:
        """Take a queued run off its queue, or stop a running one now; anything else is a no-op.

        Raises:
            Unavailable: the site is down.
        """
        now = self._answer()
        r = self.by_ref.get(ref)
        if r is None or self.runs[r].cancelled or not math.isnan(self.runs[r].end):
            return
        run, ps = self.runs[r], self.pools[self.runs[r].pool]
        run.cancelled = True
        if math.isnan(run.start):
            ps.queue.remove(next(item for item in ps.queue if item[0] == r))
            ps.queued -= run.gpus
        else:
            ps.finish(r)
            run.end = now
        self._schedule(run.pool, now)

    def logs(self, ref: str, job: Job) -> JobLogs:
        """Simulated jobs print nothing."""
        return JobLogs("", "")

    # ── for the driver ──
    def next_change(self) -> float:
        """When the next run due to end ends, or the site next goes down or comes back (inf:
        never)."""
        return min(self.ends[0][0] if self.ends else math.inf,
                   self.marks[self.mark][0] if self.mark < len(self.marks) else math.inf)

    def times(self, job_id: str) -> tuple[float, float]:
        """The job's start and end here (epoch seconds; NaN: not yet, or never)."""
        r = self.by_job.get(job_id)
        return (math.nan, math.nan) if r is None else (self.runs[r].start, self.runs[r].end)

    # ── inside ──
    def _answer(self) -> float:
        """:meth:`_advance`, then refuse to answer while the site is down.

        Raises:
            Unavailable: the site is down.
        """
        now = self._advance()
        if self.down:
            raise Unavailable(f"site {self.site_id} does not answer (a simulated outage)")
        return now

    def _advance(self) -> float:
        now, ends, marks = self.clock.t, self.ends, self.marks
        while True:
            t_end = ends[0][0] if ends else math.inf
            t_mark = marks[self.mark][0] if self.mark < len(marks) else math.inf
            if min(t_end, t_mark) > now:
                return now
            if t_end <= t_mark:
                self._end(*heapq.heappop(ends))
                continue
            self.mark += 1
            self.down = not marks[self.mark - 1][1]
            if not self.down:
                for pool in self.pools:
                    self._schedule(pool, t_mark)

    def _end(self, end: float, _: int, r: int) -> None:
        run = self.runs[r]
        if run.cancelled:
            return
        run.end = end
        self.pools[run.pool].finish(r)
        self._schedule(run.pool, end)

    def _schedule(self, pool: str, t: float) -> None:
        if self.down:
            return
        for r in self.pools[pool].schedule(t):
            run = self.runs[r]
            run.start = t
            self.pushed += 1
            heapq.heappush(self.ends, (t + run.run_s, self.pushed, r))

    def _status(self, ref: str) -> RemoteStatus:
        r = self.by_ref.get(ref)
        if r is None:
            return RemoteStatus(RemoteState.LOST, reason=f"site {self.site_id} never ran {ref}")
        run = self.runs[r]
        started = None if math.isnan(run.start) else _at(run.start)
        if run.cancelled:
            return RemoteStatus(RemoteState.CANCELLED, started, _ended(run, None), "cancelled")
        if started is None:
            return RemoteStatus(RemoteState.PENDING)
        if math.isnan(run.end):
            return RemoteStatus(RemoteState.RUNNING, started)
        return RemoteStatus(RemoteState.COMPLETED, started, _ended(run, 0))


def _ended(run: _Run, exit_code: int | None) -> SiteOutcome | None:
    """How a run that started ended (None if it never started)."""
    if math.isnan(run.start):
        return None
    return SiteOutcome(exit_code, _at(run.start), _at(run.end), run.gpus * (run.end - run.start),
                       gpus=run.gpus)


class _Grid:
    """The broker's carbon port in a run, answering as a real source does by what is known
    at the clock's time: a span that ended by then (a finished run's footprint) gets the
    zone's actual series, as the kernel's accounting uses it; a span reaching past it (a
    placement context's forecast) gets the run's forecast source, or nothing when the
    policy weighs no emissions (as the kernel builds its contexts)."""

    def __init__(self, carbon: Mapping[str, IntensitySeries], clock: SimClock, slot_s: int,
                 forecasts: bool, kind: Forecast = Forecast.PERFECT,
                 profiles: CarbonSource | None = None) -> None:
        self.actual = dict(carbon)
        self.clock = clock
        self.forecast = forecast_source(kind, carbon, 2 * slot_s, profiles) if forecasts else None

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The zone's intensity covering [start, end) (see the class docstring).

        Raises:
            Unavailable: no forecast under this policy, or no series for the zone (or, for
                a forecast, one covering too little of the span).
        """
        if end.timestamp() > self.clock.t:
            if self.forecast is None:
                raise Unavailable("the policy weighs no emissions: placement gets no forecast")
            return self.forecast.intensity(zone, start, end)
        series = self.actual.get(zone)
        if series is None:
            raise Unavailable(f"the simulation has no intensity data for zone {zone}")
        return series


@dataclass(frozen=True, slots=True)
class _Live:
    """The service and its fake ports for one run."""

    clock: SimClock
    store: SqlStore
    ledger: LedgerService
    broker: Broker
    sites: dict[str, SimSite]


class BrokerEngine:
    """One run of one policy through the live broker. Call :meth:`run` once.

    The inputs are the kernel's (``carbon``: the actual intensity per grid zone; ``progress``
    is called with (jobs submitted, jobs) as jobs are submitted). The broker's dispatcher
    passes run every ``settings.pass_s``; ``refresh_s`` and ``replan_s`` are not used: the
    broker builds a placement context every pass and reconsiders deferred jobs every
    ``REPLAN_S``. After :meth:`run`, ``usage`` (the usage records the broker stored),
    ``entries`` (the ledger's entries) and ``balances`` (the ledger service's net balance
    per agreement and partner) say what the ledger holds. A job the broker would refuse
    from a researcher (more GPUs than any pool, a time limit over 30 days, an unknown
    partner or theme) never runs: it counts as rejected and ``refused`` says why.

    Raises:
        InvalidInput: ``settings.pass_s`` is not positive (the broker places in passes), or
            an outage names no site of the federation or does not end after it starts.
    """

    def __init__(self, federation: Federation, workload: Workload, carbon: Mapping[str, IntensitySeries],
                 settings: Settings, progress: Callable[[int, int], None] | None = None) -> None:
        if not settings.pass_s > 0:
            raise InvalidInput([Problem("pass_seconds", "must be more than 0: the broker places jobs in "
                                        "dispatcher passes", f"{settings.pass_s:g}", "seconds > 0")])
        self.federation, self.work, self.carbon, self.cfg = federation, workload, carbon, settings
        self.progress = progress
        self.fed = replace(federation, placement=policy_weights(settings.policy, federation.placement))
        self.step = settings.pass_s
        self.outages = checked_outages(settings.outages, (s.id for s in federation.sites))
        self.index: dict[str, int] = {}        # job id -> job number
        self.refused: dict[int, InvalidInput] = {}
        self.usage: list[UsageRecord] = []
        self.entries: list[Entry] = []
        self.balances: dict[str, dict[str, Decimal]] = {}
        self._ids = itertools.count()

    def run(self) -> Outcome:
        """Replay every job through the broker to its end (or the cap); the per-job outcome.

        Raises:
            Unavailable: the temporary SQLite store cannot be used.
        """
        with tempfile.TemporaryDirectory(prefix="accord-sim-") as tmp:
            live = self._open(Path(tmp))
            try:
                self._drive(live)
                self._snapshot(live)
                return self._outcome(live)
            finally:
                live.store.close()

    # ── set-up ──
    def _open(self, data_dir: Path) -> _Live:
        """The service over fresh fakes, as ``accord.runtime.build`` wires the real ones."""
        w = self.work
        clock = SimClock(float(w.submit_s[0]) if len(w) else 0.0)
        store = SqlStore(f"sqlite:///{data_dir / 'accord.db'}")
        private = keys.load_or_create(data_dir)
        ledger = LedgerService(self.fed, SqlLedger(store), clock, private,
                               key_id(signing.public_key(private))[:16])
        runtime = {f"j{i}": float(r) for i, r in enumerate(w.runtime_s.tolist())}
        sites = {s.id: SimSite(s, clock, runtime, self.cfg.backfill, self.cfg.backfill_depth,
                               [o for o in self.outages if o.site == s.id]) for s in self.fed.sites}
        grid = _Grid(self.carbon, clock, self.fed.placement.slot_s, self.fed.placement.emissions > 0,
                     self.cfg.forecast, self.cfg.profiles)
        broker = Broker(self.fed, store, sites, clock, ids=self._new_id, carbon=grid,
                        quota_used=ledger.quota_used, balance=ledger.net_balance)
        return _Live(clock, store, ledger, broker, sites)

    def _new_id(self, at: datetime) -> str:
        return f"sim-{next(self._ids):09d}"

    # ── the loop ──
    def _drive(self, live: _Live) -> None:
        """Dispatcher passes at multiples of ``pass_s`` from the first submission until no
        job is left to run, or a year after the last submission."""
        sub = self.work.submit_s.tolist()
        n, i = len(sub), 0
        k = math.ceil(sub[0] / self.step) if n else 0
        last = math.floor((sub[-1] + GIVE_UP_S) / self.step) if n else -1
        while k <= last:
            t = k * self.step
            i = self._arrive(live, sub, i, t)
            report = self._pass(live, t)
            counts = live.store.count_by_state()
            if i == n and not any(c for s, c in counts.items() if not JobState(s).is_final):
                break
            k = self._next_tick(live, k, sub[i] if i < n else math.inf, counts, report)
        if self.progress is not None:
            self.progress(n, n)

    def _arrive(self, live: _Live, sub: list[float], i: int, t: float) -> int:
        """Submit the jobs due by ``t``, each at its submit time; the next job number."""
        n, tick = len(sub), max(1, len(sub) // 200)
        while i < n and sub[i] <= t:
            live.clock.set(sub[i])
            self._submit(live, i)
            i += 1
            if self.progress is not None and i % tick == 0:
                self.progress(i, n)
        return i

    def _submit(self, live: _Live, job: int) -> None:
        """As the API does after its gate: the job with the workload's sector, stored."""
        try:
            spec = parse_job_spec(self._doc(job), live.broker.federation)
            new, spec_hash = live.broker.new_submission(spec, OWNER, sector=self.work.sector)
        except InvalidInput as exc:
            self.refused[job] = exc
            return
        stored = live.store.add_job(new, spec_hash)
        self.index[stored.id] = job

    def _doc(self, job: int) -> dict[str, object]:
        """The job document a researcher would submit (the fields the kernel's spec has)."""
        w = self.work
        partner = w.partners[int(w.home[job])]
        doc: dict[str, object] = {"name": f"j{job}", "command": ["sim"], "gpus": int(w.gpus[job]),
                                  "time_limit": int(w.requested_s[job]), "partner": partner}
        if w.theme is not None:
            doc["theme"] = w.theme
        if w.window_s is not None:
            doc["deadline"] = _at(float(w.submit_s[job] + w.requested_s[job]) + w.window_s).isoformat()
        if self.cfg.policy is Policy.HOME:
            doc["data_residency"] = [self.fed.partner(partner).country]
        return doc

    def _pass(self, live: _Live, t: float) -> StepReport:
        """One dispatcher pass at ``t``, then the ledger's posting sweep until nothing is left."""
        live.clock.set(t)
        report = live.broker.step()
        while live.ledger.ledger.unposted_usage(1):
            live.ledger.post_pending()
        return report

    def _next_tick(self, live: _Live, k: int, arrival: float, counts: Mapping[str, int],
                   report: StepReport) -> int:
        """The next pass that can change anything. Every pass while a job is deferred or
        placed, or was placed this pass; else, when all that is left to place had to wait
        (for quota), the next arrival, end or UTC day (quota periods and agreements turn over);
        else the next arrival or end."""
        if counts.get(JobState.DEFERRED.value) or counts.get(JobState.PLACED.value):
            return k + 1
        waiting = counts.get(JobState.SUBMITTED.value, 0)
        if waiting and (report.placed or waiting >= live_broker.BATCH):
            return k + 1
        t = k * self.step
        soon = min([arrival, *(s.next_change() for s in live.sites.values()),
                    retry_waiting_at(t) if waiting else math.inf])
        return k + 1 if soon == math.inf else max(k + 1, math.ceil(soon / self.step))

    def history(self) -> list[tuple[float, str, str, str, float]]:
        """(end, agreement, requester, host, units) of every cross-border job the ledger
        holds usage for, in the order they ended (the kernel's ``SimLedger.history``)."""
        out = []
        for r in self.usage:
            if r.agreement and r.requester_partner:
                rate = self.fed.rate(r.gpu_model, r.start).units_per_gpu_hour
                out.append((r.end.timestamp(), r.agreement, r.requester_partner, r.host_partner,
                            r.gpu_seconds / 3600 * rate))
        return sorted(out)

    # ── the outcome ──
    def _snapshot(self, live: _Live) -> None:
        self.usage = live.store.usage()
        self.entries = live.ledger.ledger.entries()
        self.balances = {a.id: dict(live.ledger.net_balance(a.id)) for a in self.fed.agreements}

    def _outcome(self, live: _Live) -> Outcome:
        out = Outcome.empty(len(self.work))
        pool_of = {k: p for p, k in enumerate(pool_keys(self.federation))}
        footprint = {r.job_id: r for r in self.usage}
        for job in live.store.list_jobs(limit=max(1, len(self.index))):
            j = self.index[job.id]
            if job.placement is not None:
                out.pool[j] = pool_of[(job.placement.site, job.placement.pool)]
                out.agreement[j] = job.placement.agreement or ""
                out.start[j], out.end[j] = live.sites[job.placement.site].times(job.id)
            self._from_story(out, j, [e.event for e in job.story])
            record = footprint.get(job.id)
            if record is not None:
                out.energy_kwh[j] = _number(record.energy_kwh)
                out.emissions_g[j] = _number(record.emissions_g)
        out.rejected = [math.isnan(s) for s in out.start]
        return out

    def _from_story(self, out: Outcome, j: int, story: list[Event]) -> None:
        """Placement's record of the job: when it was last placed and the emissions placement
        estimated then, whether placement deferred it, and how many decisions it took."""
        decisions = [e for e in story if e.kind in (EventKind.PLACE, EventKind.DEFER)]
        places = [e for e in decisions if e.kind is EventKind.PLACE]
        if places:
            out.placed_at[j] = round(places[-1].at.timestamp() / self.step) * self.step
            grams = places[-1].get("emissions_g")
            out.estimate_g[j] = float(grams) if grams is not None else math.nan
        out.deferred[j] = any(e.kind is EventKind.DEFER and e.get("site") is not None for e in decisions)
        out.decisions[j] = len(decisions)


def _number(x: float | None) -> float:
    return math.nan if x is None else x
