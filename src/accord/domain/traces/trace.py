"""Job traces for the simulator: parsing the common formats, scaling, home partners (pure).

A :class:`Trace` holds jobs as columns (numpy arrays), sorted by submit time, with times
in seconds from the first submit. :func:`parse_trace` takes a file's text and its name and
reports every bad row as a :class:`~accord.domain.errors.Problem` with the file and line
(at most 20), so a broken trace never gives a traceback; with
``TraceOptions.skip_bad_rows`` bad rows are counted as skipped instead, and the first few
quoted in the trace's notes. The formats are read by :mod:`.readers`; the records and
options are in :mod:`.rows`.

A job's requested time is the trace's when it has one at least as long as the run, else
the run rounded up to a whole ``round_s`` (users ask for round figures; Philly and Alibaba
record none); never more than the broker accepts (``jobs.spec.MAX_TIME_LIMIT_S``, 30 days):
a longer job asks for 30 days and runs 30 days, as a site ends a job at its time limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from accord.domain.errors import InvalidInput, Problem
from accord.domain.traces import readers
from accord.domain.traces.rows import (
    DEFAULT_ROUND_S,
    MAX_PROBLEMS,
    HomeRule,
    Ints,
    Rows,
    SwfStatus,
    TimeUnit,
    Trace,
    TraceFormat,
    TraceOptions,
    round_up,
)

__all__ = ["DEFAULT_ROUND_S", "MAX_PROBLEMS", "HomeRule", "SwfStatus", "TimeUnit", "Trace", "TraceFormat",
           "TraceOptions", "assign_homes", "home_rule", "parse_trace", "round_up", "scale", "sniff_trace"]


def parse_trace(text: str, source: str, fmt: TraceFormat, *, round_s: int = DEFAULT_ROUND_S,
                procs_per_gpu: int = 1, options: TraceOptions | None = None) -> Trace:
    """Parse a trace of format ``fmt`` from ``text`` (``source`` names it in problems),
    read as ``options`` say (else with ``round_s`` and ``procs_per_gpu``).

    Raises:
        InvalidInput: every bad row (file:line, field, value, what is allowed) unless bad
            rows are skipped, a column mapping that does not fit the format, or no usable
            job at all.
    """
    opts = options or TraceOptions(round_s, procs_per_gpu)
    rows = Rows(source, opts)
    if fmt is TraceFormat.SWF:
        if opts.columns:
            raise InvalidInput([Problem("columns", "an SWF trace has fixed fields, not named columns",
                                        ",".join(f"{a}={b}" for a, b in opts.columns),
                                        "no column mapping (use the queue/partition filters)", source)])
        readers.swf(text, rows)
    else:
        read = {TraceFormat.PHILLY: readers.philly, TraceFormat.ALIBABA: readers.alibaba,
                TraceFormat.CSV: readers.generic}[fmt]
        read(readers.csv_reader(text, source, fmt, opts.columns), rows)
    return rows.trace()


def sniff_trace(text: str) -> TraceFormat | None:
    """The format of a trace's text, from its first line; None if none fits.

    >>> sniff_trace("timestamp,duration,num_gpus,gpu_time,cluster\\n")
    <TraceFormat.PHILLY: 'philly'>
    >>> sniff_trace("; Version: 2\\n1 0 -1 10 1 -1 -1 1 60 -1 1 1 1 -1 1 -1 -1 -1\\n")
    <TraceFormat.SWF: 'swf'>
    >>> sniff_trace("name,gpu_request,creation_time,deletion_time,scheduled_time\\n")
    <TraceFormat.ALIBABA: 'alibaba'>
    """
    first = next((ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()), "")
    header = {h.strip().lower() for h in first.split(",")}
    for ours, others in readers.ALIASES.items():
        if header & set(others):
            header.add(ours)
    for fmt, need in readers.HEADERS.items():
        if set(need) <= header:
            return fmt
    fields = first.split()
    if first.lstrip().startswith(";") or (len(fields) == 18 and all(readers.is_number(f) for f in fields)):
        return TraceFormat.SWF
    return None


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
    origin = None if trace.origin_s is None else trace.origin_s + float(submit[0])
    return Trace(trace.source, submit, gpus, trace.runtime_s[idx], trace.requested_s[idx], trace.group[idx],
                 trace.groups, partner, skipped, trace.notes, origin)


def assign_homes(trace: Trace, shares: Mapping[str, float], rule: HomeRule, seed: int,
                 partners: Iterable[str]) -> tuple[Ints, tuple[str, ...]]:
    """Each job's home partner, as an index into the returned partner ids (sorted).

    ``GROUP``: each group of the trace goes to one partner, drawn with ``shares`` (weights)
    from a generator seeded with ``seed``, groups in name order; ``JOB``: each job is drawn
    alike; ``COLUMN``: the trace's ``partner`` column; ``AUTO``: ``GROUP`` when the trace
    has groups, else ``JOB`` (see :func:`home_rule`). The same inputs give the same homes.

    Raises:
        InvalidInput: shares naming unknown partners or not positive, or ``COLUMN`` without
            a partner column or with an unknown partner in it.
    """
    known = tuple(sorted(partners))
    rule = home_rule(trace, rule)
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


def home_rule(trace: Trace, rule: HomeRule) -> HomeRule:
    """The rule ``AUTO`` stands for: by group when the trace groups its jobs, else by job
    (one unnamed group by group would give every job the same home partner).

    >>> one = np.ones(1)
    >>> t = Trace("t", one, one.astype(np.int64), one, one, np.zeros(1, np.int64), ("",))
    >>> home_rule(t, HomeRule.AUTO), home_rule(t, HomeRule.GROUP)
    (<HomeRule.JOB: 'job'>, <HomeRule.GROUP: 'group'>)
    """
    if rule is HomeRule.AUTO:
        return HomeRule.GROUP if trace.has_groups else HomeRule.JOB
    return rule


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
