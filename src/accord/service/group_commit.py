"""Group commit: many concurrent submissions, one transaction.

Request handlers hand a validated job to :meth:`GroupCommitter.submit` and
await the returned future; one writer thread takes everything that has queued
up (at most ``max_batch``) and stores it with a single ``add_jobs`` call. Under
load the cost of a commit (an fsync on PostgreSQL) is shared by the batch;
with no load a batch is one job and nothing waits.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from accord.domain.errors import AccordError, Unavailable
from accord.domain.jobs.model import Job
from accord.ports import JobStore

log = logging.getLogger("accord.group_commit")
_Item = tuple[Job, str, "Future[Job]"]


class GroupCommitter:
    """Stores submitted jobs in batches from one writer thread."""

    def __init__(self, store: JobStore, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="accord-group-commit", daemon=True)
        self._thread.start()

    def submit(self, job: Job, spec_hash: str) -> Future[Job]:
        """Queue a new job; the future gives the stored job or raises its AccordError."""
        fut: Future[Job] = Future()
        self._queue.put((job, spec_hash, fut))
        return fut

    @property
    def queued(self) -> int:
        """How many submissions wait for the writer (approximate, for metrics)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Store what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            results = self.store.add_jobs([(job, h) for job, h, _ in batch])
        except AccordError as exc:
            results = [exc] * len(batch)
        except Exception as exc:  # the writer must survive; each caller gets the error
            log.exception("storing a batch of %d submissions failed", len(batch))
            results = [Unavailable(f"the store failed: {type(exc).__name__}")] * len(batch)
        for (_, _, fut), result in zip(batch, results, strict=True):
            if isinstance(result, AccordError):
                fut.set_exception(result)
            else:
                fut.set_result(result)
