"""A parsed trace and how it is read: the :class:`Trace` record, the reading options
(:class:`TraceOptions`) and the collector the format readers fill row by row (pure).

Every bad row becomes a :class:`~accord.domain.errors.Problem` with its file and line, or,
with ``TraceOptions.skip_bad_rows``, is counted as skipped (reason ``bad row``) and the
first few problems are kept as notes for the report: a bad row is never silently dropped
and never a traceback.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from accord.domain.errors import InvalidInput, Problem
from accord.domain.jobs.spec import MAX_TIME_LIMIT_S

MAX_PROBLEMS = 20
MAX_EXAMPLES = 3   # bad rows quoted in the notes when they are skipped
DEFAULT_ROUND_S = 1800
BAD_ROW = "bad row"
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
    an SWF user), per job, from the trace's ``partner`` column, or ``AUTO`` (the default):
    per group when the trace has groups, else per job (said in the report)."""

    AUTO = "auto"
    GROUP = "group"
    JOB = "job"
    COLUMN = "column"


class SwfStatus(enum.Enum):
    """Which SWF records are replayed, by their status field (11): ``RAN``, every job that
    held its processors (completed 1, failed 0, cancelled 5 after starting, unknown -1) for
    the run time it recorded; ``COMPLETED``, only completed (and unknown) jobs. Partial
    executions (2, 3, 4) are never replayed: the job's summary record covers them."""

    RAN = "ran"
    COMPLETED = "completed"


class TimeUnit(enum.Enum):
    """The unit of a generic CSV's numeric times and durations."""

    SECONDS = "s"
    MINUTES = "min"
    HOURS = "h"

    @property
    def seconds(self) -> float:
        """Seconds in one of this unit.

        >>> TimeUnit.HOURS.seconds
        3600.0
        """
        return {"s": 1.0, "min": 60.0, "h": 3600.0}[self.value]

    @property
    def label(self) -> str:
        """The unit's name in messages: seconds, minutes, hours."""
        return {"s": "seconds", "min": "minutes", "h": "hours"}[self.value]


@dataclass(frozen=True, slots=True)
class TraceOptions:
    """How a trace is read (``docs/design/simulator.md``, "Traces").

    ``columns`` maps Accord's column names to the file's (``("submit", "arrival_time")``);
    ``queues`` and ``partitions`` keep only SWF records of those queues (field 15) or
    partitions (field 16), empty for all; ``time_unit`` is the generic CSV's.
    """

    round_s: int = DEFAULT_ROUND_S
    procs_per_gpu: int = 1
    skip_bad_rows: bool = False
    status: SwfStatus = SwfStatus.RAN
    queues: frozenset[int] = frozenset()
    partitions: frozenset[int] = frozenset()
    columns: tuple[tuple[str, str], ...] = ()
    time_unit: TimeUnit = TimeUnit.SECONDS


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Jobs as columns, sorted by submit time (seconds from the first submit).

    ``group`` indexes ``groups`` (the trace's own grouping: cluster, user, queue; one
    group "" when it has none); ``partner`` holds the generic CSV's partner column ("" when
    absent). ``skipped`` counts rows left out, by reason; ``notes`` says what the reader
    did that the report must tell (bad rows skipped, SWF statuses replayed...);
    ``origin_s`` is the epoch time of the first submit when the trace states it (an SWF
    ``UnixStartTime`` header), else None.
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
    notes: tuple[str, ...] = ()
    origin_s: float | None = None

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

    @property
    def has_groups(self) -> bool:
        """Whether the trace groups its jobs (more than one group, or a named one)."""
        return len(self.groups) > 1 or self.groups != ("",)


class Rows:
    """Collects parsed rows, problems (or skipped bad rows) and notes for one trace."""

    def __init__(self, source: str, options: TraceOptions) -> None:
        self.source, self.options = source, options
        self.submit: list[float] = []
        self.gpus: list[int] = []
        self.runtime: list[float] = []
        self.requested: list[float] = []
        self.group: list[str] = []
        self.partner: list[str] = []
        self.problems: list[Problem] = []
        self.examples: list[Problem] = []
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []
        self.origin_s: float | None = None
        self._bad_line = -1

    def bad(self, line: int, where: str, message: str, got: object, allowed: str) -> None:
        """A bad field of row ``line``: a problem, or (skipping bad rows) the row counted once."""
        shown = got if isinstance(got, str) else repr(got)
        problem = Problem(where, message, shown, allowed, self.source, line)
        if not self.options.skip_bad_rows:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(problem)
            return
        if line != self._bad_line:
            self._bad_line = line
            self.skip(BAD_ROW)
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(problem)

    def skip(self, reason: str) -> None:
        """Count a row left out for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, submit: float, gpus: int, runtime: float, requested: float, group: str,
            partner: str = "") -> None:
        """A job to replay."""
        self.submit.append(submit)
        self.gpus.append(gpus)
        self.runtime.append(runtime)
        self.requested.append(requested)
        self.group.append(group)
        self.partner.append(partner)

    def number(self, raw: str, line: int, where: str, allowed: str, minimum: float = 0.0) -> float | None:
        """``raw`` as a finite number >= ``minimum``, or None after reporting it."""
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is not None and not math.isfinite(value):
            self.bad(line, where, "is not a finite number", raw, allowed)
            return None
        if value is None or value < minimum:
            self.bad(line, where, "is not a number in range", raw, allowed)
            return None
        return value

    def trace(self) -> Trace:
        """The trace of the rows read.

        Raises:
            InvalidInput: every bad row (unless skipped), or no usable job at all.
        """
        if self.problems:
            raise InvalidInput(self.problems)
        if not self.submit:
            raise InvalidInput([Problem("trace", "has no usable job", f"skipped: {self.skipped or 'none'}",
                                        "at least one job with GPUs and a positive run time", self.source)])
        submit = np.array(self.submit, np.float64)
        order = np.argsort(submit, kind="stable")
        runtime = np.array(self.runtime, np.float64)[order]
        asked = np.array(self.requested, np.float64)[order]
        requested = np.minimum(np.where(asked >= runtime, asked, round_up(runtime, self.options.round_s)),
                               MAX_TIME_LIMIT_S)
        names = tuple(sorted(set(self.group)))
        index = {g: i for i, g in enumerate(names)}
        group = np.array([index[g] for g in self.group], np.int64)[order]
        partner = tuple(self.partner[i] for i in order.tolist()) if any(self.partner) else ()
        submit = submit[order]
        origin = None if self.origin_s is None else self.origin_s + float(submit[0])
        return Trace(self.source, submit - submit[0], np.array(self.gpus, np.int64)[order],
                     np.minimum(runtime, requested), requested, group, names, partner, dict(self.skipped),
                     (*self._bad_note(), *self.notes), origin)

    def _bad_note(self) -> tuple[str, ...]:
        n = self.skipped.get(BAD_ROW, 0)
        if not n:
            return ()
        shown = "; ".join(p.render() for p in self.examples)
        return (f"{n:,} bad row(s) skipped (--skip-bad-rows), e.g. {shown}",)


def round_up(runtime: Floats, round_s: int) -> Floats:
    """Requested times for runs that have none: up to 12 h, the run rounded up to a whole
    ``round_s``; up to 3 days, to 6 h; beyond, to a day (users ask for round figures, and
    few distinct durations keep placement's per-duration caches warm).

    >>> round_up(np.array([60.0, 13 * 3600.0, 4 * 86400.0 + 1]), 1800).tolist()
    [1800.0, 64800.0, 432000.0]
    """
    coarse = np.where(runtime <= 12 * 3600, round_s, np.where(runtime <= 3 * 86400, 6 * 3600, 86400))
    return np.ceil(runtime / coarse) * coarse
