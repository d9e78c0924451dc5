"""The notification tables on SQLite and PostgreSQL: migration 0009 goes down to 0008 and
up again; a notice is stored once per key; fan-out makes one delivery per person and channel
once; deliveries move pending → (failed, later) → sent, or given up; preferences round-trip;
a job's transition and its notice commit together or not at all."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from accord.adapters.sql.notify_store import SqlNotifications
from accord.adapters.sql.store import MIGRATIONS, SqlStore
from accord.domain.errors import Conflict
from accord.domain.jobs import codec
from accord.domain.jobs.model import Event, EventKind, JobSpec, JobState, apply, new_job
from accord.domain.notify.rules import Channel, DeliveryState, Notice, NoticeKind, Preferences
from tests.conftest import T0

SPEC = JobSpec("train", 1, 3600, ("x",))

TABLES = {"notify_prefs", "notify_notices", "notify_deliveries"}


def _alembic(store: SqlStore) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_0009_goes_down_and_up(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        with store.engine.begin() as conn:
            cfg = _alembic(store)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
        assert not TABLES & set(inspect(store.engine).get_table_names())
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        assert set(inspect(store.engine).get_table_names()) >= TABLES
    finally:
        store.close()


def test_outbox_and_deliveries(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        n = SqlNotifications(store)
        note = Notice("job:j1:3", NoticeKind.JOB_HELD, ("ada",), "held", "why", {"job": "j1"})
        assert n.add_notices([note, note], T0) == 1
        assert n.add_notices([note], T0) == 0
        [got] = n.unfanned()
        assert got == note
        targets = [("ada", Channel.EMAIL, "ada@example.org"), ("ada", Channel.WEBHOOK, "http://h/x")]
        n.fan_out({note.key: targets}, T0)
        n.fan_out({note.key: targets}, T0)          # a repeated fan-out adds nothing
        n.fan_out({}, T0)
        assert n.unfanned() == []
        due = n.due(T0)
        assert len(due) == 2 and {d.channel for d in due} == {Channel.EMAIL, Channel.WEBHOOK}
        email = next(d for d in due if d.channel is Channel.EMAIL)
        n.failed(email.id, 1, "refused", T0 + timedelta(seconds=5), give_up=False)
        assert [d.channel for d in n.due(T0)] == [Channel.WEBHOOK]
        n.sent(email.id, T0 + timedelta(seconds=6))
        web = next(d for d in due if d.channel is Channel.WEBHOOK)
        n.failed(web.id, 8, "gave up", T0, give_up=True)
        states = {d.channel: (d.state, d.last_error) for d in n.deliveries("ada")}
        assert states == {Channel.EMAIL: (DeliveryState.SENT, "refused"),
                          Channel.WEBHOOK: (DeliveryState.GIVEN_UP, "gave up")}
        prefs = Preferences("ada", "a@example.org", False, "https://h/x", "s" * 43,
                            frozenset({NoticeKind.JOB_ENDED}))
        n.save_prefs(prefs, T0)
        n.save_prefs(prefs, T0)
        assert n.prefs("ada") == prefs and n.prefs("bo") is None
    finally:
        store.close()


def test_notices_fanned_out_together(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        n = SqlNotifications(store)
        notes = [Notice(f"job:j{i}:3", NoticeKind.JOB_HELD, ("ada",), "held", "why", {"job": f"j{i}"})
                 for i in range(3)]
        assert n.add_notices(notes, T0) == 3
        email = [("ada", Channel.EMAIL, "ada@example.org")]
        both = [*email, ("bo", Channel.EMAIL, "bo@example.org")]
        n.fan_out({notes[0].key: email, notes[1].key: both}, T0)
        assert n.unfanned() == [notes[2]], "only the notices named were fanned out"
        assert sorted((d.notice.key, d.user) for d in n.due(T0)) == [
            (notes[0].key, "ada"), (notes[1].key, "ada"), (notes[1].key, "bo")]
        n.fan_out({notes[2].key: []}, T0)           # nobody to tell: fanned out all the same
        assert n.unfanned() == [] and len(n.due(T0)) == 3
    finally:
        store.close()


def test_a_jobs_transition_and_its_notice_commit_together(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        outbox = SqlNotifications(store)
        job = store.add_job(new_job("j1", SPEC, T0, owner="ada"), codec.spec_hash(SPEC))
        assert outbox.unfanned() == [], "a submission is not worth a notice"
        stale = apply(job, Event(EventKind.HOLD, T0, "held by the test"))
        store.save_job(apply(job, Event(EventKind.CANCEL, T0, "cancelled by ada")))
        [n] = outbox.unfanned()
        assert (n.key, n.kind, n.recipients, n.text) == ("job:j1:1", NoticeKind.JOB_FAILED, ("ada",),
                                                         "cancelled by ada")
        with pytest.raises(Conflict):
            store.save_job(stale)                        # a transition that does not commit...
        assert [x.key for x in outbox.unfanned()] == ["job:j1:1"], "...leaves no notice"
        job2 = store.add_job(new_job("j2", SPEC, T0, owner="ada"), codec.spec_hash(SPEC))
        down = mock.patch("accord.adapters.sql.store.job_notices", side_effect=RuntimeError("outbox down"))
        with down, pytest.raises(RuntimeError):
            store.save_job(apply(job2, Event(EventKind.CANCEL, T0, "x")))
        assert store.get_job("j2").state is JobState.SUBMITTED, "a notice that fails undoes its fact"
    finally:
        store.close()
