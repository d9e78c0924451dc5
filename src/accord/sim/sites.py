"""A simulated site's scheduler for one GPU pool: first come, first served by arrival at
the pool, optionally with EASY backfilling. The simulator's kernel and its broker engine's
site backend (:mod:`accord.sim.broker_engine`) both run their pools with this class, so the
two engines schedule alike.
"""

from __future__ import annotations

import math
from collections import deque


class PoolScheduler:
    """One pool: ``capacity`` GPUs, what runs (by expected end) and the FIFO queue.

    Jobs are ints chosen by the caller. :meth:`enqueue` and :meth:`finish` change the
    state; :meth:`schedule` says which queued jobs start now (and counts them as running).
    ``free`` and ``queued`` are the GPUs idle and asked for by queued jobs.
    """

    __slots__ = ("backfill", "capacity", "depth", "free", "queue", "queued", "running")

    def __init__(self, capacity: int, backfill: bool = False, depth: int = 100) -> None:
        self.capacity = capacity
        self.free = capacity
        self.queued = 0
        self.backfill = backfill
        self.depth = depth
        self.queue: deque[tuple[int, int, float]] = deque()   # (job, GPUs, requested s)
        self.running: dict[int, tuple[float, int]] = {}       # job -> (expected end, GPUs)

    def enqueue(self, job: int, gpus: int, requested_s: float) -> None:
        """Queue ``job`` behind the others."""
        self.queue.append((job, gpus, requested_s))
        self.queued += gpus

    def finish(self, job: int) -> None:
        """``job`` ended: its GPUs are free.

        Raises:
            KeyError: ``job`` is not running here.
        """
        _, gpus = self.running.pop(job)
        self.free += gpus

    def schedule(self, t: float) -> list[int]:
        """The queued jobs that start at ``t``, in order: the head while it fits, then
        (with backfilling) later ones that do not delay the head's reservation."""
        queue, started = self.queue, []
        while queue and queue[0][1] <= self.free:
            started.append(self._start(queue.popleft(), t))
        if queue and self.backfill:
            self._backfill(t, started)
        return started

    def _backfill(self, t: float, started: list[int]) -> None:
        """EASY: the head job gets a reservation at the earliest time enough GPUs free up
        (by the running jobs' requested times); a later job may start now if it fits and
        either ends by then or uses only GPUs the head will not need."""
        need = self.queue[0][1]
        free, shadow = self.free, math.inf
        for end, _, gpus in sorted((e, job, g) for job, (e, g) in self.running.items()):
            free += gpus
            if free >= need:
                shadow = end
                break
        extra = free - need
        for item in list(self.queue)[1:self.depth + 1]:
            _, gpus, req = item
            if gpus <= self.free and (t + req <= shadow or gpus <= extra):
                if t + req > shadow:
                    extra -= gpus
                self.queue.remove(item)
                started.append(self._start(item, t))

    def _start(self, item: tuple[int, int, float], t: float) -> int:
        job, gpus, req = item
        self.free -= gpus
        self.queued -= gpus
        self.running[job] = (t + req, gpus)
        return job
