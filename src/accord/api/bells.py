"""Order bells: wake an agent's long poll the moment an order for its site is committed.

The store rings (:meth:`accord.ports.AgentStore.listen`) from whichever thread committed the
order (the dispatcher's); :class:`OrderBells` hands that over to the event loop, where each
long poll waits on its site's :class:`asyncio.Event` instead of checking every tick.
"""

from __future__ import annotations

import asyncio


class OrderBells:
    """Per site, an event set (and replaced) whenever an order is committed for the site."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def event(self, site: str) -> asyncio.Event:
        """The event the next order for ``site`` sets (call in the event loop; it attaches the
        bells to that loop). Raises RuntimeError outside a running loop."""
        self._loop = asyncio.get_running_loop()
        return self._events.setdefault(site, asyncio.Event())

    def ring(self, site: str) -> None:
        """From any thread: wake the site's waiting long polls. Raises nothing."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._ring, site)
            except RuntimeError:   # the loop closed meanwhile: nobody waits any more
                pass

    def _ring(self, site: str) -> None:
        event = self._events.pop(site, None)
        if event is not None:
            event.set()
