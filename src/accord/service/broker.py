"""The broker: gathers facts, asks the lifecycle machine, carries out its instructions.

Every rule of a job's life is in :mod:`accord.domain.jobs.machine`. The broker reads jobs
from the store, turns what happens (a pass of the dispatcher, placement's decision, a site's
answer, a person's request) into a :mod:`stimulus <accord.domain.jobs.stimuli>`, stores the
step's events with the job in one write, and then carries out the step's instructions, each
of which gives the next stimulus (see ``docs/design/job-lifecycle.md``).

Submissions only write the store (fast, no lock). Everything else happens in
:meth:`Broker.step`, one pass of the dispatcher loop, and in the person's requests
(:meth:`Broker.cancel`, :meth:`Broker.compliance_decided`, :meth:`Broker.allocation_approved`);
all hold one lock, so a single ``accord up`` never races itself. Every step reads its work
from the store, and nothing the broker keeps in memory between passes matters: see
``docs/design/crash-safety.md``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime

from accord.domain.access.review import Review
from accord.domain.errors import Busy, Conflict, InDoubt, LeaseLost, NotFound, Unavailable
from accord.domain.federation.model import Federation
from accord.domain.jobs import codec
from accord.domain.jobs.machine import handle, news, placement_spec, submit
from accord.domain.jobs.model import Job, JobSpec, JobState, Priority, new_job
from accord.domain.jobs.site import JobLogs
from accord.domain.jobs.spec import parse_job_spec
from accord.domain.jobs.stimuli import (
    AllocationApproved,
    Cancel,
    CancelRequested,
    ComplianceDecided,
    Dispatch,
    DispatchConfirmed,
    DispatchInDoubt,
    DispatchRefused,
    Instruction,
    InternalError,
    LookUp,
    NotAtSite,
    Notify,
    Place,
    PlacementDecided,
    PlacementReviewed,
    Reconsider,
    Reconsidered,
    RecordUsage,
    ReviewPlacement,
    Rules,
    SiteDown,
    SiteReported,
    SiteUnavailable,
    Step,
    Stimulus,
    Timer,
)
from accord.domain.ledger.usage import usage_from_job
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.place import forecast_zones, place
from accord.domain.placement.records import Decision, PoolLoad, after_placing
from accord.ports import CarbonSource, Clock, InStoreBackend, JobStore, SiteBackend, WriteBatch
from accord.service.footprints import footprint_of
from accord.service.gate import Gate
from accord.service.log_context import bound
from accord.service.placement_context import Balance, QuotaUsed, build_context, no_balance, no_quota_used
from accord.service.telemetry import Telemetry

log = logging.getLogger("accord.broker")
notices = logging.getLogger("accord.notify")

ACTIVE_STATES = (JobState.SUBMITTED, JobState.DEFERRED, JobState.PLACED, JobState.DISPATCHED,
                 JobState.RUNNING)
ACTIVE = (JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING)   # placed and not yet ended
BATCH = 500


_ID_SEQUENCE = itertools.count(secrets.randbits(24))   # from a random start: other processes differ


def new_job_id(at: datetime) -> str:
    """A job id that sorts by submission time: ``j`` + ms timestamp + 24 bits of a counter
    that starts at random, so one process never makes the same id twice (within 16 million
    jobs a millisecond) and two processes rarely collide."""
    return f"j{int(at.timestamp() * 1000):011x}{next(_ID_SEQUENCE) & 0xFFFFFF:06x}"


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one dispatcher pass did (for logs and tests)."""

    placed: int = 0
    dispatched: int = 0
    finished: int = 0
    waiting: int = 0


@dataclass
class _Pass:
    """The facts one pass gathers once and shares between its jobs."""

    now: datetime
    batch: WriteBatch | None = None   # the pass's writes, committed together (see JobStore.batch)
    loads: dict[tuple[str, str], PoolLoad] = field(default_factory=dict)
    context: PlacementContext | None = None
    committed: dict[tuple[str, str, str], float] | None = None   # allocation use not yet in the ledger
    placing: bool = False          # hold dispatches back until every job of the pass is placed
    dispatches: dict[str, Dispatch] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)

    @property
    def sites_down(self) -> bool:
        return any(not load.available for load in self.loads.values())


class Broker:
    """Drives jobs from submission to their end through the lifecycle machine."""

    def __init__(
        self,
        federation: Federation,
        store: JobStore,
        backends: Mapping[str, SiteBackend],
        clock: Clock,
        ids: Callable[[datetime], str] = new_job_id,
        carbon: CarbonSource | None = None,
        quota_used: QuotaUsed = no_quota_used,
        balance: Balance = no_balance,
        gate: Gate | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.federation = federation
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.gate = gate
        self.carbon = carbon
        self.quota_used = quota_used
        self.balance = balance
        self.store = store
        self.backends = dict(backends)
        self.clock = clock
        self.ids = ids
        self.rules = Rules(federation, reviews=gate is not None)
        self._lock = threading.Lock()
        # A cache: the sites whose tracked jobs were told of their outage (losing it only
        # looks again; the machine notes an outage once).
        self._outages: set[str] = set()
        self.nudged = threading.Event()   # set when there is work for a pass before the next tick

    def nudge(self) -> None:
        """Ask for a dispatcher pass soon: a job was stored, a site reported. Raises nothing."""
        self.nudged.set()

    # ------------------------------------------------------------ submissions
    def submit(
        self, doc: Mapping[str, object], owner: str, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Parse and store a job, with no gate (as the embedded admin; the tests' and
        benchmarks' shortcut: a person's submission goes through
        :class:`~accord.service.submissions.Submissions`); the same owner and key give back
        the same job.

        Returns the job and whether it was created now (False: an earlier
        submission with the same key).

        Raises:
            InvalidInput: the document is wrong (every problem listed).
            Conflict: the key was used for a different spec.
        """
        job, spec_hash = self.new_submission(parse_job_spec(doc, self.federation), owner, idempotency_key)
        stored = self.store.add_job(job, spec_hash)
        return stored, stored.id == job.id

    def new_submission(
        self, spec: JobSpec, owner: str, idempotency_key: str | None = None,
        *, sector: str | None = None, notes: tuple[str, ...] = (), stimulus: str | None = None,
    ) -> tuple[Job, str]:
        """The new job (not stored yet) the machine makes of a parsed ``spec``, and its spec
        hash. ``sector`` (the submitter's) and ``notes`` (rules applied) come from the gate;
        ``stimulus`` names the request (default: one made from the job's id). Raises nothing."""
        spec = replace(spec, sector=sector)
        now = self.clock.now()
        job_id = self.ids(now)
        step = submit(job_id, spec, Stimulus(stimulus or f"submit.{job_id}", now), owner=owner,
                      idempotency_key=idempotency_key, notes=notes)
        return step.job, codec.spec_hash(spec)

    def preview(self, spec: JobSpec) -> Decision:
        """Where and when ``spec`` would run now (nothing is stored)."""
        now = self.clock.now()
        job = new_job("preview", spec, now)
        return place(spec, self.federation, self._loads(), now, context=self._context(now, [job]))

    # ------------------------------------------------------------ people's requests
    def cancel(self, job_id: str, reason: str = "cancelled by user") -> Job:
        """Cancel a job; one at a site is asked to stop and ends when the site confirms.

        Raises:
            NotFound: no such job.
            Conflict: the job has already ended.
            Unavailable: the job's site cannot be reached to stop it (nothing is recorded).
        """
        with self._lock:
            job = self.store.get_job(job_id)
            s = CancelRequested(self._sid("cancel", job), self.clock.now(), reason)
            step = handle(job, s, self.rules)
            if step.refused is not None:
                raise Conflict(step.refused)
            for i in step.instructions:
                if isinstance(i, Cancel):
                    self._backend(i.site).cancel(i.ref)
            return self.store.save_job(step.job)

    def compliance_decided(self, job_id: str, approved: bool, by: str, site: str, reason: str) -> Job:
        """Release a job held for compliance review at ``site`` once its operator decided (the
        decision itself is stored by access; placement reads it).

        Raises:
            NotFound: no such job. Conflict: it is not held for compliance review.
        """
        with self._lock:
            job = self.store.get_job(job_id)
            s = ComplianceDecided(self._sid("compliance", job), self.clock.now(), approved, by, site, reason)
            return self._decide(job, s)

    def allocation_approved(self, allocation: str, project: str, units: float, agreement: str) -> list[Job]:
        """Release every job of ``project`` held because its allocation would be overdrawn."""
        out = []
        with self._lock:
            for job in every_job(self.store, [JobState.HELD]):
                if job.hold is None or job.spec.project != project:
                    continue
                s = AllocationApproved(self._sid("allocation", job), self.clock.now(), allocation, project,
                                       units, agreement)
                with suppress(Conflict):
                    out.append(self._decide(job, s))
        return out

    def _decide(self, job: Job, s: Stimulus) -> Job:
        step = handle(job, s, self.rules)
        if step.refused is not None:
            raise Conflict(step.refused)
        return self.store.save_job(step.job)

    def logs(self, job_id: str) -> JobLogs:
        """The job's output so far (empty before it is dispatched).

        Raises:
            NotFound: no such job.
            Unavailable: the site cannot be reached.
        """
        job = self.store.get_job(job_id)
        if job.backend_ref is None or job.placement is None:
            return JobLogs("", "")
        return self._backend(job.placement.site).logs(job.backend_ref, job)

    def _backend(self, site_id: str) -> SiteBackend:
        try:
            return self.backends[site_id]
        except KeyError:
            raise Unavailable(f"no backend is configured for site {site_id!r}") from None

    # ------------------------------------------------------------ the dispatcher pass
    def step(self) -> StepReport:
        """One pass: release, reconsider, place, dispatch and poll. Never raises for one bad job."""
        with self._lock, self.store.batch() as batch:
            p = _Pass(self.clock.now(), batch)
            for job in self.store.queue([JobState.DEFERRED], BATCH, due_by=p.now):
                self._drive(job, Timer(self._sid("timer", job), p.now), p)
            p.loads = self._loads(p)
            self._reconsider(p)
            placed, waiting = self._place(p)
            dispatched = self._dispatch(p)
            finished = self._poll(p)
            return StepReport(placed, dispatched, finished, waiting)

    def _reconsider(self, p: _Pass) -> None:
        """Every REPLAN_S, placement looks again at each job it deferred (the longest due
        first, a batch a pass)."""
        due = self.store.queue([JobState.DEFERRED], BATCH, recheck_by=p.now)
        if due:
            p.context = self._context(p.now, due)
            for job in due:
                self._drive(job, Timer(self._sid("timer", job), p.now), p)

    def _place(self, p: _Pass) -> tuple[int, int]:
        jobs = self.store.queue([JobState.SUBMITTED], BATCH, due_by=p.now)   # waiting ones when due
        p.context = self._context(p.now, jobs) if jobs else None   # one per pass
        p.committed, p.placing = None, True
        placed = waiting = 0
        for job in sorted(jobs, key=lambda j: (j.priority is Priority.LOW, j.submitted_at, j.id)):
            after = self._drive(job, Timer(self._sid("timer", job), p.now), p)
            if after.state is JobState.PLACED and after.placement is not None:
                placed += 1
                self._placed(after, p)
            elif after.state is not JobState.DEFERRED:
                waiting += 1
        p.placing = False
        return placed, waiting

    def _placed(self, job: Job, p: _Pass) -> None:
        """Count a job placed this pass in the loads and the allocation use the pass sees."""
        assert job.placement is not None
        key = (job.placement.site, job.placement.pool)
        old = p.loads.get(key, PoolLoad(0))
        free, queued = after_placing(old.free_gpus, old.queued_gpus, job.spec.gpus)
        p.loads[key] = PoolLoad(free, queued, old.available, old.note)
        review = p.reviews.pop(job.id, None)
        if review is not None and review.commit is not None and p.committed is not None:
            k, units = review.commit
            p.committed[k] = p.committed.get(k, 0.0) + units

    def _dispatch(self, p: _Pass) -> int:
        """Hand placed jobs to their sites: this pass's placements as the machine asked, the
        others as a pass finds them (sent again, or looked up first)."""
        count = 0
        for job in self.store.queue([JobState.PLACED], BATCH):
            fresh = p.dispatches.pop(job.id, None)
            if fresh is not None:
                with self._isolated(job, p):
                    count += self._execute_and_drive(job, fresh, p).state is JobState.DISPATCHED
            else:
                after = self._drive(job, Timer(self._sid("timer", job), p.now), p)
                count += after.state is JobState.DISPATCHED
        return count

    def _poll(self, p: _Pass) -> int:
        """One batched poll per site over every tracked job; only changed jobs are loaded."""
        by_site: dict[str, list[tuple[str, str, JobState]]] = {}
        for job_id, site, ref, state in self.store.tracked():
            by_site.setdefault(site, []).append((job_id, ref, state))
        finished = 0
        for site_id, tracked in by_site.items():
            backend = self.backends.get(site_id)
            if backend is None:
                continue
            try:
                self._outside(backend, p)
                with self.telemetry.site_call(site_id, "poll"):
                    statuses = backend.poll([ref for _, ref, _ in tracked])
            except Unavailable as exc:
                if site_id not in self._outages:
                    self._outages.add(site_id)
                    for job_id, _, _ in tracked:
                        job = self.store.get_job(job_id)
                        self._drive(job, SiteDown(self._sid("poll", job), p.now, site_id, str(exc)), p)
                continue
            self._outages.discard(site_id)
            changed = {job_id: status for job_id, ref, state in tracked
                       if (status := statuses.get(ref)) is not None and news(state, status.state)}
            for job in self.store.get_jobs(list(changed)).values():
                after = self._drive(job, SiteReported(self._sid("poll", job), p.now, changed[job.id]), p)
                finished += after.state.is_final
        return finished

    # ------------------------------------------------------------ the machine and its instructions
    def _drive(self, job: Job, s: Stimulus, p: _Pass) -> Job:
        """Hand ``s`` to the machine, store the step, carry out its instructions (each gives
        the next stimulus, handed on in turn); the job as stored. An unexpected failure is
        contained to the job: noted in its story, tried again next pass."""
        with self._isolated(job, p):
            step = handle(job, s, self.rules)
            saved = self._store(job, step)
            if saved is None:
                return job
            for i in step.instructions:
                saved = self._execute_and_drive(saved, i, p)
            return saved
        return job

    def _store(self, before: Job, step: Step) -> Job | None:
        """Store the step's job (after its usage, if it ended); None if someone else changed
        it first (its instructions must not be carried out: the next pass reads it again)."""
        if step.job is before:
            return before
        if any(isinstance(i, RecordUsage) for i in step.instructions):
            # Usage first: a crash before the job is saved re-polls it, and the record's id
            # makes the second insert a no-op.
            self._record_usage(step.job)
        try:
            return self.store.save_job(step.job)
        except Conflict as exc:
            log.info("job %s changed concurrently; will retry next pass: %s", before.id, exc)
        except NotFound:
            log.warning("job %s vanished from the store", before.id)
        return None

    def _execute_and_drive(self, job: Job, i: Instruction, p: _Pass) -> Job:
        follow = self._execute(job, i, p)
        return job if follow is None else self._drive(job, follow, p)

    def _execute(self, job: Job, i: Instruction, p: _Pass) -> Stimulus | None:
        """Carry out one instruction; the stimulus its outcome gives, if any."""
        sid = self._sid(type(i).__name__.lower(), job)
        if isinstance(i, Place):
            return PlacementDecided(sid, p.now, self._placement(job, p, "first"), p.sites_down)
        if isinstance(i, ReviewPlacement):
            return self._review(job, i.decision, sid, p)
        if isinstance(i, Reconsider):
            return Reconsidered(sid, p.now, self._placement(job, p, "reconsider"))
        if isinstance(i, Dispatch):
            if p.placing:
                p.dispatches[job.id] = i
                return None
            return self._hand_over(job, i, sid, p)
        if isinstance(i, LookUp):
            return self._look_up(job, i, sid, p)
        if isinstance(i, Notify):
            notices.info("job %s %s: %s", job.id, i.what, i.text)
        return None   # RecordUsage is carried out with the store write; Cancel by cancel()

    def _placement(self, job: Job, p: _Pass, kind: str) -> Decision:
        """Placement's decision for ``job`` in this pass, counted and timed (``kind``:
        ``first`` or ``reconsider``)."""
        start = time.perf_counter()
        d = place(placement_spec(job), self.federation, p.loads, p.now, context=p.context)
        self.telemetry.placed(kind, d, time.perf_counter() - start)
        return d

    def _review(self, job: Job, d: Decision, sid: str, p: _Pass) -> Stimulus:
        assert self.gate is not None and d.chosen is not None
        review = self.gate.review(job, d.chosen, p.now, self._committed(p))
        p.reviews[job.id] = review
        return PlacementReviewed(sid, p.now, d, review)

    def _hand_over(self, job: Job, i: Dispatch, sid: str, p: _Pass) -> Stimulus:
        backend = self._backend(i.site)
        self._outside(backend, p)   # the write-ahead record is durable before the site acts
        now = self.clock.now()
        try:
            with self.telemetry.site_call(i.site, "dispatch"):
                result = backend.submit(job)
        except Busy as exc:
            return DispatchRefused(sid, now, str(exc))
        except InDoubt as exc:   # the site may have taken it: stay placed there; look it up next
            return DispatchInDoubt(sid, now, str(exc))
        except Unavailable as exc:
            p.loads[(i.site, i.pool)] = PoolLoad(0, available=False, note=str(exc))
            return SiteUnavailable(sid, now, str(exc))
        return DispatchConfirmed(sid, now, result.backend_ref, result.gpu_indices, result.adopted)

    def _look_up(self, job: Job, i: LookUp, sid: str, p: _Pass) -> Stimulus:
        backend = self._backend(i.site)
        self._outside(backend, p)
        now = self.clock.now()
        try:
            with self.telemetry.site_call(i.site, "look_up"):
                found = backend.look_up(job)
        except Unavailable as exc:   # still unknown: never send it elsewhere while it may run here
            return DispatchInDoubt(sid, now, f"cannot look it up: {exc}")
        if found is None:
            return NotAtSite(sid, now)
        return DispatchConfirmed(sid, now, found.backend_ref, found.gpu_indices, adopted=True)

    def _record_usage(self, job: Job) -> None:
        record = usage_from_job(job, self.federation)
        if record is not None:
            self.store.add_usage(footprint_of(record, self.federation, self.carbon))

    # ------------------------------------------------------------ facts
    def _outside(self, backend: SiteBackend, p: _Pass | None) -> None:
        """Before calling ``backend``: commit the pass's writes unless its calls only touch
        the hub's store (then they join the batch). Raises as :meth:`WriteBatch.flush`."""
        if p is not None and p.batch is not None and not (
                isinstance(backend, InStoreBackend) and backend.in_store):
            p.batch.flush()

    def _loads(self, p: _Pass | None = None) -> dict[tuple[str, str], PoolLoad]:
        loads: dict[tuple[str, str], PoolLoad] = {}
        for site in self.federation.sites:
            backend = self.backends.get(site.id)
            if backend is not None:
                self._outside(backend, p)
            try:
                if backend is None:
                    raise Unavailable("no backend configured")
                for pool_id, load in backend.loads().items():
                    loads[(site.id, pool_id)] = load
            except Unavailable as exc:
                for pool in site.pools:
                    loads[(site.id, pool.id)] = PoolLoad(0, available=False, note=str(exc))
        return loads

    def _context(self, now: datetime, jobs: Sequence[Job]) -> PlacementContext | None:
        """Placement's inputs for this pass, with forecasts for the zones these jobs could
        use; None (placement without carbon, quota and reciprocity terms) if building them
        fails unexpectedly: placing must go on."""
        try:
            zones = {z for job in jobs for z in forecast_zones(job.spec, self.federation)}
            context = build_context(self.federation, self.carbon, now, zones=zones,
                                    quota_used=self.quota_used, balance=self.balance)
            if self.gate is not None:
                context = replace(context, allocations=self.gate.allocations(now.date()))
            return context
        except Exception:
            log.exception("building the placement context failed; placing without it this pass")
            return None

    def _committed(self, p: _Pass) -> dict[tuple[str, str, str], float]:
        """Estimated units of jobs placed abroad and not yet ended (read once per pass, all of
        them, a page at a time, when a job first goes abroad)."""
        if p.committed is None:
            active = every_job(self.store, ACTIVE, story=False)   # specs and placements suffice
            p.committed = self.gate.committed(active, p.now) if self.gate else {}
        return p.committed

    @staticmethod
    def _sid(kind: str, job: Job) -> str:
        """A stimulus id: what, for which job, at which stored version of it (unique, and the
        same whichever process reads the job)."""
        return f"{kind}.{job.id}.{job.version}"

    @contextmanager
    def _isolated(self, job: Job, p: _Pass) -> Iterator[None]:
        """Contain an unexpected failure to one job: log it, note it, let the pass go on.

        Every line logged meanwhile names the job and its site (:mod:`~accord.service.log_context`).

        Raises:
            LeaseLost: the pass runs under a lease this replica no longer holds.
        """
        with bound(job_id=job.id, site=job.placement.site if job.placement else None):
            try:
                yield
                if p.batch is not None:
                    p.batch.flush_if_due()
            except LeaseLost:
                raise  # this replica no longer leads: the pass stops here, nothing more is written
            except Unavailable as exc:
                log.warning("job %s: %s", job.id, exc)
            except Exception as exc:  # one bad job must not stop the dispatcher for all
                log.exception("job %s: unexpected error; will retry next pass", job.id)
                with suppress(Exception):
                    current = self.store.get_job(job.id)
                    text = f"{type(exc).__name__}: {exc}"
                    s = InternalError(self._sid("error", current), self.clock.now(), text)
                    step = handle(current, s, self.rules)
                    if step.job is not current:
                        self.store.save_job(step.job)


def every_job(store: JobStore, states: Sequence[JobState], story: bool = True) -> list[Job]:
    """Every job in ``states``, oldest first, read ``10 × BATCH`` at a time (never cut off);
    ``story=False``: without their stories (see :meth:`~accord.ports.JobStore.queue`)."""
    out: list[Job] = []
    page: list[Job] | None = None
    while page is None or len(page) == 10 * BATCH:
        after = (page[-1].submitted_at, page[-1].id) if page else None
        page = store.queue(states, 10 * BATCH, after=after, story=story)
        out += page
    return out
