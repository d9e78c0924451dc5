"""The audit writer: appends records to the audit log off the request path, in batches,
and never drops one.

A request only queues its record (cleaned: :meth:`AuditRecord.sanitised`); one thread
writes whatever has queued in one transaction. When that transaction fails, the batch is
written again record by record, so one record the database refuses never takes the others
with it. A record that still cannot be stored (the database is down, or refuses it) is
kept in the :class:`AuditSpool` — a file in the data directory — and logged; the writer
tries the spool again when it starts and every ``retry_s`` seconds until the database takes
every record. :meth:`AuditWriter.flush` waits until everything queued so far is stored or
spooled (the audit query routes call it, so a reader sees every action before its query);
:attr:`AuditWriter.spooled` says how many records wait in the spool.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from accord.domain.access.audit import AuditRecord, from_json, to_json
from accord.domain.errors import Unavailable

log = logging.getLogger("accord.audit")
BATCH = 500
SPOOL_FILE = "audit-spool.jsonl"
RETRY_S = 30.0

Failed = list[tuple[AuditRecord, str]]   # a record and why the store refused it


class AuditSpool:
    """Audit records the store could not take yet, kept until it does.

    With a ``path`` (``audit-spool.jsonl`` in the data directory) each is a line of JSON,
    ``{"record": {...}, "error": "...", "kept_at": "..."}``, appended and synced to disk
    before the writer moves on, and read back when Accord starts again; without one (tests,
    an in-memory composition) they are kept in memory. A line that cannot be read is copied
    to ``<path>.unreadable`` (and logged), never deleted. A record stored from the spool gets
    a later ``seq`` than records stored meanwhile; its ``at`` is when it happened.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._held: list[AuditRecord] = _load(path) if path is not None else []

    def __len__(self) -> int:
        return len(self._held)

    def records(self) -> list[AuditRecord]:
        """Every record held, oldest first."""
        return list(self._held)

    def keep(self, failed: Failed) -> None:
        """Hold ``failed`` (records and the store's reasons) after those held already."""
        self._held += [rec for rec, _ in failed]
        self._write(failed, "a")

    def replace(self, failed: Failed) -> None:
        """Hold only ``failed``: the others were stored."""
        self._write(failed, "w")
        self._held = [rec for rec, _ in failed]

    def _write(self, failed: Failed, mode: str) -> None:
        """Append (``a``) ``failed`` to the file, or rewrite it (``w``, through a new file
        renamed over the old) with them; a failure is logged: the records stay held in memory."""
        if self.path is None:
            return
        at = datetime.now(UTC).isoformat()
        target = self.path if mode == "a" else self.path.with_name(self.path.name + ".new")
        try:
            with open(target, mode, encoding="ascii") as fh:
                fh.writelines(_line(rec, why, at) for rec, why in failed)
                fh.flush()
                os.fsync(fh.fileno())
            if mode == "w":
                os.replace(target, self.path)
        except OSError:
            log.exception("cannot write the audit spool %s; the record(s) are held in memory only",
                          self.path)


def _load(path: Path) -> list[AuditRecord]:
    """The records of the spool file at ``path`` (none if there is no file); lines that
    cannot be read are copied to ``<path>.unreadable`` (the writer's first retry rewrites
    the spool without them)."""
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError:
        log.exception("cannot read the audit spool %s", path)
        return []
    held, unreadable = [], []
    for line in lines:
        try:
            held.append(from_json(json.loads(line)["record"]))
        except (ValueError, KeyError, TypeError):
            unreadable.append(line + "\n")
    if unreadable:
        log.error("%d line(s) of the audit spool %s cannot be read: moved to %s.unreadable",
                  len(unreadable), path, path.name)
        try:
            with open(path.with_name(path.name + ".unreadable"), "a", encoding="ascii",
                      errors="replace") as fh:
                fh.writelines(unreadable)
        except OSError:
            log.exception("cannot move the unreadable lines of the audit spool %s", path)
    return held


def _line(rec: AuditRecord, why: str, at: str) -> str:
    return json.dumps({"record": to_json(rec), "error": why[:500], "kept_at": at}) + "\n"


class AuditWriter:
    """A background writer of audit records (see the module's docstring)."""

    def __init__(self, write_many: Callable[[list[AuditRecord]], None], spool: AuditSpool | None = None,
                 retry_s: float = RETRY_S) -> None:
        self._write_many = write_many
        self._spool = spool if spool is not None else AuditSpool(None)
        self._retry_s = retry_s
        self._retried = 0.0
        self._queue: queue.Queue[AuditRecord | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="accord-audit", daemon=True)
        self._thread.start()

    @property
    def spooled(self) -> int:
        """How many records wait in the spool for the database."""
        return len(self._spool)

    @property
    def queued(self) -> int:
        """How many records wait for the writer (approximate, for metrics)."""
        return self._queue.qsize()

    def add(self, rec: AuditRecord) -> None:
        """Queue a record (cleaned for any database)."""
        self._queue.put(rec.sanitised())

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record queued before this call is stored (or spooled)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        """Store what is queued and stop."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        self._retry_spool()
        stop = False
        while not stop:
            items = self._next_items()
            records = [x for x in items if isinstance(x, AuditRecord)]
            try:
                if records:
                    self._store(records)
                if len(self._spool) and time.monotonic() - self._retried >= self._retry_s:
                    self._retry_spool()
            except Exception:  # a fault here must not stop the writer: flushes would hang
                log.exception("the audit writer failed on %d record(s): %s", len(records),
                              "; ".join(f"{r.at.isoformat()} {r.action} {r.target} by {r.actor}"
                                        for r in records[:20]))
            for x in items:
                if isinstance(x, threading.Event):
                    x.set()
            stop = any(x is None for x in items)

    def _next_items(self) -> list[AuditRecord | threading.Event | None]:
        """The next batch from the queue (none after ``retry_s`` when the spool waits)."""
        try:
            items = [self._queue.get(timeout=self._retry_s if len(self._spool) else None)]
        except queue.Empty:
            return []
        while len(items) < BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _store(self, records: list[AuditRecord]) -> None:
        """Store ``records``: in one transaction, else one by one; spool what fails."""
        failed = self._write(records)
        if failed:
            self._spool.keep(failed)
            for rec, why in failed:
                log.error("audit record kept in the spool (%s), not stored: %s: %s %s %s by %s",
                          self._spool.path or "memory", why, rec.at.isoformat(), rec.action,
                          rec.target, rec.actor)

    def _retry_spool(self) -> None:
        """Store the spooled records the database now takes; keep the others."""
        self._retried = time.monotonic()
        held = self._spool.records()
        if not held:
            return
        failed = self._write(held)
        if len(failed) < len(held):
            log.warning("stored %d spooled audit record(s); %d still in the spool",
                        len(held) - len(failed), len(failed))
        self._spool.replace(failed)

    def _write(self, records: Sequence[AuditRecord]) -> Failed:
        """Write ``records`` in one transaction; if that fails, each in its own (until the
        database is unavailable: then the rest are not tried). What could not be stored."""
        try:
            self._write_many(list(records))
            return []
        except Exception as exc:  # the writer must outlive any failure of the store
            if len(records) == 1 or isinstance(exc, Unavailable):
                return [(rec, _reason(exc)) for rec in records]
            log.warning("a batch of %d audit records failed (%s); storing them one by one",
                        len(records), _reason(exc))
        failed: Failed = []
        for i, rec in enumerate(records):
            try:
                self._write_many([rec])
            except Exception as exc:  # the writer must outlive any failure of the store
                if isinstance(exc, Unavailable):
                    return failed + [(r, _reason(exc)) for r in records[i:]]
                failed.append((rec, _reason(exc)))
        return failed


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
