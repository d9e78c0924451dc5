"""Leadership: whether this replica of a hub may do the work only one replica may do now.

The rule is the classic lease's. A replica that holds the lease renews it every
``renew_s``; it counts its lease as valid until ``ttl_s − margin_s`` after it *sent* the
last successful renewal (measured on its own monotonic clock, so a slow answer only
shortens it). The store lets another replica take over only once ``ttl_s`` has passed on
the store's clock since that renewal. So the old holder stops acting at least ``margin_s``
before anyone else may start: ``margin_s`` bounds the clock-rate difference and the time
one unit of work may take after its last check. Writes are fenced besides (a stale
holder's transaction is refused), so the margin guards only what is done outside the
store: the calls to sites. A replica that stops cleanly releases the lease at once.
See ``docs/design/replicas.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from accord.domain.errors import Unavailable
from accord.ports import Lease

LEASE_TTL_S = 6.0       # a holder that stops renewing loses the lease this long after
RENEW_S = 1.0           # the holder renews this often
MARGIN_S = 2.0          # it stops acting this long before its lease could be taken


@dataclass
class Leadership:
    """This replica's standing with one lease; :meth:`tick` once per loop."""

    lease: Lease
    holder: str
    ttl_s: float = LEASE_TTL_S
    renew_s: float = RENEW_S
    margin_s: float = MARGIN_S
    monotonic: Callable[[], float] = time.monotonic
    epoch: int | None = None
    takeovers: int = 0
    _valid_until: float = field(default=0.0, repr=False)
    _renewed_at: float = field(default=float("-inf"), repr=False)

    def tick(self) -> bool:
        """Take or renew the lease as due; whether this replica leads now. An unreachable
        store counts as not leading (the lease runs out by itself). Raises nothing."""
        sent = self.monotonic()
        if self.epoch is not None and sent - self._renewed_at < self.renew_s:
            return self.leading()
        try:
            if self.epoch is None:
                self._acquire(sent)
            elif self.lease.renew(self.holder, self.epoch, self.ttl_s):
                self._renewed(sent)
            else:
                self.epoch = None
        except Unavailable:
            pass
        return self.leading()

    def _acquire(self, sent: float) -> None:
        epoch = self.lease.acquire(self.holder, self.ttl_s)
        if epoch is not None:
            self.epoch = epoch
            self.takeovers += 1
            self._renewed(sent)

    def _renewed(self, sent: float) -> None:
        self._renewed_at = sent
        self._valid_until = sent + self.ttl_s - self.margin_s

    def leading(self) -> bool:
        """Whether the lease is ours and valid for now by our own clock."""
        return self.epoch is not None and self.monotonic() < self._valid_until

    def fenced(self) -> AbstractContextManager[None]:
        """The store writes of a block of the single work, fenced by our epoch."""
        if self.epoch is None:
            return nullcontext()
        return self.lease.fenced(self.holder, self.epoch)

    def step_down(self) -> None:
        """Release the lease (a clean stop). Raises nothing."""
        if self.epoch is not None:
            try:
                self.lease.release(self.holder, self.epoch)
            except Unavailable:
                pass
            self.epoch = None
