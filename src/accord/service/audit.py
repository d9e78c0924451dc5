"""The audit writer: appends records to the audit log off the request path, in batches.

A request only queues its record; one thread writes whatever has queued in one
transaction. :meth:`AuditWriter.flush` waits until everything queued so far is stored
(the audit query routes call it, so a reader sees every action before its query).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from accord.domain.access.audit import AuditRecord

log = logging.getLogger("accord.audit")
BATCH = 500


class AuditWriter:
    """A background writer of audit records."""

    def __init__(self, write_many: Callable[[list[AuditRecord]], None]) -> None:
        self._write_many = write_many
        self._queue: queue.Queue[AuditRecord | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="accord-audit", daemon=True)
        self._thread.start()

    def add(self, rec: AuditRecord) -> None:
        """Queue a record."""
        self._queue.put(rec)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record queued before this call is stored."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        """Store what is queued and stop."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [x for x in items if isinstance(x, AuditRecord)]
            if records:
                try:
                    self._write_many(records)
                except Exception:  # the writer must outlive a database hiccup; it is logged
                    log.exception("could not store %d audit record(s)", len(records))
            for x in items:
                if isinstance(x, threading.Event):
                    x.set()
            stop = any(x is None for x in items)
