"""The trace formats, row by row (pure): each reader fills a :class:`~.rows.Rows` from a
file's text, reporting every bad field with its line (``docs/design/simulator.md`` gives
the mapping of every field).

* ``philly``: ``timestamp,duration,num_gpus,gpu_time,cluster``;
* ``alibaba``: the GPU 2023 pod list (``num_gpu`` or ``gpu_request``, ``creation_time``,
  ``deletion_time``, ``scheduled_time``, ``qos``); pods with no GPU, never scheduled, with
  no creation time (they predate the trace) or no deletion time (they outlive it) are
  skipped and counted by those reasons;
* ``swf``: the Standard Workload Format (18 fields, ``;`` header comments, the
  ``UnixStartTime`` header read); the status field as :class:`~.rows.SwfStatus` says;
* ``csv``: ``submit,gpus,runtime`` and optional ``requested,group,partner``, times in
  ``TraceOptions.time_unit`` (or ISO 8601 submit times; not both in one file).

Columns of the CSV formats may be renamed with ``TraceOptions.columns``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput, Problem
from accord.domain.traces.rows import Rows, SwfStatus, TraceFormat

HEADERS: dict[TraceFormat, tuple[str, ...]] = {
    TraceFormat.PHILLY: ("timestamp", "duration", "num_gpus", "cluster"),
    TraceFormat.ALIBABA: ("num_gpu", "creation_time", "deletion_time", "scheduled_time"),
    TraceFormat.CSV: ("submit", "gpus", "runtime"),
}
OPTIONAL: dict[TraceFormat, tuple[str, ...]] = {
    TraceFormat.PHILLY: ("gpu_time",),
    TraceFormat.ALIBABA: ("qos",),
    TraceFormat.CSV: ("requested", "group", "partner"),
}
# Other names the same column goes by in other GPU traces (read when the usual one is absent).
ALIASES: dict[str, tuple[str, ...]] = {"num_gpu": ("gpu_request",)}

SWF_FIELDS = ("job number", "submit time", "wait time", "run time", "allocated processors",
              "average CPU time", "used memory", "requested processors", "requested time",
              "requested memory", "status", "user id", "group id", "executable", "queue", "partition",
              "preceding job", "think time")
SWF_STATUS = {1: "completed", 0: "failed", 5: "cancelled", -1: "of unknown status"}
PARTIAL = (2, 3, 4)


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a float (NaN and infinities included).

    >>> is_number("1e3"), is_number("nan"), is_number("-")
    (True, True, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_reader(text: str, source: str, fmt: TraceFormat, columns: Sequence[tuple[str, str]]
               ) -> csv.DictReader[str]:
    """A reader whose field names are Accord's (renamed by ``columns``, then by aliases).

    Raises:
        InvalidInput: a mapping naming no column of the format, or a missing column.
    """
    known = HEADERS[fmt] + OPTIONAL[fmt]
    wrong = [ours for ours, _ in columns if ours not in known]
    if wrong:
        raise InvalidInput([Problem("columns", "names no column of the format", ", ".join(wrong),
                                    f"{fmt.value}: {', '.join(known)}", source)])
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    theirs = {t.strip().lower(): ours for ours, t in columns}
    have = [theirs.get(h.strip().lower(), h.strip().lower()) for h in reader.fieldnames or []]
    for ours, others in ALIASES.items():
        if ours not in have:
            have = [ours if h in others else h for h in have]
    missing = [h for h in HEADERS[fmt] if h not in have]
    if missing:
        raise InvalidInput([Problem("header", f"missing column(s) {', '.join(missing)}",
                                    ",".join(reader.fieldnames or []) or "(empty file)",
                                    ",".join(HEADERS[fmt]) + " (or map yours: --columns "
                                    f"{missing[0]}=YOUR_NAME)", source, 1)])
    reader.fieldnames = have
    return reader


def philly(reader: csv.DictReader[str], rows: Rows) -> None:
    """Read Philly rows."""
    for n, r in enumerate(reader, start=2):
        when = _time(r.get("timestamp") or "", n, rows, "timestamp")
        runtime = rows.number(r.get("duration") or "", n, "duration", "seconds >= 0")
        gpus = rows.number(r.get("num_gpus") or "", n, "num_gpus", "a whole number >= 0")
        if when is None or runtime is None or gpus is None:
            continue
        if gpus < 1 or runtime <= 0:
            rows.skip("no GPU" if gpus < 1 else "no run time")
            continue
        rows.add(when, math.ceil(gpus), runtime, 0.0, r.get("cluster") or "")


def alibaba(reader: csv.DictReader[str], rows: Rows) -> None:
    """Read Alibaba pod rows (see the module docstring for what is skipped); a note counts
    the pods deleted at the trace's last moment (still running when it ended)."""
    ends: list[float] = []
    for n, r in enumerate(reader, start=2):
        created, started, ended = ((r.get(k) or "").strip() for k in
                                   ("creation_time", "scheduled_time", "deletion_time"))
        gpus = rows.number(r.get("num_gpu") or "", n, "num_gpu", "a whole number >= 0")
        if gpus is None:
            continue
        reason = ("no GPU" if gpus < 1 else "never ran" if not started
                  else "predates the trace (no creation_time)" if not created
                  else "outlives the trace (no deletion_time)" if not ended else None)
        if reason is not None:
            rows.skip(reason)
            continue
        c, s, e = (rows.number(v, n, k, "seconds >= 0") for v, k in
                   ((created, "creation_time"), (started, "scheduled_time"), (ended, "deletion_time")))
        if c is None or s is None or e is None:
            continue
        if e <= s:
            rows.skip("no run time")
            continue
        rows.add(c, math.ceil(gpus), e - s, 0.0, r.get("qos") or "")
        ends.append(e)
    last = max(ends, default=0.0)
    at_end = sum(1 for e in ends if e == last)
    if at_end > 1:
        rows.notes.append(f"{at_end:,} pod(s) were deleted at the trace's last moment ({last:,.0f} s): they "
                          "outlive it, and their run times (to that moment) are lower bounds")


def generic(reader: csv.DictReader[str], rows: Rows) -> None:
    """Read generic CSV rows; numbers in ``rows.options.time_unit``, GPUs at
    ``procs_per_gpu`` per GPU (1: the column counts GPUs)."""
    unit, per_gpu = rows.options.time_unit, rows.options.procs_per_gpu
    allowed = f"{unit.label} > 0"
    kind: list[tuple[str, int]] = []   # the first row's kind of submit time, and its line
    for n, r in enumerate(reader, start=2):
        submit = _submit(r.get("submit") or "", n, rows, kind)
        gpus = rows.number(r.get("gpus") or "", n, "gpus", "a whole number >= 1", 1.0)
        runtime = rows.number(r.get("runtime") or "", n, "runtime", allowed)
        requested = 0.0
        if (r.get("requested") or "").strip():
            requested = rows.number(r.get("requested") or "", n, "requested", allowed) or 0.0
        if submit is None or gpus is None or runtime is None:
            continue
        if per_gpu == 1 and gpus != int(gpus):
            rows.bad(n, "gpus", "is not a whole number", r.get("gpus") or "", "a whole number >= 1")
            continue
        if runtime <= 0:
            rows.skip("no run time")
            continue
        rows.add(submit, math.ceil(gpus / per_gpu), runtime * unit.seconds, requested * unit.seconds,
                 (r.get("group") or "").strip(), (r.get("partner") or "").strip())


def _submit(raw: str, line: int, rows: Rows, kind: list[tuple[str, int]]) -> float | None:
    """A generic CSV's submit time: a number (in the time unit, >= 0) or an ISO time, the
    same kind as the file's first row (a number read next to ISO times would be 1970)."""
    text = raw.strip()
    mine = "number" if is_number(text) else "ISO time"
    if not kind:
        kind.append((mine, line))
    elif kind[0][0] != mine:
        article = {"number": "a number", "ISO time": "an ISO time"}
        rows.bad(line, "submit", f"is {article[mine]} where line {kind[0][1]} has {article[kind[0][0]]}", raw,
                 f"{kind[0][0]}s throughout the file")
        return None
    if mine == "ISO time":
        return _time(text, line, rows, "submit")
    value = rows.number(text, line, "submit", f"{rows.options.time_unit.label} >= 0 or an ISO time")
    return None if value is None else value * rows.options.time_unit.seconds


def swf(text: str, rows: Rows) -> None:
    """Read SWF records and header comments (see :class:`~.rows.SwfStatus`)."""
    replayed: dict[int, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        body = line.strip()
        if body.startswith(";"):
            _swf_header(body, n, rows)
        elif body:
            status = _swf_record(body.split(), n, rows)
            if status is not None:
                replayed[status] = replayed.get(status, 0) + 1
    if set(replayed) - {1, -1}:
        counts = ", ".join(f"{replayed[s]:,} {SWF_STATUS[s]}" for s in (1, 0, 5, -1) if s in replayed)
        rows.notes.append(f"SWF status: {counts} job(s) replayed for the run time each recorded "
                          "(--swf-status completed replays only completed ones)")


def _swf_header(body: str, n: int, rows: Rows) -> None:
    key, _, value = body.lstrip(";").partition(":")
    if key.strip().lower() != "unixstarttime":
        return
    start = rows.number(value.strip(), n, "UnixStartTime", "seconds since 1970 (UTC)")
    if start is not None:
        rows.origin_s = start


def _swf_record(f: list[str], n: int, rows: Rows) -> int | None:
    """Read one record; its status if it is replayed, else None."""
    if len(f) != 18:
        rows.bad(n, "record", "an SWF record has 18 whitespace-separated fields", f"{len(f)} fields",
                 "18 numbers (job, submit, wait, run time, processors, ...)")
        return None
    values = _swf_numbers(f, n, rows)
    if values is None:
        return None
    submit, runtime, procs, req_procs, req_time, status = (values[i] for i in (1, 3, 4, 7, 8, 10))
    reason = _swf_skip(values, rows)
    cpus = procs if procs > 0 else req_procs
    if reason is None and (cpus <= 0 or runtime <= 0):
        reason = "no processors" if cpus <= 0 else "no run time"
    if reason is not None:
        rows.skip(reason)
        return None
    gpus = max(1, math.ceil(cpus / rows.options.procs_per_gpu))
    user = "" if values[11] < 0 else f[11]   # -1: unknown, no group
    rows.add(submit, gpus, runtime, req_time if req_time > 0 else 0.0, user)
    return int(status)


def _swf_numbers(f: list[str], n: int, rows: Rows) -> list[float] | None:
    """The record's fields as numbers, or None after reporting the first bad one."""
    for i, x in enumerate(f):
        where = f"field {i + 1} ({SWF_FIELDS[i]})"
        if not is_number(x):
            rows.bad(n, where, "is not a number", x, "a number, -1 when unknown")
            return None
        v = float(x)
        if not math.isfinite(v):
            rows.bad(n, where, "is not a finite number", x, "a number, -1 when unknown")
            return None
        if i == 1 and v < 0:
            rows.bad(n, where, "is negative", x, "seconds >= 0 since the log's start")
            return None
        if i in (3, 4, 7, 8) and v < 0 and v != -1:
            rows.bad(n, where, "is negative", x, "a number >= 0, -1 when unknown")
            return None
        if i == 10 and v not in (-1, 0, 1, 2, 3, 4, 5):
            rows.bad(n, where, "is not an SWF status", x, "1 completed, 0 failed, 5 cancelled, 2-4 "
                     "partial execution, -1 unknown")
            return None
    return [float(x) for x in f]


def _swf_skip(values: list[float], rows: Rows) -> str | None:
    """Why a well-formed record is not replayed (status, queue, partition), or None."""
    status, queue, partition = int(values[10]), int(values[14]), int(values[15])
    o = rows.options
    if status in PARTIAL:
        return "partial execution record (its job's summary record is replayed)"
    if o.status is SwfStatus.COMPLETED and status in (0, 5):
        return f"{SWF_STATUS[status]} (status {status}; --swf-status completed)"
    if o.queues and queue not in o.queues:
        return "in another queue (--queue)"
    if o.partitions and partition not in o.partitions:
        return "in another partition (--partition)"
    return None


def _time(raw: str, line: int, rows: Rows, where: str) -> float | None:
    try:
        t = datetime.fromisoformat(raw.strip())
    except ValueError:
        rows.bad(line, where, "is not a time", raw, "e.g. 2017-10-09 07:01:55 (UTC when no offset)")
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
