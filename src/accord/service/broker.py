"""The broker: takes submissions, places, dispatches and tracks jobs through the ports.

Submissions only write the store (fast, no lock). Everything else happens in
:meth:`Broker.step`, one pass of the dispatcher loop, and in :meth:`Broker.cancel`;
both hold one lock, so a single ``accord up`` never races itself. Every step
reads its work from the store, so a restart after a crash simply carries on:
see ``docs/design/crash-safety.md``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from accord.domain.carbon.footprint import run_span, with_footprint
from accord.domain.errors import Busy, Conflict, InDoubt, NotFound, Unavailable
from accord.domain.federation.model import Federation
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, Job, JobSpec, JobState, Placement, apply, new_job
from accord.domain.jobs.spec import parse_job_spec
from accord.domain.ledger.usage import usage_from_job
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.place import flexibility_s, forecast_zones, place, pool_keys
from accord.domain.placement.records import (
    Candidate,
    Decision,
    PoolLoad,
    Verdict,
    after_placing,
    retry_waiting_at,
)
from accord.ports import (
    CarbonSource,
    Clock,
    JobLogs,
    JobStore,
    RemoteState,
    RemoteStatus,
    SiteBackend,
)
from accord.service.gate import Action as GateAction
from accord.service.gate import Gate, Review
from accord.service.placement_context import (
    Balance,
    QuotaUsed,
    build_context,
    no_balance,
    no_quota_used,
)

log = logging.getLogger("accord.broker")

ACTIVE_STATES = (JobState.SUBMITTED, JobState.DEFERRED, JobState.PLACED, JobState.DISPATCHED,
                 JobState.RUNNING)
BATCH = 500


def new_job_id(at: datetime) -> str:
    """A job id that sorts by submission time: ``j`` + ms timestamp + random."""
    return f"j{int(at.timestamp() * 1000):011x}{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one dispatcher pass did (for logs and tests)."""

    placed: int = 0
    dispatched: int = 0
    finished: int = 0
    waiting: int = 0


class Broker:
    """Drives jobs from submission to their end."""

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
    ) -> None:
        self.federation = federation
        self.gate = gate
        self.carbon = carbon
        self.quota_used = quota_used
        self.balance = balance
        self.store = store
        self.backends = dict(backends)
        self.clock = clock
        self.ids = ids
        self._lock = threading.Lock()
        self._outages: set[str] = set()  # sites whose tracked jobs were told of the outage
        self._fresh_intents: set[str] = set()  # intents written by this process, not yet tried
        self._checked: dict[str, datetime] = {}  # deferred job -> when it was last reconsidered
        self._replan_after: tuple[datetime, str] | None = None   # where the next page of deferred jobs starts
        # allocation use not yet in the ledger, read once per pass when a job first goes abroad
        self._committed: dict[tuple[str, str, str], float] | None = None

    # ------------------------------------------------------------ user actions
    def submit(
        self, doc: Mapping[str, object], owner: str, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Validate and store a job; the same owner and key give back the same job.

        Returns the job and whether it was created now (False: an earlier
        submission with the same key).

        Raises:
            InvalidInput: the document is wrong (every problem listed).
            Conflict: the key was used for a different spec.
        """
        job, spec_hash = self.new_submission(doc, owner, idempotency_key)
        stored = self.store.add_job(job, spec_hash)
        return stored, stored.id == job.id

    def new_submission(
        self, doc: Mapping[str, object], owner: str, idempotency_key: str | None = None,
        *, sector: str | None = None, notes: tuple[str, ...] = (),
    ) -> tuple[Job, str]:
        """Validate a job document and build the new job (not stored yet) and its spec hash.
        ``sector`` (the submitter's) and ``notes`` (rules applied) come from the gate.

        Raises:
            InvalidInput: the document is wrong (every problem listed).
        """
        spec = replace(parse_job_spec(doc, self.federation), sector=sector)
        now = self.clock.now()
        job = new_job(self.ids(now), spec, now, idempotency_key=idempotency_key, owner=owner)
        for note in notes:
            job = apply(job, Event(EventKind.NOTE, now, note))
        return job, codec.spec_hash(spec)

    def preview(self, spec: JobSpec) -> Decision:
        """Where and when ``spec`` would run now (nothing is stored)."""
        now = self.clock.now()
        job = new_job("preview", spec, now)
        return place(spec, self.federation, self._loads(), now, context=self._placement_context(now, [job]))

    def release(self, job_id: str, reason: str) -> Job:
        """Release a held job for placement again.

        Raises:
            NotFound: no such job. InvalidTransition: it is not held.
        """
        with self._lock:
            job = self.store.get_job(job_id)
            return self._save(apply(job, Event(EventKind.RELEASE, self.clock.now(), reason)))

    def cancel(self, job_id: str, reason: str = "cancelled by user") -> Job:
        """Cancel a job; one at a site is asked to stop and ends when the site confirms.

        Raises:
            NotFound: no such job.
            Conflict: the job has already ended.
            Unavailable: the job's site cannot be reached to stop it.
        """
        with self._lock:
            job = self.store.get_job(job_id)
            if job.state.is_final:
                raise Conflict(f"job {job_id} has already ended ({job.state.value})")
            now = self.clock.now()
            if job.state.at_site and job.backend_ref is not None and job.placement is not None:
                self._backend(job.placement.site).cancel(job.backend_ref)
                return self.store.save_job(apply(job, Event(EventKind.NOTE, now,
                                                            f"cancel requested: {reason}")))
            return self.store.save_job(apply(job, Event(EventKind.CANCEL, now, reason)))

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

    # ------------------------------------------------------------ dispatcher
    def step(self) -> StepReport:
        """One pass: release, place, dispatch and poll. Never raises for one bad job."""
        with self._lock:
            now = self.clock.now()
            released = self._release_deferred(now, self.store.queue([JobState.DEFERRED], BATCH, due_by=now))
            loads = self._loads()
            released += self._reconsider_deferred(now, loads, self._deferred_page())
            placed, waiting = self._place_submitted(now, loads)
            dispatched = self._dispatch_placed(loads)
            finished = self._poll_sites()
            log.debug("released %d deferred job(s)", released)
            return StepReport(placed, dispatched, finished, waiting)

    def _release_deferred(self, now: datetime, deferred: list[Job]) -> int:
        count = 0
        for job in deferred:
            if job.not_before is None or job.not_before <= now:
                shifted = _placement_deferred(job)
                data = ((RELEASED, "start"),) if shifted else ()
                self._save(apply(job, Event(EventKind.RELEASE, now, "its start time has come", data),
                                 not_before=None))
                count += 1
        return count

    def _deferred_page(self) -> list[Job]:
        """The next BATCH deferred jobs, first come first served, from where the last page
        ended (then from the first again), so every deferred job is looked at in turn however
        many there are."""
        page = self.store.queue([JobState.DEFERRED], BATCH, after=self._replan_after)
        self._replan_after = (page[-1].submitted_at, page[-1].id) if len(page) == BATCH else None
        return page

    def _reconsider_deferred(
        self, now: datetime, loads: dict[tuple[str, str], PoolLoad], deferred: list[Job]
    ) -> int:
        """Every REPLAN_S, place each job placement deferred again with fresh forecasts and
        queues; if the best choice moved (another site, or a start at least a slot earlier),
        release it so this pass places it anew. An unchanged decision leaves no trace in the
        story. A job waiting for its earliest start is left alone: it cannot start earlier,
        and is placed anew when released."""
        due = [j for j in deferred  # the ones released this pass fail the test below
               if j.not_before is not None and j.not_before > now and _placement_deferred(j)
               and (now - self._checked.get(j.id, j.story[-1].event.at)).total_seconds()
               >= REPLAN_S]
        if not due:
            return 0
        context = self._placement_context(now, due)
        slot = timedelta(seconds=self.federation.placement.slot_s)
        released = 0
        for job in due:
            with self._isolated(job):
                self._checked[job.id] = now
                d = place(_placement_spec(job), self.federation, loads, now, context=context)
                if d.chosen is None or d.verdict not in (Verdict.PLACE, Verdict.DEFER):
                    continue
                before = job.story[-1].event.get("site")
                start = d.start or now
                if d.chosen.site != before or start + slot <= (job.not_before or now):
                    why = (f"reconsidered: forecasts or queues changed; the best start is now "
                           f"{start.isoformat()} at {d.chosen.site} (was {job.not_before} at "
                           f"{before})")
                    self._save(apply(job, Event(EventKind.RELEASE, now, why), not_before=None))
                    self._checked.pop(job.id, None)
                    released += 1
        return released

    def _loads(self) -> dict[tuple[str, str], PoolLoad]:
        loads: dict[tuple[str, str], PoolLoad] = {}
        for site in self.federation.sites:
            backend = self.backends.get(site.id)
            try:
                if backend is None:
                    raise Unavailable("no backend configured")
                for pool_id, load in backend.loads().items():
                    loads[(site.id, pool_id)] = load
            except Unavailable as exc:
                for pool in site.pools:
                    loads[(site.id, pool.id)] = PoolLoad(0, available=False, note=str(exc))
        return loads

    def _place_submitted(
        self, now: datetime, loads: dict[tuple[str, str], PoolLoad]
    ) -> tuple[int, int]:
        placed = waiting = 0
        jobs = self.store.queue([JobState.SUBMITTED], BATCH, due_by=now)   # waiting ones when due
        context = self._placement_context(now, jobs) if jobs else None  # one per pass
        self._committed = None
        for job in sorted(jobs, key=lambda j: (_lowered(j), j.submitted_at, j.id)):
            with self._isolated(job):
                start = job.spec.earliest_start
                if start is not None and start > now:
                    self._save(apply(job, Event(EventKind.DEFER, now, "waits for its earliest "
                                                f"start {start.isoformat()}"), not_before=start))
                    continue
                spec = _placement_spec(job)
                d = place(spec, self.federation, loads, now, context=context)
                if d.verdict is Verdict.DEFER and _released_at_start(job):
                    d = d.placed_now("Placed at the start its deferral chose: a job is shifted in time "
                                     "once, so its window cannot move ahead of it")
                if self._act_on(job, d, now, loads, spec):
                    placed += 1
                elif d.verdict is not Verdict.DEFER:
                    waiting += 1
        return placed, waiting

    def _placement_context(self, now: datetime, jobs: list[Job]) -> PlacementContext | None:
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

    def _placement_defer(self, job: Job, spec: JobSpec, d: Decision, now: datetime) -> Decision | None:
        """Defer the job to the decision's start; or, when releasing it then would leave
        less than its run time before its deadline, the decision to place it now instead.
        A job without a deadline keeps the window of its first deferral (its end goes in
        the story, see :func:`_placement_spec`)."""
        c, start, deadline = d.chosen, d.start, spec.deadline
        assert c is not None and start is not None
        run = timedelta(seconds=spec.time_limit_s)
        if deadline is not None and start + run > deadline:
            return d.placed_now(f"Placed at once: starting at {start.isoformat()} would finish "
                                f"after the deadline {deadline.isoformat()}")
        data: tuple[tuple[str, str], ...] = (("pool", c.pool), ("site", c.site), ("start", start.isoformat()),
                                             ("score", f"{c.score:.4f}"))
        if deadline is None:
            k = pool_keys(self.federation).index((c.site, c.pool))
            flex = flexibility_s(spec, self.federation, now)[k]
            data += ((WINDOW, (now + timedelta(seconds=flex) + run).isoformat()),)
        self._save(apply(job, Event(EventKind.DEFER, now, d.explain(), data), not_before=start))
        return None

    def _act_on(
        self, job: Job, d: Decision, now: datetime, loads: dict[tuple[str, str], PoolLoad],
        spec: JobSpec | None = None,
    ) -> bool:
        """Carry out placement's decision ``d`` for ``job`` (``spec``: the spec placement saw,
        :func:`_placement_spec` if not given); True if the job was placed."""
        if d.verdict is Verdict.DEFER and d.chosen is not None and d.start is not None:
            instead = self._placement_defer(job, spec or _placement_spec(job), d, now)
            if instead is None:
                return False
            d = instead
        if d.verdict is Verdict.PLACE and d.chosen is not None:
            c = d.chosen
            review = None
            if self.gate is not None:   # only a job abroad draws on an allocation
                review = self.gate.review(job, c, now, self._committed_use(now) if c.agreement else {})
            if review is not None and not self._passes(job, review, now):
                return False
            why = d.explain() + (f" {review.note}" if review is not None and review.note else "")
            event = Event(EventKind.PLACE, now, why,
                          (("pool", c.pool), ("site", c.site), ("score", f"{c.score:.4f}"),
                           *_estimates(c, d.reference)))
            placed = apply(job, event, placement=Placement(c.site, c.pool, c.agreement), not_before=None)
            # The dispatch intent goes in the same write; this process remembers it wrote it,
            # so its own first attempt skips the look-up (after a crash, the next one does not).
            intent = Event(EventKind.NOTE, now, f"dispatching to {c.site}", ((INTENT, "dispatch"),))
            if self._save(apply(placed, intent)).version != job.version:
                self._fresh_intents.add(job.id)
            old = loads.get((c.site, c.pool), PoolLoad(0))
            free, queued = after_placing(old.free_gpus, old.queued_gpus, job.spec.gpus)
            loads[(c.site, c.pool)] = PoolLoad(free, queued, old.available, old.note)
            return True
        if d.verdict is Verdict.REJECT:
            self._save(apply(job, Event(EventKind.FAIL, now, d.explain())))
            return False
        self._wait(job, d, now, loads)
        return False

    def _wait(self, job: Job, d: Decision, now: datetime, loads: dict[tuple[str, str], PoolLoad]) -> None:
        """Note why the job waits. While every site answers, only a new UTC day (an agreement
        in force) or month (quotas renewed) can change that: the job is tried again at the
        next midnight, and until then leaves the queue to the jobs behind it."""
        if any(not load.available for load in loads.values()):
            self._note_once(job, d.explain(), now)   # a site that is down may answer next pass
            return
        retry = datetime.fromtimestamp(retry_waiting_at(now.timestamp()), UTC)
        why = f"{d.explain()} Tried again at {retry:%Y-%m-%d %H:%M} UTC, when the day turns."
        self._save(apply(job, Event(EventKind.NOTE, now, why), not_before=retry))

    def _passes(self, job: Job, review: Review, now: datetime) -> bool:
        """Act on the gate's review: False (and the job held, failed or put back with
        lower priority) unless it may be placed now."""
        if review.action is GateAction.HOLD:
            self._save(apply(job, Event(EventKind.HOLD, now, review.note, review.data)))
            return False
        if review.action is GateAction.FAIL:
            self._save(apply(job, Event(EventKind.FAIL, now, review.note, review.data)))
            return False
        if review.action is GateAction.LOWER and not _lowered(job):
            self._save(apply(job, Event(EventKind.NOTE, now, review.note + "; it yields to other "
                                        "jobs in the next pass", (*review.data, (PRIORITY, "low")))))
            return False
        if review.commit is not None:
            key, units = review.commit
            committed = self._committed_use(now)
            committed[key] = committed.get(key, 0.0) + units
        return True

    def _committed_use(self, now: datetime) -> dict[tuple[str, str, str], float]:
        """Estimated units of jobs placed abroad and not yet ended (read once per pass, all
        of them, a page at a time)."""
        if self._committed is None:
            active = every_job(self.store, ACTIVE, story=False)   # specs and placements suffice
            self._committed = self.gate.committed(active, now) if self.gate else {}
        return self._committed

    def _note_once(self, job: Job, reason: str, now: datetime) -> None:
        """Add a NOTE unless the story already ends with the same one (no story spam)."""
        last = job.story[-1].event if job.story else None
        if last is not None and last.kind is EventKind.NOTE and last.reason == reason:
            return
        self._save(apply(job, Event(EventKind.NOTE, now, reason)))

    def _dispatch_placed(self, loads: dict[tuple[str, str], PoolLoad]) -> int:
        count = 0
        for job in self.store.queue([JobState.PLACED], BATCH):
            with self._isolated(job):
                count += self._dispatch_one(job, loads)
        return count

    def _dispatch_one(self, job: Job, loads: dict[tuple[str, str], PoolLoad]) -> int:
        assert job.placement is not None
        site, pool = job.placement.site, job.placement.pool
        backend = self.backends.get(site)
        now = self.clock.now()
        try:
            if backend is None:
                raise Unavailable(f"no backend for site {site}")
            if not dispatch_attempted(job):
                # Write-ahead: after a crash from here on, the next try looks the job up.
                job = self.store.save_job(apply(job, Event(
                    EventKind.NOTE, now, f"dispatching to {site}", ((INTENT, "dispatch"),))))
                self._fresh_intents.add(job.id)
            fresh = job.id in self._fresh_intents
            self._fresh_intents.discard(job.id)
            result = backend.submit(job, maybe_submitted=not fresh)
        except Busy as exc:
            self._note_once(job, f"waiting for capacity: {exc}", now)
            return 0
        except InDoubt as exc:
            # The site may have taken it: stay placed there; the next try looks it up.
            self._note_once(job, f"dispatch to {site} in doubt, will check: {exc}", now)
            return 0
        except Unavailable as exc:
            loads[(site, pool)] = PoolLoad(0, available=False, note=str(exc))
            self._save(apply(job, Event(EventKind.REQUEUE, now, f"site {site} unavailable: {exc}"),
                             placement=None))
            return 0
        verb = "adopted the submission found at" if result.adopted else "dispatched to"
        event = Event(EventKind.DISPATCH, now, f"{verb} {site}",
                      (("backend_ref", result.backend_ref),))
        self._save(apply(job, event, backend_ref=result.backend_ref,
                         gpu_indices=result.gpu_indices))
        return 1

    def _poll_sites(self) -> int:
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
                statuses = backend.poll([ref for _, ref, _ in tracked])
            except Unavailable as exc:
                if site_id not in self._outages:
                    self._outages.add(site_id)
                    self._note_unreachable(site_id, tracked, exc)
                continue
            self._outages.discard(site_id)
            for job_id, ref, state in tracked:
                status = statuses.get(ref)
                if status is None or not _changed(state, status.state):
                    continue
                job = self.store.get_job(job_id)
                with self._isolated(job):
                    finished += int(self._track(job, status))
        return finished

    def _note_unreachable(
        self, site_id: str, tracked: list[tuple[str, str, JobState]], exc: Exception
    ) -> None:
        now = self.clock.now()
        for job_id, _, _ in tracked:
            job = self.store.get_job(job_id)
            self._note_once(job, f"cannot reach site {site_id}: {exc}", now)

    def _track(self, job: Job, status: RemoteStatus) -> bool:
        now = self.clock.now()
        if status.state is RemoteState.PENDING:
            return False
        if status.state is RemoteState.RUNNING:
            if job.state is JobState.DISPATCHED:
                at = status.started_at or now
                self._save(apply(job, Event(EventKind.START, at, "started at the site")))
            return False
        if job.state is JobState.DISPATCHED and status.started_at is not None:
            job = self._save(apply(job, Event(EventKind.START, status.started_at,
                                              "started at the site")))
        kind = _FINAL_EVENT[status.state]
        reason = status.reason or status.state.value
        ended = status.outcome.ended_at if status.outcome and status.outcome.ended_at else now
        data = (("exit_code", str(status.outcome.exit_code)),) if status.outcome else ()
        final = apply(job, Event(kind, ended, reason, data), outcome=status.outcome)
        record = usage_from_job(final, self.federation)
        if record is not None:
            site, why = self.federation.site(record.site), "the broker has no carbon source"
            try:
                series = (self.carbon.intensity(site.grid_zone, *run_span(record))
                          if self.carbon is not None else None)
            except Exception as exc:  # carbon data must never fail or hold back a job's end
                series, why = None, str(exc) or type(exc).__name__
                log.warning("job %s: emissions unknown: %r", job.id, exc)
            record = with_footprint(record, site, series, why)
            # Usage first: a crash before the job is saved re-polls it, and the
            # record's id makes the second insert a no-op.
            self.store.add_usage(record)
        self._save(final)
        return True

    @contextmanager
    def _isolated(self, job: Job) -> Iterator[None]:
        """Contain an unexpected failure to one job: log it, note it, let the pass go on."""
        try:
            yield
        except Unavailable as exc:
            log.warning("job %s: %s", job.id, exc)
        except Exception as exc:  # one bad job must not stop the dispatcher for all
            log.exception("job %s: unexpected error; will retry next pass", job.id)
            with suppress(Exception):
                self._note_once(job, f"internal error, retrying: {type(exc).__name__}: {exc}",
                                self.clock.now())

    def _save(self, job: Job) -> Job:
        try:
            return self.store.save_job(job)
        except Conflict as exc:
            log.info("job %s changed concurrently; will retry next pass: %s", job.id, exc)
            return job
        except NotFound:
            log.warning("job %s vanished from the store", job.id)
            return job


INTENT = "intent"
REPLAN_S = 600
WINDOW = "window_end"  # story data key: the end of a deferred job's window (it had no deadline)
RELEASED = "released"  # story data key: "start" when a placement deferral's start came
PRIORITY = "priority"  # story data key: "low" once allocation enforcement lowered the job


def _estimates(c: Candidate, ref: Candidate | None) -> tuple[tuple[str, str], ...]:
    """The chosen candidate's estimated emissions and the reference's (running now at the
    job's home site: the baseline a saving is measured against), in grams, for the PLACE
    event's data; nothing that placement did not estimate."""
    out: list[tuple[str, str]] = []
    if c.emissions_g is not None:
        out.append(("emissions_g", f"{c.emissions_g:.3f}"))
        if ref is not None and ref.emissions_g is not None:
            out += [("baseline_g", f"{ref.emissions_g:.3f}"), ("baseline_site", ref.site),
                    ("baseline_pool", ref.pool)]
    return tuple(out)


def _changed(state: JobState, remote: RemoteState) -> bool:
    """Whether a remote status means something new for a job in ``state``."""
    if remote is RemoteState.PENDING:
        return False
    return not (remote is RemoteState.RUNNING and state is JobState.RUNNING)


ACTIVE = (JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING)   # placed and not yet ended


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


def _placement_deferred(job: Job) -> bool:
    """Whether the job's last deferral was placement's (a chosen later start), not a
    wait for its earliest start."""
    last = next((e.event for e in reversed(job.story) if e.event.kind is EventKind.DEFER), None)
    return last is not None and last.get("site") is not None


def _placement_spec(job: Job) -> JobSpec:
    """The spec placement sees: a job without a deadline that placement deferred keeps the
    window of its first deferral as its deadline, so reconsidering or releasing it cannot
    move its window ahead of it."""
    if job.spec.deadline is not None:
        return job.spec
    end = next((e.event.get(WINDOW) for e in job.story
                if e.event.kind is EventKind.DEFER and e.event.get(WINDOW)), None)
    return job.spec if end is None else replace(job.spec, deadline=datetime.fromisoformat(end))


def _released_at_start(job: Job) -> bool:
    """Whether the job was just released because the start placement chose has come."""
    last = job.story[-1].event if job.story else None
    return last is not None and last.kind is EventKind.RELEASE and last.get(RELEASED) == "start"


def _lowered(job: Job) -> bool:
    """Whether allocation enforcement lowered the job's priority."""
    return any(e.event.get(PRIORITY) == "low" for e in job.story)


def dispatch_attempted(job: Job) -> bool:
    """Whether a dispatch of the job's current placement may have reached its site.

    True when the story has a write-ahead "dispatch" note after the latest PLACE.
    """
    for entry in reversed(job.story):
        if entry.event.kind is EventKind.PLACE:
            return False
        if entry.event.kind is EventKind.NOTE and entry.event.get(INTENT) == "dispatch":
            return True
    return False


_FINAL_EVENT = {
    RemoteState.COMPLETED: EventKind.COMPLETE,
    RemoteState.FAILED: EventKind.FAIL,
    RemoteState.CANCELLED: EventKind.CANCEL,
    RemoteState.TIMEOUT: EventKind.TIME_OUT,
    RemoteState.NODE_FAIL: EventKind.FAIL,
    RemoteState.LOST: EventKind.FAIL,
}
