"""The dispatcher does not wait out its tick when there is work: a stored submission and a
site's report nudge the broker, and a nudged dispatcher's pause ends at once (after its
minimum gap), so a job reaches its site, and its end the books, without a tick's delay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from accord.adapters.clock import FakeClock
from accord.adapters.sql.lease import SqlLease
from accord.adapters.sql.store import SqlStore
from accord.compose import compose
from accord.domain.federation.model import Federation
from accord.runtime import MIN_PASS_GAP_S, Dispatcher
from accord.service.leadership import Leadership
from tests.api.access_world import cancel_unfinished
from tests.conftest import T0


def test_a_stored_submission_nudges_the_broker(small_federation: Federation, tmp_path: Path) -> None:
    s = compose(small_federation, f"sqlite:///{tmp_path / 'a.db'}", {}, FakeClock(T0), "t")
    try:
        assert not s.broker.nudged.is_set()
        s.submissions.submit(s.access.authenticate("Bearer t"), {"command": ["true"]})
        assert s.broker.nudged.wait(5), "storing a job did not nudge the dispatcher"
    finally:
        cancel_unfinished(s.broker)
        s.close()


def test_a_nudged_dispatcher_does_not_wait_out_its_interval(small_federation: Federation,
                                                            tmp_path: Path) -> None:
    db = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    s = compose(small_federation, db, {}, FakeClock(T0), "t")
    d = Dispatcher(s, interval=30.0, leadership=Leadership(SqlLease(db, "dispatch"), "me"))
    try:
        done = threading.Event()

        def pause() -> None:
            d._pause()
            done.set()

        threading.Thread(target=pause, daemon=True).start()
        time.sleep(MIN_PASS_GAP_S * 4)
        assert not done.is_set()                       # nothing to do: it waits its interval
        s.broker.nudge()
        assert done.wait(5), "a nudge did not end the pause"
        assert not s.broker.nudged.is_set()            # taken: the next pause waits again
    finally:
        s.close()
