"""Convert Slurm accounting (``sacct --parsable2`` output) to the Standard Workload Format,
so a site's own job log can be replayed by the simulator (``--trace FILE.swf``).

Input: the output of::

    sacct --allusers --allocations --parsable2 --starttime=... --endtime=... \\
          --format=JobID,User,Submit,Start,End,Timelimit,AllocTRES,State

with its header line (the columns may come in any order; others are ignored). Times
without a zone, as sacct prints them, are read as UTC (run sacct with ``TZ=UTC``). Jobs
that never started (no Start, or no GPUs and no CPUs allocated) are skipped and counted.
Output: SWF version 2.2 with GPUs in the processor fields (read it with
``procs_per_gpu = 1``, the default), users numbered in order of appearance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput, Problem

REQUIRED = ("JobID", "User", "Submit", "Start", "End", "Timelimit", "AllocTRES", "State")
_LIMIT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")
_STATUS = {"COMPLETED": 1, "FAILED": 0, "TIMEOUT": 0, "OUT_OF_MEMORY": 0, "NODE_FAIL": 0,
           "CANCELLED": 5, "PREEMPTED": 5}


@dataclass(frozen=True, slots=True)
class Converted:
    """The SWF text, how many jobs it holds, and how many rows were skipped and why."""

    text: str
    jobs: int
    skipped: dict[str, int]


def sacct_to_swf(text: str, source: str) -> Converted:
    """Convert ``sacct --parsable2`` output (see the module docstring).

    Raises:
        InvalidInput: no header, a missing column, or a row whose time, time limit or
            TRES does not parse — each naming ``source:line``, the column and the value.
    """
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise InvalidInput([Problem("header", "the file is empty", None, "sacct --parsable2 output with "
                                    "its header", source, 1)])
    header = lines[0][1].split("|")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput([Problem("header", f"lacks column(s) {', '.join(missing)}", lines[0][1][:120],
                                    "--format=" + ",".join(REQUIRED), source, lines[0][0])])
    col = {name: header.index(name) for name in REQUIRED}
    jobs: list[tuple[float, float, float, int, int, int, str]] = []
    skipped: dict[str, int] = {}
    problems: list[Problem] = []
    for n, line in lines[1:]:
        f = line.split("|")
        if len(f) < len(header):
            problems.append(Problem("row", f"has {len(f)} fields, the header {len(header)}", line[:120],
                                    "one value per header column, separated by |", source, n))
            continue
        job = _job(f, col, source, n, problems, skipped)
        if job is not None:
            jobs.append(job)
    if problems:
        raise InvalidInput(problems[:50])
    return Converted(_swf(jobs, source), len(jobs), skipped)


def _job(f: list[str], col: dict[str, int], source: str, n: int, problems: list[Problem],
         skipped: dict[str, int]) -> tuple[float, float, float, int, int, int, str] | None:
    if "." in f[col["JobID"]]:   # a step, not an allocation
        skipped["job steps"] = skipped.get("job steps", 0) + 1
        return None
    if f[col["Start"]] in ("", "Unknown", "None"):
        skipped["never started"] = skipped.get("never started", 0) + 1
        return None
    submit, start, end = (_time(f[col[c]], c, source, n, problems) for c in ("Submit", "Start", "End"))
    limit = _limit(f[col["Timelimit"]], source, n, problems)
    gpus = _gpus(f[col["AllocTRES"]], source, n, problems)
    if submit is None or start is None or end is None or limit is None or gpus is None:
        return None
    if gpus == 0:
        skipped["no GPUs allocated"] = skipped.get("no GPUs allocated", 0) + 1
        return None
    status = _STATUS.get(f[col["State"]].split()[0], -1) if f[col["State"]] else -1
    return submit, start, max(end, start), gpus, limit, status, f[col["User"]]


def _time(value: str, column: str, source: str, n: int, problems: list[Problem]) -> float | None:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem(column, "is not a time", value[:40], "YYYY-MM-DDTHH:MM:SS", source, n))
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _limit(value: str, source: str, n: int, problems: list[Problem]) -> int | None:
    if value in ("UNLIMITED", "Partition_Limit", ""):
        return -1
    m = _LIMIT.match(value)
    if m is None:
        problems.append(Problem("Timelimit", "is not a Slurm time limit", value[:40],
                                "[D-]HH:MM:SS, MM:SS or UNLIMITED", source, n))
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _gpus(value: str, source: str, n: int, problems: list[Problem]) -> int | None:
    count = 0
    for item in filter(None, value.split(",")):
        name, _, amount = item.partition("=")
        if name == "gres/gpu":   # typed counts (gres/gpu:h100=N) repeat it
            if not amount.isdigit():
                problems.append(Problem("AllocTRES", "has a GPU count that is not a number", item[:40],
                                        "gres/gpu=N", source, n))
                return None
            count += int(amount)
    return count


def _swf(jobs: list[tuple[float, float, float, int, int, int, str]], source: str) -> str:
    jobs.sort(key=lambda j: j[0])
    t0 = jobs[0][0] if jobs else 0.0
    users: dict[str, int] = {}
    out = ["; Version: 2.2", f"; Computer: converted by Accord from Slurm accounting ({source})",
           f"; UnixStartTime: {int(t0)}", "; TimeZoneString: UTC",
           "; Note: processors are GPUs (read with procs_per_gpu = 1)"]
    for i, (submit, start, end, gpus, limit, status, user) in enumerate(jobs, start=1):
        uid = users.setdefault(user, len(users) + 1)
        fields = [i, round(submit - t0), round(start - submit), round(end - start), gpus, -1, -1, gpus,
                  limit, -1, status, uid, -1, -1, -1, -1, -1, -1]
        out.append(" ".join(str(x) for x in fields))
    return "\n".join(out) + "\n"
