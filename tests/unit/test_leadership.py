"""Leadership by lease, with a lease and a clock held in the test's hand: when a replica
may act, when it must stop, and that it stops before anyone else may start."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from accord.domain.errors import Unavailable
from accord.service.leadership import Leadership


@dataclass
class HandLease:
    """A lease whose store is a dict; ``now`` is the store's clock."""

    now: float = 0.0
    holder: str | None = None
    epoch: int = 0
    expires: float = 0.0
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def _up(self) -> None:
        if self.down:
            raise Unavailable("database unavailable")

    def acquire(self, holder: str, ttl_s: float) -> int | None:
        self._up()
        self.calls.append(f"acquire {holder}")
        if self.holder not in (None, holder) and self.expires >= self.now:
            return None
        self.holder, self.epoch, self.expires = holder, self.epoch + 1, self.now + ttl_s
        return self.epoch

    def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        self._up()
        self.calls.append(f"renew {holder}")
        if (self.holder, self.epoch) != (holder, epoch):
            return False
        self.expires = self.now + ttl_s
        return True

    def release(self, holder: str, epoch: int) -> None:
        self._up()
        if (self.holder, self.epoch) == (holder, epoch):
            self.expires = -1.0

    def fenced(self, holder: str, epoch: int) -> AbstractContextManager[None]:
        return nullcontext()


def replica(lease: HandLease, name: str, clock: list[float]) -> Leadership:
    return Leadership(lease, name, ttl_s=6, renew_s=1, margin_s=2, monotonic=lambda: clock[0])


def test_the_first_replica_leads_and_the_second_stands_by() -> None:
    lease, clock = HandLease(), [0.0]
    a, b = replica(lease, "a", clock), replica(lease, "b", clock)
    assert a.tick() and a.epoch == 1
    assert not b.tick() and b.epoch is None


def test_renewals_are_not_sent_more_often_than_renew_s() -> None:
    lease, clock = HandLease(), [0.0]
    a = replica(lease, "a", clock)
    for t in (0.0, 0.3, 0.6, 0.9, 1.0, 1.5, 2.0):
        clock[0] = lease.now = t
        a.tick()
    assert lease.calls == ["acquire a", "renew a", "renew a"]


def test_a_holder_that_cannot_renew_stops_margin_s_before_its_lease_can_be_taken() -> None:
    lease, clock = HandLease(), [0.0]
    a, b = replica(lease, "a", clock), replica(lease, "b", clock)
    assert a.tick()
    lease.down = True
    clock[0] = lease.now = 3.9
    assert a.tick(), "still within ttl - margin of its last renewal"
    clock[0] = lease.now = 4.0
    assert not a.tick() and not a.leading()
    lease.down = False
    clock[0] = lease.now = 5.9
    assert not b.tick(), "the lease has not expired on the store's clock yet"
    clock[0] = lease.now = 6.1
    assert b.tick() and b.epoch == 2
    assert not a.tick() and a.epoch is None, "a learns on its next renewal that it lost"


def test_a_slow_renewal_counts_from_when_it_was_sent() -> None:
    lease, clock = HandLease(), [0.0]
    a = replica(lease, "a", clock)
    a.tick()
    clock[0] = 1.0          # the renewal is sent at 1.0 ...
    lease.now = 3.0         # ... and reaches the store at 3.0 (a slow network)
    a.tick()
    clock[0] = 4.99
    assert a.leading()
    clock[0] = 5.0          # 1.0 + 6 - 2: the store's expiry is 9.0, a stops at 5.0
    assert not a.leading()


def test_a_clean_stop_releases_the_lease_for_a_standby_at_once() -> None:
    lease, clock = HandLease(), [0.0]
    a, b = replica(lease, "a", clock), replica(lease, "b", clock)
    a.tick()
    a.step_down()
    assert a.epoch is None and b.tick() and b.takeovers == 1


def test_a_store_outage_while_standing_by_is_not_leading() -> None:
    lease, clock = HandLease(down=True), [0.0]
    a = replica(lease, "a", clock)
    assert not a.tick() and not a.leading()
    a.step_down()   # raises nothing
