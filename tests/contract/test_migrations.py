"""The migrations build exactly the tables that ``schema.py`` declares (SQLite and
PostgreSQL): a column added to one and not the other fails here, not in production."""

from __future__ import annotations

import json
from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from accord.adapters.sql.schema import metadata
from accord.adapters.sql.store import MIGRATIONS, SqlStore, make_engine, normalise_url
from accord.domain.jobs.codec import encode_spec
from accord.domain.jobs.model import DeferKind, Deferral, DispatchStatus, Hold, HoldKind, JobSpec, Priority
from tests.conftest import T0

SPEC = JobSpec("train", 1, 3600, ("x",))


def test_migrations_match_the_declared_schema(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        store.close()
    assert diff == [], diff


# ------------------------------------------------------------------ 0007: sub-states from stories
STORIES: dict[str, tuple[str, list[tuple[str, str, dict[str, str]]]]] = {
    # job: (state, [(kind, reason, data)]) as the broker before the machine wrote them
    "mid-dispatch": ("placed", [("submit", "submitted", {}), ("place", "p", {"site": "bristol"}),
                                ("note", "dispatching to bristol", {"intent": "dispatch"})]),
    "placed-again": ("placed", [("note", "dispatching to paris", {"intent": "dispatch"}),
                                ("requeue", "site paris unavailable", {}), ("place", "p", {})]),
    "cleaner-hour": ("deferred", [("defer", "a cleaner hour", {"site": "paris", "start": "x",
                                                              "window_end": "2026-11-03T09:00:00+00:00"})]),
    "its-start": ("deferred", [("defer", "waits for its earliest start", {})]),
    "big-run": ("held", [("hold", "Held for compliance review", {"compliance_rule": "large-runs[0]",
                                                                  "site": "paris", "pool": "a100"})]),
    "overdrawn": ("held", [("note", "Priority lowered", {"priority": "low"}),
                           ("hold", "Held: overdrawn", {"allocation": "a-1", "share": "1.2"})]),
    "stopping": ("running", [("note", "cancel requested: not needed", {})]),
}


def test_upgrading_reads_each_unfinished_jobs_sub_states_from_its_story(db_url: str) -> None:
    """A database written before the lifecycle machine (revision 0006): the upgrade gives each
    unfinished job the sub-states the old broker found in its story, so a job caught
    mid-dispatch is looked up before it is sent again."""
    engine = make_engine(normalise_url(db_url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        for job_id, (state, story) in STORIES.items():
            conn.execute(text(
                "INSERT INTO jobs (id, owner, spec_hash, spec, state, submitted_at, updated_at, not_before, "
                "site, pool, gpu_indices, version) VALUES (:id, 'ada', 'h', :spec, :state, :t, :t, :nb, "
                ":site, :pool, '[]', 1)"),
                {"id": job_id, "spec": json.dumps(encode_spec(SPEC)), "state": state, "t": T0,
                 "nb": T0 + timedelta(hours=2) if state == "deferred" else None,
                 "site": "bristol" if state in ("placed", "running") else None,
                 "pool": "h100" if state in ("placed", "running") else None})
            for seq, (kind, reason, data) in enumerate(story):
                conn.execute(text(
                    "INSERT INTO job_events (job_id, seq, kind, at, reason, data, after) "
                    "VALUES (:j, :s, :k, :at, :r, :d, :a)"),
                    {"j": job_id, "s": seq, "k": kind, "at": T0, "r": reason, "d": json.dumps(data),
                     "a": state})
    engine.dispose()
    store = SqlStore(db_url)   # upgrades to the newest revision
    try:
        jobs = {job_id: store.get_job(job_id) for job_id in STORIES}
    finally:
        store.close()
    assert jobs["mid-dispatch"].dispatch is DispatchStatus.SENT
    assert jobs["placed-again"].dispatch is DispatchStatus.NONE, "the note came before the last placement"
    assert jobs["cleaner-hour"].deferral == Deferral(DeferKind.PLACEMENT, T0 + timedelta(hours=2), "paris",
                                                     T0 + timedelta(seconds=600))
    assert jobs["cleaner-hour"].window_end == T0 + timedelta(days=1)
    assert jobs["its-start"].deferral == Deferral(DeferKind.EARLIEST_START, T0 + timedelta(hours=2))
    assert jobs["big-run"].hold == Hold(HoldKind.COMPLIANCE, "large-runs[0]", "paris", "a100", None)
    assert jobs["overdrawn"].hold == Hold(HoldKind.ALLOCATION, "", None, None, "a-1")
    assert jobs["overdrawn"].priority is Priority.LOW
    assert jobs["stopping"].cancel == "not needed"
    assert all(e.event.stimulus == "" for j in jobs.values() for e in j.story)
