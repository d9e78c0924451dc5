"""Order bells: a ring from another thread wakes the long polls waiting on the site's event,
and only those (``accord.api.bells``)."""

from __future__ import annotations

import asyncio
import threading

from accord.api.bells import OrderBells


def test_a_ring_from_another_thread_wakes_the_site_s_waiters_only() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        bells = OrderBells()
        here, there = bells.event("isambard"), bells.event("jeanzay")
        threading.Thread(target=bells.ring, args=("isambard",)).start()
        await asyncio.wait_for(here.wait(), 5)
        fresh = bells.event("isambard")          # the next order rings a new event
        return here.is_set(), there.is_set(), fresh.is_set()

    assert asyncio.run(scenario()) == (True, False, False)


def test_a_ring_before_any_poll_or_after_the_loop_closed_is_harmless() -> None:
    bells = OrderBells()
    bells.ring("isambard")                       # no loop attached yet: nothing to wake

    async def attach() -> None:
        bells.event("isambard")

    asyncio.run(attach())
    bells.ring("isambard")                       # that loop has closed
