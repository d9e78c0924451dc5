"""Job traces for the simulator: parsing the common formats, scaling, home partners (pure).

A :class:`Trace` holds jobs as columns (numpy arrays), sorted by submit time, with times
in seconds from the first submit. The parsers take a file's text and its name, and report
every bad row as a :class:`~accord.domain.errors.Problem` with the file and line
(at most :data:`MAX_PROBLEMS`), so a broken trace never gives a traceback.

Formats (``docs/design/simulator.md`` gives the mapping of every field):

* ``philly``: the Microsoft Philly CSV ``timestamp,duration,num_gpus,gpu_time,cluster``;
* ``alibaba``: the Alibaba GPU 2023 pod list (``name,...,num_gpu,...,creation_time,
  deletion_time,scheduled_time``); pods without a GPU or that never ran are skipped;
* ``swf``: the Standard Workload Format of the Parallel Workloads Archive (18 fields,
  ``;`` comments); processors become GPUs at ``procs_per_gpu`` processors each;
* ``csv``: Accord's generic CSV, ``submit,gpus,runtime`` and optional ``requested``,
  ``group``, ``partner`` (submit in seconds or an ISO 8601 time; durations in seconds).

A job's requested time is the trace's when it has one at least as long as the run, else
the run rounded up to a whole ``round_s`` (users ask for round figures; Philly and Alibaba
record none); never more than the broker accepts (``jobs.spec.MAX_TIME_LIMIT_S``, 30 days):
a longer job asks for 30 days and runs 30 days, as a site ends a job at its time limit.
"""

from __future__ import annotations

import csv
import enum
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from accord.domain.errors import InvalidInput, Problem
from accord.domain.jobs.spec import MAX_TIME_LIMIT_S

MAX_PROBLEMS = 20
DEFAULT_ROUND_S = 1800
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


class TraceFormat(enum.Enum):
    """The trace formats Accord reads."""

    PHILLY = "philly"
    ALIBABA = "alibaba"
    SWF = "swf"
    CSV = "csv"


class HomeRule(enum.Enum):
    """How jobs get their home partner: per group of the trace (a Philly virtual cluster,
    an SWF user), per job, or from the trace's ``partner`` column."""

    GROUP = "group"
    JOB = "job"
    COLUMN = "column"


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Jobs as columns, sorted by submit time (seconds from the first submit).

    ``group`` indexes ``groups`` (the trace's own grouping: cluster, user, queue; one
    group "" when it has none); ``partner`` holds the generic CSV's partner column ("" when
    absent). ``skipped`` counts rows left out, by reason.
    """

    source: str
    submit_s: Floats
    gpus: Ints
    runtime_s: Floats
    requested_s: Floats
    group: Ints
    groups: tuple[str, ...]
    partner: tuple[str, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.submit_s)

    @property
    def gpu_hours(self) -> float:
        """GPU-hours of all runs."""
        return float(np.dot(self.gpus, self.runtime_s)) / 3600

    @property
    def span_s(self) -> float:
        """From the first submit to the last."""
        return float(self.submit_s[-1] - self.submit_s[0]) if len(self) else 0.0


class _Rows:
    """Collects parsed rows and problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.submit: list[float] = []
        self.gpus: list[int] = []
        self.runtime: list[float] = []
        self.requested: list[float] = []
        self.group: list[str] = []
        self.partner: list[str] = []
        self.problems: list[Problem] = []
        self.skipped: dict[str, int] = {}

    def bad(self, line: int, where: str, message: str, got: object, allowed: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, message, repr(got) if not isinstance(got, str) else got,
                                         allowed, self.source, line))

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, submit: float, gpus: int, runtime: float, requested: float, group: str,
            partner: str = "") -> None:
        self.submit.append(submit)
        self.gpus.append(gpus)
        self.runtime.append(runtime)
        self.requested.append(requested)
        self.group.append(group)
        self.partner.append(partner)

    def number(self, raw: str, line: int, where: str, allowed: str, minimum: float = 0.0) -> float | None:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum:
            self.bad(line, where, "is not a number in range", raw, allowed)
            return None
        return value

    def trace(self, round_s: int) -> Trace:
        if self.problems:
            raise InvalidInput(self.problems)
        if not self.submit:
            raise InvalidInput([Problem("trace", "has no usable job", f"skipped: {self.skipped or 'none'}",
                                        "at least one job with GPUs and a positive run time",
                                        self.source)])
        submit = np.array(self.submit, np.float64)
        order = np.argsort(submit, kind="stable")
        runtime = np.array(self.runtime, np.float64)[order]
        asked = np.array(self.requested, np.float64)[order]
        requested = np.where(asked >= runtime, asked, round_up(runtime, round_s))
        requested = np.minimum(requested, MAX_TIME_LIMIT_S)
        runtime = np.minimum(runtime, requested)
        names = tuple(sorted(set(self.group)))
        index = {g: i for i, g in enumerate(names)}
        group = np.array([index[g] for g in self.group], np.int64)[order]
        partner = tuple(self.partner[i] for i in order.tolist()) if any(self.partner) else ()
        submit = submit[order]
        return Trace(self.source, submit - submit[0], np.array(self.gpus, np.int64)[order], runtime,
                     requested, group, names, partner, dict(self.skipped))


def round_up(runtime: Floats, round_s: int) -> Floats:
    """Requested times for runs that have none: up to 12 h, the run rounded up to a whole
    ``round_s``; up to 3 days, to 6 h; beyond, to a day (users ask for round figures, and
    few distinct durations keep placement's per-duration caches warm).

    >>> round_up(np.array([60.0, 13 * 3600.0, 4 * 86400.0 + 1]), 1800).tolist()
    [1800.0, 64800.0, 432000.0]
    """
    coarse = np.where(runtime <= 12 * 3600, round_s, np.where(runtime <= 3 * 86400, 6 * 3600, 86400))
    return np.ceil(runtime / coarse) * coarse


def parse_trace(text: str, source: str, fmt: TraceFormat, *, round_s: int = DEFAULT_ROUND_S,
                procs_per_gpu: int = 1) -> Trace:
    """Parse a trace of format ``fmt`` from ``text`` (``source`` names it in problems).

    Raises:
        InvalidInput: every bad row (file:line, field, value, what is allowed), or no
            usable job at all.
    """
    rows = _Rows(source)
    if fmt is TraceFormat.SWF:
        _swf(text, rows, procs_per_gpu)
    else:
        parse = {TraceFormat.PHILLY: _philly, TraceFormat.ALIBABA: _alibaba, TraceFormat.CSV: _generic}[fmt]
        parse(_csv_reader(text, source, _HEADERS[fmt]), rows)
    return rows.trace(round_s)


def sniff_trace(text: str) -> TraceFormat | None:
    """The format of a trace's text, from its first line; None if none fits.

    >>> sniff_trace("timestamp,duration,num_gpus,gpu_time,cluster\\n")
    <TraceFormat.PHILLY: 'philly'>
    >>> sniff_trace("; Version: 2\\n1 0 -1 10 1 -1 -1 1 60 -1 1 1 1 -1 1 -1 -1 -1\\n")
    <TraceFormat.SWF: 'swf'>
    """
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    header = {h.strip().lower() for h in first.split(",")}
    for fmt, need in _HEADERS.items():
        if set(need) <= header:
            return fmt
    fields = first.split()
    if first.lstrip().startswith(";") or (len(fields) == 18 and all(_is_number(f) for f in fields)):
        return TraceFormat.SWF
    return None


_HEADERS: dict[TraceFormat, tuple[str, ...]] = {
    TraceFormat.PHILLY: ("timestamp", "duration", "num_gpus", "cluster"),
    TraceFormat.ALIBABA: ("num_gpu", "creation_time", "deletion_time", "scheduled_time"),
    TraceFormat.CSV: ("submit", "gpus", "runtime"),
}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_reader(text: str, source: str, need: Sequence[str]) -> csv.DictReader[str]:
    reader = csv.DictReader(io.StringIO(text))
    have = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [h for h in need if h not in have]
    if missing:
        raise InvalidInput([Problem("header", f"missing column(s) {', '.join(missing)}",
                                    ",".join(reader.fieldnames or []) or "(empty file)",
                                    ",".join(need), source, 1)])
    reader.fieldnames = have
    return reader


def _philly(reader: csv.DictReader[str], rows: _Rows) -> None:
    for n, r in enumerate(reader, start=2):
        when = _time(r.get("timestamp") or "", n, rows, "timestamp")
        runtime = rows.number(r.get("duration") or "", n, "duration", "seconds >= 0")
        gpus = rows.number(r.get("num_gpus") or "", n, "num_gpus", "a whole number >= 0")
        if when is None or runtime is None or gpus is None:
            continue
        if gpus < 1 or runtime <= 0:
            rows.skip("no GPU" if gpus < 1 else "no run time")
            continue
        rows.add(when, int(gpus), runtime, 0.0, r.get("cluster") or "")


def _alibaba(reader: csv.DictReader[str], rows: _Rows) -> None:
    for n, r in enumerate(reader, start=2):
        gpus = rows.number(r.get("num_gpu") or "", n, "num_gpu", "a whole number >= 0")
        created = rows.number(r.get("creation_time") or "", n, "creation_time", "seconds >= 0")
        if gpus is None or created is None:
            continue
        started, ended = r.get("scheduled_time") or "", r.get("deletion_time") or ""
        if gpus < 1:
            rows.skip("no GPU")
            continue
        if not started or not ended:
            rows.skip("never ran")
            continue
        s = rows.number(started, n, "scheduled_time", "seconds >= 0")
        e = rows.number(ended, n, "deletion_time", "seconds >= 0")
        if s is None or e is None:
            continue
        if e <= s:
            rows.skip("no run time")
            continue
        rows.add(created, int(gpus), e - s, 0.0, r.get("qos") or "")


def _generic(reader: csv.DictReader[str], rows: _Rows) -> None:
    for n, r in enumerate(reader, start=2):
        raw = (r.get("submit") or "").strip()
        submit = float(raw) if _is_number(raw) else _time(raw, n, rows, "submit")
        gpus = rows.number(r.get("gpus") or "", n, "gpus", "a whole number >= 1", 1.0)
        runtime = rows.number(r.get("runtime") or "", n, "runtime", "seconds > 0")
        requested = 0.0
        if (r.get("requested") or "").strip():
            requested = rows.number(r.get("requested") or "", n, "requested", "seconds > 0") or 0.0
        if submit is None or gpus is None or runtime is None:
            continue
        if gpus != int(gpus):
            rows.bad(n, "gpus", "is not a whole number", r.get("gpus") or "", "a whole number >= 1")
            continue
        if runtime <= 0:
            rows.skip("no run time")
            continue
        rows.add(submit, int(gpus), runtime, requested, (r.get("group") or "").strip(),
                 (r.get("partner") or "").strip())


SWF_FIELDS = ("job number", "submit time", "wait time", "run time", "allocated processors",
              "average CPU time", "used memory", "requested processors", "requested time",
              "requested memory", "status", "user id", "group id", "executable", "queue", "partition",
              "preceding job", "think time")


def _swf(text: str, rows: _Rows, procs_per_gpu: int) -> None:
    for n, line in enumerate(text.splitlines(), start=1):
        body = line.strip()
        if not body or body.startswith(";"):
            continue
        f = body.split()
        if len(f) != 18:
            rows.bad(n, "record", "an SWF record has 18 whitespace-separated fields", f"{len(f)} fields",
                     "18 numbers (job, submit, wait, run time, processors, ...)")
            continue
        bad = next((i for i, x in enumerate(f) if not _is_number(x)), None)
        if bad is not None:
            rows.bad(n, f"field {bad + 1} ({SWF_FIELDS[bad]})", "is not a number", f[bad],
                     "a number, -1 when unknown")
            continue
        submit, runtime, procs, req_procs, req_time = (float(f[i]) for i in (1, 3, 4, 7, 8))
        cpus = procs if procs > 0 else req_procs
        if cpus <= 0 or runtime <= 0:
            rows.skip("no processors" if cpus <= 0 else "no run time")
            continue
        gpus = max(1, math.ceil(cpus / procs_per_gpu))
        rows.add(submit, gpus, runtime, req_time if req_time > 0 else 0.0, f[11])


def _time(raw: str, line: int, rows: _Rows, where: str) -> float | None:
    try:
        t = datetime.fromisoformat(raw.strip())
    except ValueError:
        rows.bad(line, where, "is not a time", raw, "e.g. 2017-10-09 07:01:55 (UTC when no offset)")
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


# ─── scaling and home partners ───────────────────────────────────────────────────────────


def scale(trace: Trace, *, jobs: int | None = None, load: float = 1.0, size: float = 1.0) -> Trace:
    """The trace with ``jobs`` jobs (the first ones, or copies of the whole trace one after
    another, each starting a mean inter-arrival time after the previous one's last submit),
    inter-arrival times divided by ``load`` (2.0: twice the arrival rate) and GPU counts
    multiplied by ``size`` (rounded, at least 1).

    >>> t = Trace("t", np.array([0.0, 10.0]), np.array([1, 2]), np.array([5.0, 5.0]),
    ...           np.array([60.0, 60.0]), np.array([0, 0]), ("",))
    >>> s = scale(t, jobs=5, load=2.0, size=1.5)
    >>> s.submit_s.tolist(), s.gpus.tolist()
    ([0.0, 5.0, 10.0, 15.0, 20.0], [2, 3, 2, 3, 2])

    Raises:
        InvalidInput: a count below 1, or a load or size that is not positive.
    """
    problems = [Problem(name, "must be positive", str(v), "a number > 0")
                for name, v in (("load", load), ("size", size)) if not (math.isfinite(v) and v > 0)]
    if jobs is not None and jobs < 1:
        problems.append(Problem("jobs", "must be at least 1", str(jobs), "a whole number >= 1"))
    if problems:
        raise InvalidInput(problems)
    n = len(trace)
    count = n if jobs is None else jobs
    copies = -(-count // n)
    idx = np.arange(count) % n
    gap = trace.span_s / max(1, n - 1) if n > 1 else 1.0
    offset = (np.arange(count) // n) * (trace.span_s + gap)
    submit = (trace.submit_s[idx] + offset) / load
    gpus = np.maximum(1, np.rint(trace.gpus[idx] * size)).astype(np.int64)
    partner = tuple(trace.partner[i] for i in idx.tolist()) if trace.partner else ()
    skipped = dict(trace.skipped)
    if copies > 1:
        skipped = {k: v * copies for k, v in skipped.items()}
    return Trace(trace.source, submit, gpus, trace.runtime_s[idx], trace.requested_s[idx], trace.group[idx],
                 trace.groups, partner, skipped)


def assign_homes(trace: Trace, shares: Mapping[str, float], rule: HomeRule, seed: int,
                 partners: Iterable[str]) -> tuple[Ints, tuple[str, ...]]:
    """Each job's home partner, as an index into the returned partner ids (sorted).

    ``GROUP``: each group of the trace goes to one partner, drawn with ``shares`` (weights)
    from a generator seeded with ``seed``, groups in name order; ``JOB``: each job is drawn
    alike; ``COLUMN``: the trace's ``partner`` column. The same inputs give the same homes.

    Raises:
        InvalidInput: shares naming unknown partners or not positive, or ``COLUMN`` without
            a partner column or with an unknown partner in it.
    """
    known = tuple(sorted(partners))
    if rule is HomeRule.COLUMN:
        return _homes_from_column(trace, known)
    bad = [p for p in shares if p not in known]
    weights = np.array([max(0.0, float(shares.get(p, 0.0))) for p in known], np.float64)
    if bad or not shares or weights.sum() <= 0:
        raise InvalidInput([Problem("homes", "shares must name partners of the federation, with a "
                                    "positive total", ", ".join(bad) or str(dict(shares)), ", ".join(known))])
    rng = np.random.default_rng(seed)
    p = weights / weights.sum()
    if rule is HomeRule.GROUP:
        per_group = rng.choice(len(known), size=len(trace.groups), p=p)
        return per_group[trace.group].astype(np.int64), known
    return rng.choice(len(known), size=len(trace), p=p).astype(np.int64), known


def _homes_from_column(trace: Trace, known: tuple[str, ...]) -> tuple[Ints, tuple[str, ...]]:
    if not trace.partner:
        raise InvalidInput([Problem("homes", "the trace has no partner column", trace.source,
                                    "a generic CSV with a 'partner' column, or homes by group or job")])
    index = {p: i for i, p in enumerate(known)}
    bad = sorted({p for p in trace.partner if p not in index})
    if bad:
        raise InvalidInput([Problem("partner", "names no partner of the federation", ", ".join(bad[:5]),
                                    ", ".join(known), trace.source)])
    return np.array([index[p] for p in trace.partner], np.int64), known
