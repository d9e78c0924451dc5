"""The SQL store: SQLite by default, PostgreSQL in production (SQLAlchemy 2 Core).

Every write is one transaction, so a crash leaves either the whole change or
none of it. Jobs carry a version for optimistic concurrency: two writers that
read the same version cannot both save.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from accord.adapters.sql.batching import Batch, Turns, batching, open_batch
from accord.adapters.sql.fencing import check_fence
from accord.adapters.sql.notify_rows import job_notices
from accord.adapters.sql.schema import job_events, jobs, usage_records
from accord.domain.errors import AccordError, Conflict, NotFound, Unavailable
from accord.domain.jobs import codec
from accord.domain.jobs.model import Job, JobState
from accord.domain.ledger.usage import UsageRecord

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_310_001


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs.

    >>> normalise_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned for the store (SQLite: WAL, busy timeout; PostgreSQL: pool).

    Raises:
        Unavailable: the URL is not usable.
    """
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise Unavailable(f"cannot use database URL {url!r}: {exc}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe with concurrent callers on PostgreSQL).

    Raises:
        Unavailable: the database cannot be reached.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise Unavailable(f"database unreachable: {exc.orig}") from exc


class SqlStore:
    """Jobs and stories in a SQL database; see :class:`accord.ports.JobStore`."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._turns = Turns() if self.engine.dialect.name == "sqlite" else None   # see batching.py
        if auto_migrate:
            migrate(self.engine)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction (first fenced, if this thread works under a lease: see
        :mod:`accord.adapters.sql.fencing`).

        Raises:
            Unavailable: the database cannot be reached.
            LeaseLost: this thread works under a lease another replica has taken over.
        """
        batch = open_batch(self.engine)
        if batch is not None:   # a savepoint in this thread's batch (see batching.py)
            with batch.savepoint() as conn:
                yield conn
            return
        try:
            with self._turn(), self.engine.begin() as conn:
                check_fence(conn)
                yield conn
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig}") from exc

    def _turn(self) -> AbstractContextManager[None]:
        return nullcontext() if self._turns is None else self._turns.held()

    def batch(self) -> AbstractContextManager[Batch]:
        """Until the block ends, this thread's transactions are savepoints of one, committed
        at the batch's flushes (see :mod:`accord.adapters.sql.batching`).

        Raises:
            Unavailable, LeaseLost: as :meth:`Batch.flush`.
        """
        return batching(self.engine, self._turns)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once this thread's writes so far are committed: at once, or when its
        open batch is flushed (dropped with the batch if it is rolled back). Raises what
        ``hook`` raises when run at once."""
        batch = open_batch(self.engine)
        if batch is None:
            hook()
        else:
            batch.after_commit(hook)

    def add_job(self, job: Job, spec_hash: str) -> Job:
        """See :meth:`accord.ports.JobStore.add_job`."""
        try:
            with self.transaction() as conn:
                conn.execute(insert(jobs), [_job_row(job, spec_hash)])
                rows = [_event_row(job.id, e) for e in job.story]
                conn.execute(insert(job_events), rows)
                job_notices(conn, job.id, job.owner, _hold(job), rows)
            return job
        except IntegrityError:
            if job.idempotency_key is None:
                raise Conflict(f"job id {job.id} already exists") from None
        existing, stored_hash = self._by_key(job.owner, job.idempotency_key)
        if stored_hash != spec_hash:
            raise Conflict(
                f"idempotency key {job.idempotency_key!r} was already used for job "
                f"{existing.id} with a different spec; use a new key for a new job")
        return existing

    def add_jobs(self, items: Sequence[tuple[Job, str]]) -> list[Job | AccordError]:
        """Insert many new jobs in one transaction (group commit).

        Returns, per item, the stored job (an earlier one for a reused key) or the
        error that item alone met. A batch that meets any unique-key clash is
        retried item by item, so one retried submission never fails the others.
        """
        try:
            with self.transaction() as conn:
                conn.execute(insert(jobs), [_job_row(j, h) for j, h in items])
                conn.execute(insert(job_events),
                             [_event_row(j.id, e) for j, _ in items for e in j.story])
                for j, _ in items:
                    job_notices(conn, j.id, j.owner, _hold(j), [_event_row(j.id, e) for e in j.story])
            return [j for j, _ in items]
        except IntegrityError:
            pass
        out: list[Job | AccordError] = []
        for job, spec_hash in items:
            try:
                out.append(self.add_job(job, spec_hash))
            except AccordError as exc:
                out.append(exc)
        return out

    def _by_key(self, owner: str, key: str) -> tuple[Job, str]:
        with self.transaction() as conn:
            row = conn.execute(
                select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
            ).mappings().one()
            return self._load(conn, [row])[0], row["spec_hash"]

    def get_job(self, job_id: str) -> Job:
        """See :meth:`accord.ports.JobStore.get_job`."""
        with self.transaction() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            return self._load(conn, [row])[0]

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """See :meth:`accord.ports.JobStore.get_jobs`."""
        ids = list(dict.fromkeys(job_ids))
        with self.transaction() as conn:
            rows = [r for chunk in _chunks(ids, 500)
                    for r in conn.execute(select(jobs).where(jobs.c.id.in_(chunk))).mappings()]
            return {j.id: j for j in self._load(conn, rows)}

    def save_job(self, job: Job) -> Job:
        """See :meth:`accord.ports.JobStore.save_job`."""
        with self.transaction() as conn:
            result = conn.execute(_SAVE, {**_mutable_row(job), "version": job.version + 1,
                                          "b_id": job.id, "b_version": job.version})
            if result.rowcount != 1:
                stored = conn.execute(
                    select(jobs.c.version).where(jobs.c.id == job.id)).scalar_one_or_none()
                if stored is None:
                    raise NotFound(f"no job {job.id!r}")
                raise Conflict(f"job {job.id} was changed by someone else (version {stored}, "
                               f"read at {job.version}); reload and retry")
            known = conn.execute(_EVENTS_KNOWN, {"b_id": job.id}).scalar_one()
            fresh = [_event_row(job.id, e) for e in job.story if e.seq >= known]
            if fresh:
                conn.execute(insert(job_events), fresh)
                job_notices(conn, job.id, job.owner, _hold(job), fresh)   # same transaction
        return _with_version(job, job.version + 1)

    def list_jobs(
        self,
        states: Sequence[JobState] | None = None,
        owner: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Job]:
        """See :meth:`accord.ports.JobStore.list_jobs`."""
        query = select(jobs).order_by(jobs.c.submitted_at.desc(), jobs.c.id.desc()).limit(limit)
        if states is not None:
            query = query.where(jobs.c.state.in_([s.value for s in states]))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if before is not None:
            query = query.where(jobs.c.id < before)
        with self.transaction() as conn:
            rows = conn.execute(query).mappings().all()
            return self._load(conn, list(rows))

    def queue(
        self,
        states: Sequence[JobState],
        limit: int,
        *,
        due_by: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        story: bool = True,
        recheck_by: datetime | None = None,
    ) -> list[Job]:
        """See :meth:`accord.ports.JobStore.queue`."""
        c = jobs.c
        query = (select(jobs).where(c.state.in_([s.value for s in states]))
                 .order_by(c.submitted_at.asc(), c.id.asc()).limit(limit))
        if due_by is not None:
            query = query.where(or_(c.not_before.is_(None), c.not_before <= due_by))
        if recheck_by is not None:
            query = (query.where(c.recheck_at <= recheck_by)
                     .order_by(None).order_by(c.recheck_at.asc(), c.submitted_at.asc(), c.id.asc()))
        if after is not None:
            at, job_id = after
            query = query.where(or_(c.submitted_at > at, and_(c.submitted_at == at, c.id > job_id)))
        with self.transaction() as conn:
            rows = conn.execute(query).mappings().all()
            return self._load(conn, list(rows)) if story else [_job_from(r, []) for r in rows]

    def add_usage(self, record: UsageRecord) -> bool:
        """Store a usage record once; True if it is new, False if its id was already stored."""
        row = {f: getattr(record, f) for f in UsageRecord.__dataclass_fields__}
        row["recorded_at"] = datetime.now(UTC)
        try:
            with self.transaction() as conn:
                conn.execute(insert(usage_records), [row])
            return True
        except IntegrityError:
            return False

    def usage(self, job_id: str | None = None, site: str | None = None) -> list[UsageRecord]:
        """Usage records, oldest first, optionally for one job or site."""
        query = select(usage_records).order_by(usage_records.c.start, usage_records.c.id)
        if job_id is not None:
            query = query.where(usage_records.c.job_id == job_id)
        if site is not None:
            query = query.where(usage_records.c.site == site)
        return self._usage_rows(query)

    def usage_started(self, start: datetime, end: datetime) -> list[UsageRecord]:
        """Usage records whose run started in [start, end), oldest first (e.g. one month's)."""
        query = (select(usage_records)
                 .where(usage_records.c.start >= start, usage_records.c.start < end)
                 .order_by(usage_records.c.start, usage_records.c.id))
        return self._usage_rows(query)

    def _usage_rows(self, query: Any) -> list[UsageRecord]:
        fields = list(UsageRecord.__dataclass_fields__)
        with self.transaction() as conn:
            return [UsageRecord(**{f: r[f] for f in fields}) for r in conn.execute(query).mappings()]

    def tracked(self) -> list[tuple[str, str, str, JobState]]:
        """(job id, site, backend ref, state) of every job at a site: light, no stories."""
        query = select(jobs.c.id, jobs.c.site, jobs.c.backend_ref, jobs.c.state).where(
            jobs.c.state.in_([JobState.DISPATCHED.value, JobState.RUNNING.value]),
            jobs.c.backend_ref.is_not(None))
        with self.transaction() as conn:
            return [(r[0], r[1], r[2], JobState(r[3])) for r in conn.execute(query)]

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.transaction() as conn:
            rows = conn.execute(text("SELECT state, COUNT(*) FROM jobs GROUP BY state")).all()
            return {str(r[0]): int(r[1]) for r in rows}

    def count_by_state_and_site(self) -> dict[tuple[str, str | None], int]:
        """How many jobs are in each (state, site) pair; site None: not placed yet."""
        with self.transaction() as conn:
            rows = conn.execute(text("SELECT state, site, COUNT(*) FROM jobs GROUP BY state, site")).all()
            return {(str(r[0]), None if r[1] is None else str(r[1])): int(r[2]) for r in rows}

    def _load(self, conn: Connection, rows: list[Any]) -> list[Job]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        events: dict[str, list[Any]] = {i: [] for i in ids}
        for chunk in _chunks(ids, 500):
            for e in conn.execute(
                select(job_events).where(job_events.c.job_id.in_(chunk)).order_by(
                    job_events.c.job_id, job_events.c.seq)
            ).mappings():
                events[e["job_id"]].append(e)
        return [_job_from(r, events[r["id"]]) for r in rows]


# Built once (SQLAlchemy then compiles them once): the dispatcher saves a job at every step.
_SAVE = update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.version == bindparam("b_version"))
_EVENTS_KNOWN = select(func.count()).select_from(job_events).where(job_events.c.job_id == bindparam("b_id"))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _with_version(job: Job, version: int) -> Job:
    return replace(job, version=version)


def _mutable_row(job: Job) -> dict[str, Any]:
    p = job.placement
    return {
        "state": job.state.value,
        "updated_at": job.story[-1].event.at if job.story else datetime.now(UTC),
        "not_before": job.not_before,
        "site": p.site if p else None,
        "pool": p.pool if p else None,
        "agreement": p.agreement if p else None,
        "backend_ref": job.backend_ref,
        "gpu_indices": json.dumps(list(job.gpu_indices)),
        "outcome": json.dumps(codec.encode_outcome(job.outcome)) if job.outcome else None,
        "substate": json.dumps(codec.compact_substate(job)),
        "recheck_at": job.deferral.recheck_at if job.deferral else None,
    }


def _job_row(job: Job, spec_hash: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "owner": job.owner,
        "idempotency_key": job.idempotency_key,
        "spec_hash": spec_hash,
        "spec": json.dumps(codec.encode_spec(job.spec)),
        "submitted_at": job.submitted_at,
        "version": job.version,
        **_mutable_row(job),
    }


def _hold(job: Job) -> dict[str, Any] | None:
    h = job.hold
    return None if h is None else {"kind": h.kind.value, "rule": h.rule, "site": h.site}


def _event_row(job_id: str, entry: Any) -> dict[str, Any]:
    e = entry.event
    return {
        "job_id": job_id,
        "seq": entry.seq,
        "kind": e.kind.value,
        "at": e.at,
        "reason": e.reason,
        "data": json.dumps(dict(e.data), sort_keys=True),
        "before": entry.before.value if entry.before else None,
        "after": entry.after.value,
        "stimulus": e.stimulus[:200],
    }


def _job_from(row: Any, events: list[Any]) -> Job:
    story = tuple(
        codec.decode_entry({
            "seq": e["seq"], "kind": e["kind"], "at": e["at"].isoformat(), "reason": e["reason"],
            "data": json.loads(e["data"]), "before": e["before"], "after": e["after"],
            "stimulus": e["stimulus"],
        })
        for e in events
    )
    return Job(
        id=row["id"],
        spec=codec.decode_spec(json.loads(row["spec"])),
        state=JobState(row["state"]),
        submitted_at=row["submitted_at"],
        idempotency_key=row["idempotency_key"],
        owner=row["owner"],
        placement=codec.decode_placement(row["site"], row["pool"], row["agreement"]),
        backend_ref=row["backend_ref"],
        gpu_indices=tuple(json.loads(row["gpu_indices"])),
        outcome=codec.decode_outcome(json.loads(row["outcome"])) if row["outcome"] else None,
        not_before=row["not_before"],
        story=story,
        version=row["version"],
        **codec.decode_substate(json.loads(row["substate"])),
    )
