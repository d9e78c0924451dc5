"""Parsers for what Slurm's command-line tools print, from Slurm 22.05 to 25.05.

Pure functions, no I/O: :mod:`accord.adapters.slurm.backend` runs the commands and
hands their stdout here. Every parse failure raises
:class:`~accord.domain.errors.Unavailable` naming the command and quoting the bad
value, never a bare ``KeyError``/``ValueError``: to the broker, a site whose tools
print something unexpected is a site that cannot be used right now.

Formats and where they were checked:

* ``sacct -P -X --noheader -o <SACCT_FIELDS>`` (run with ``TZ=UTC`` and
  ``SLURM_TIME_FORMAT=%Y-%m-%dT%H:%M:%S``): :func:`parse_sacct_parsable`. Real 22.05
  output in ``tests/fixtures/slurm/22.05``.
* ``sacct --json``: :func:`parse_sacct_json`, for every data_parser shape:
  ``dbv0.0.38`` (22.05, captured), ``v0.0.39`` (23.02), ``v0.0.40`` (23.11),
  ``v0.0.41`` (24.05), ``v0.0.42`` (24.11), ``v0.0.43`` (25.05) (reconstructed from
  public sources, see the READMEs next to the samples). Shapes differ: a state is a
  string up to v0.0.39 and a list of flags from v0.0.40; times and counts are
  integers or ``{"set", "infinite", "number"}``; ``exit_code.status`` is a string or
  a list, ``return_code`` an integer, ``null`` or a ``{"set", ...}`` object.
* ``squeue --json``: :func:`parse_squeue_json`, same versions.
* ``squeue -h -o <SQUEUE_FORMAT>`` or ``squeue -h -O <SQUEUE_FORMAT_LONG>``:
  :func:`parse_squeue_format`.
* ``sbatch --parsable``: :func:`parse_sbatch_parsable`.

Slurm quirks these parsers absorb (all seen on the 22.05 testbed unless noted):

* **Exit codes in ``sacct --json`` are wrong up to data_parser v0.0.39 (22.05,
  23.02)**: a job that exited 3 is reported ``{"status": "SUCCESS",
  "return_code": 0}`` (the dumper tests ``WIFEXITED`` and then always writes 0; see
  ``DUMP_FUNC(JOB_EXIT_CODE)`` in SchedMD's ``src/plugins/data_parser/v0.0.39/
  parsers.c``). :func:`parse_sacct_json` maps what is there, so the backend takes
  exit codes from ``sacct -P`` (``ExitCode=3:0``) on those versions. v0.0.40 and
  later report ``{"status": ["ERROR"], "return_code": {"number": 3, ...}}``.
* GPUs are tracked twice when a site sets ``AccountingStorageTRES=gres/gpu,
  gres/gpu:h100``: ``AllocTRES`` reads ``gres/gpu:h100=2,gres/gpu=2`` for 2 GPUs, and
  steps repeat their allocation's TRES. :func:`parse_tres_gpus` never adds typed
  entries to the untyped one, and step lines/objects are skipped.
* A site that does not list ``gres/gpu`` in ``AccountingStorageTRES`` has no GPUs in
  any TRES string (a 23.11 sample: ``tres_alloc_str`` without GPUs, ``tres_per_job``
  ``gres/gpu:6``); :func:`parse_squeue_json` then falls back to the ``tres_per_*``
  requests and ``gres_detail``. sacct has no such fallback: 0 GPUs.
* ``tres_per_job`` and friends are ``gres:gpu:1`` on 22.05 and ``gres/gpu:4`` later.
* State text carries extras: ``CANCELLED by 0`` (uid of the canceller), ``CANCELLED+``
  (sacct truncating a column).
* ``squeue -o %b`` is *TRES per node*: it prints ``N/A`` for an ``sbatch --gpus=2``
  job (checked live on 22.05), so :data:`SQUEUE_FORMAT` yields ``gpus=0`` for such a
  job. ``squeue -O tres-alloc`` (in :data:`SQUEUE_FORMAT_LONG`) prints the whole
  allocation, or the request while pending (``...,gres/gpu=2``); use it when GPU
  counts matter. An empty comment prints as ``(null)``, a pending start as ``N/A``.
* ``squeue --json`` on 22.05 ignores ``-j`` and ``-t`` and lists every job slurmctld
  still holds, finished ones included: callers filter the result themselves.
* A job cancelled while pending gets its cancel time as start time in squeue
  (``StartTime``, ``start_time``), and in sacct too when the cancel came within a
  second of the submission (``Start=End=Submit`` instead of ``None``). Every parser
  here reports ``start=None`` for a job that never had a node (empty ``%N``,
  ``NodeList=None assigned``, ``"nodes": ""``), so nothing mistakes it for started.
* Such an early cancel may even reach slurmdbd without the submit record: sacct
  then shows ``JobName=allocation``, an empty ``Comment`` and no TRES at all.
* ``sacct``'s ``Comment`` is empty while the job runs (22.05: the comment reaches
  slurmdbd with the end record); squeue's ``%k`` has it from the start. Look for
  Accord's tag in squeue for live jobs.
* ``|`` inside ``--comment`` (or ``-J``) splits ``sacct -P``/``squeue -o`` lines:
  surplus fields are joined back into the comment, the only free-text field these
  parsers expect; job names must not contain ``|``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accord.domain.errors import Unavailable
from accord.ports import RemoteState

__all__ = [
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "SQUEUE_FORMAT_LONG",
    "QueueEntry",
    "SlurmRecord",
    "map_state",
    "parse_sacct_json",
    "parse_sacct_parsable",
    "parse_sbatch_parsable",
    "parse_squeue_format",
    "parse_squeue_json",
    "parse_tres_gpus",
]


@dataclass(frozen=True, slots=True)
class SlurmRecord:
    """One job allocation as Slurm's accounting (sacct) reports it."""

    job_id: str
    cluster: str | None
    name: str
    comment: str
    state: RemoteState
    raw_state: str
    reason: str
    exit_code: int | None
    signal: int | None
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    elapsed_s: int
    alloc_gpus: int
    req_gpus: int
    nodes: int
    node_list: str
    energy_j: float | None

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds used: the allocation's GPUs times its elapsed time."""
        return float(self.alloc_gpus * self.elapsed_s)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One job as slurmctld (squeue) reports it; ``start`` is None until it runs."""

    job_id: str
    name: str
    comment: str
    state: RemoteState
    raw_state: str
    reason: str
    start: datetime | None
    gpus: int
    cluster: str | None


# The order matters only in that Comment, the one free-text field, is last.
SACCT_FIELDS: tuple[str, ...] = (
    "JobID",
    "Cluster",
    "JobName",
    "State",
    "ExitCode",
    "Reason",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "AllocTRES",
    "ReqTRES",
    "NNodes",
    "NodeList",
    "ConsumedEnergyRaw",
    "Comment",
)

# For ``squeue -h -o``: id|name|state|reason|start|nodes|TRES-per-node|node list|comment.
SQUEUE_FORMAT = "%i|%j|%T|%r|%S|%D|%b|%N|%k"

# For ``squeue -h -O`` (``--Format``): the same, with the whole job's TRES (the
# request while pending) instead of TRES per node, plus the cluster.
SQUEUE_FORMAT_LONG = (
    "JobID:|,Name:|,State:|,Reason:|,StartTime:|,NumNodes:|,tres-alloc:|,Cluster:|,NodeList:|,Comment:"
)

_COMMENT_NULL = "(null)"

# --------------------------------------------------------------------------- states

_STATE_MAP: Mapping[str, RemoteState] = {
    # Not started (or sent back to the queue).
    "PENDING": RemoteState.PENDING,
    "REQUEUED": RemoteState.PENDING,
    "REQUEUE_FED": RemoteState.PENDING,
    "REQUEUE_HOLD": RemoteState.PENDING,
    "SPECIAL_EXIT": RemoteState.PENDING,
    "RESV_DEL_HOLD": RemoteState.PENDING,
    "CONFIGURING": RemoteState.PENDING,
    "RESIZING": RemoteState.PENDING,
    "STAGE_IN": RemoteState.PENDING,
    "POWER_UP_NODE": RemoteState.PENDING,
    # Started and not finished. SUSPENDED and STOPPED count as running: the job has
    # started, keeps its allocation, and must not be counted as queued demand.
    "RUNNING": RemoteState.RUNNING,
    "SUSPENDED": RemoteState.RUNNING,
    "STOPPED": RemoteState.RUNNING,
    "COMPLETING": RemoteState.RUNNING,
    "STAGE_OUT": RemoteState.RUNNING,
    "SIGNALING": RemoteState.RUNNING,
    # Final.
    "COMPLETED": RemoteState.COMPLETED,
    "FAILED": RemoteState.FAILED,
    "OUT_OF_MEMORY": RemoteState.FAILED,
    "BOOT_FAIL": RemoteState.FAILED,
    "DEADLINE": RemoteState.FAILED,
    # Preempted jobs that are not requeued are over: Accord sees a failure it may retry.
    "PREEMPTED": RemoteState.FAILED,
    "CANCELLED": RemoteState.CANCELLED,
    "REVOKED": RemoteState.CANCELLED,
    "TIMEOUT": RemoteState.TIMEOUT,
    "NODE_FAIL": RemoteState.NODE_FAIL,
}

# In list-valued states (data_parser v0.0.40+) these flags win over the base state,
# in this order, as in Slurm's job_state_string().
_FLAG_PRIORITY = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
    "STAGE_IN",
    "POWER_UP_NODE",
)


def map_state(raw: str) -> RemoteState:
    """Map a Slurm job state, as sacct or squeue print it, to a :class:`RemoteState`.

    Extras after the state (``CANCELLED by 0``) and a trailing ``+`` are ignored.
    SUSPENDED maps to RUNNING (the job started and holds its allocation); PREEMPTED
    to FAILED.

    Raises:
        Unavailable: the state is not one Slurm documents.

    >>> [map_state(s).value for s in ("CANCELLED by 0", "CANCELLED+", "COMPLETING", "PREEMPTED")]
    ['cancelled', 'cancelled', 'running', 'failed']
    """
    words = raw.split()
    key = words[0].rstrip("+").upper() if words else ""
    try:
        return _STATE_MAP[key]
    except KeyError:
        raise Unavailable(
            f"Slurm reported an unknown job state {raw!r}; known states: {', '.join(sorted(_STATE_MAP))}"
        ) from None


def _map_state_value(value: object, where: str) -> tuple[RemoteState, str]:
    """State and raw text from a JSON state: a string, or a list (base state + flags).

    Raises:
        Unavailable: the value is neither, or its state is unknown.
    """
    if isinstance(value, str):
        return map_state(value), value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        names = [str(v) for v in value]
        raw = ",".join(names)
        flag = next((f for f in _FLAG_PRIORITY if f in names), None)
        return map_state(flag if flag is not None else names[0]), raw
    raise Unavailable(f"{where}: job state should be a string or a list of strings, got {value!r}")


# ----------------------------------------------------------------------------- TRES


def _gpus_from_pairs(pairs: Iterable[tuple[str, int]]) -> int:
    """GPUs from (gres name, count) pairs such as ("gpu", 2), ("gpu:h100", 2).

    The untyped ``gpu`` entry already counts every typed one; typed entries are
    summed (once per type) only when there is no untyped entry.
    """
    untyped: int | None = None
    typed: dict[str, int] = {}
    for name, count in pairs:
        if name == "gpu":
            untyped = count if untyped is None else max(untyped, count)
        elif name.startswith("gpu:"):
            typed[name] = max(typed.get(name, 0), count)
    if untyped is not None:
        return untyped
    return sum(typed.values())


def _count(text: str, what: str) -> int:
    """A non-negative integer count.

    Raises:
        Unavailable: ``text`` is not one (``what`` names the command and field).
    """
    if not text.isdigit():
        raise Unavailable(f"{what}: expected a count, got {text!r}")
    return int(text)


def _tres_pairs(tres: str, what: str) -> Iterator[tuple[str, int]]:
    """(gres name, count) of the GPU entries of a TRES string (``gres/gpu:h100=2``).

    Raises:
        Unavailable: an entry is not ``key=value``, or a GPU count is not a number.
    """
    for item in tres.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            if key.strip():
                raise Unavailable(f"{what}: bad TRES entry {item!r} in {tres!r}")
            continue
        name = key.strip().removeprefix("gres/")
        if key.strip().startswith("gres/") and (name == "gpu" or name.startswith("gpu:")):
            yield name, _count(value.strip(), f"{what} {key.strip()}")


def parse_tres_gpus(tres: str) -> int:
    """GPUs in a TRES string (AllocTRES, ReqTRES, squeue's tres-alloc).

    Raises:
        Unavailable: an entry is not ``key=value`` or a GPU count is not a number.

    >>> parse_tres_gpus("cpu=2,mem=512M,node=1,billing=2,gres/gpu=2,gres/gpu:h100=2")
    2
    >>> parse_tres_gpus("gres/gpu:h100=2,gres/gpu:a100=1"), parse_tres_gpus("")
    (3, 0)
    """
    text = tres.strip()
    if text in ("", "N/A", _COMMENT_NULL):
        return 0
    return _gpus_from_pairs(_tres_pairs(text, "TRES"))


def _gres_spec_gpus(spec: str, what: str) -> int:
    """GPUs in a GRES request or detail string.

    Accepts ``gres:gpu:1`` (22.05), ``gres/gpu:4``, ``gres/gpu:h100:2``, ``gpu``,
    ``gpu:h100:2(IDX:0-1),gpu:h200:4(IDX:2-5)`` (gres_detail); typed and untyped
    entries of one request are summed, as they are separate requests there.

    Raises:
        Unavailable: a count is not a number.
    """
    total = 0
    for item in re.sub(r"\([^)]*\)", "", spec).split(","):
        parts = item.strip().removeprefix("gres:").removeprefix("gres/").split(":")
        if parts[0] != "gpu":
            continue
        last = parts[-1] if len(parts) > 1 else ""
        if len(parts) == 1 or (len(parts) == 2 and not last.isdigit()):
            total += 1  # "gpu" or "gpu:h100": one GPU
        else:
            total += _count(last, what)
    return total


# ---------------------------------------------------------------------------- values


def _parse_time(text: str, what: str) -> datetime | None:
    """A UTC time from ``sacct``/``squeue`` text; None for the "no time" spellings.

    Naive times are taken as UTC (the backend runs the tools with ``TZ=UTC``).

    Raises:
        Unavailable: the text is not an ISO-8601 time.
    """
    value = text.strip()
    if value in ("", "Unknown", "None", "N/A", "0", "(null)"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unavailable(f"{what}: expected a time like 2026-01-31T12:00:00, got {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_exit(text: str, what: str) -> tuple[int | None, int | None]:
    """``ExitCode`` text ``3:0`` -> (3, None); ``0:15`` -> (0, 15); empty -> (None, None).

    Raises:
        Unavailable: the text is not ``N:M``.
    """
    value = text.strip()
    if value == "":
        return None, None
    code, sep, sig = value.partition(":")
    if not sep or not code.isdigit() or not sig.isdigit():
        raise Unavailable(f"{what}: expected an exit code like 3:0, got {value!r}")
    return int(code), (int(sig) or None)


def _parse_elapsed(text: str, what: str) -> int:
    """Seconds from ElapsedRaw (``85``) or Elapsed (``[D-]HH:MM:SS``, ``MM:SS``).

    Raises:
        Unavailable: neither form.
    """
    value = text.strip()
    if value == "":
        return 0
    if value.isdigit():
        return int(value)
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", value)
    if match is None:
        raise Unavailable(f"{what}: expected an elapsed time, got {value!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _parse_energy(text: str, what: str) -> float | None:
    """Joules from ConsumedEnergyRaw; None when empty or not positive.

    Raises:
        Unavailable: not a number.
    """
    value = text.strip()
    if value == "":
        return None
    try:
        joules = float(value)
    except ValueError:
        raise Unavailable(f"{what}: expected joules, got {value!r}") from None
    return joules if joules > 0 else None


def _started(state: RemoteState, node_list: str, start: datetime | None) -> datetime | None:
    """``start``, unless the job never ran: pending, or no nodes ever assigned.

    Slurm sets the start time of a job cancelled while pending to its cancel time
    (squeue, and sacct when the cancel came within a second of the submission).
    """
    if state is RemoteState.PENDING or not node_list:
        return None
    return start


def _reason(text: str) -> str:
    value = text.strip()
    return "" if value in ("None", "(null)") else value


def _node_list(text: str) -> str:
    value = text.strip()
    return "" if value in ("None assigned", "(null)", "None") else value


# ---------------------------------------------------------------------- pipe splitting


def _split_fields(line: str, width: int, free: int | None, what: str) -> list[str]:
    """Split a ``|``-separated line into ``width`` fields.

    Surplus fields (a ``|`` in free text) are joined back into field ``free``.

    Raises:
        Unavailable: too few fields, or too many with no free-text field.
    """
    parts = line.split("|")
    surplus = len(parts) - width
    if surplus == 0:
        return parts
    if surplus > 0 and free is not None:
        return [*parts[:free], "|".join(parts[free : free + surplus + 1]), *parts[free + surplus + 1 :]]
    raise Unavailable(f"{what}: expected {width} '|'-separated fields, got {len(parts)} in {line!r}")


# ------------------------------------------------------------------------ sacct -P

_SACCT_ALIASES = {"jobidraw": "jobid", "elapsed": "elapsedraw", "consumedenergy": "consumedenergyraw"}
_SACCT_WHAT = "sacct -P"


def _sacct_columns(fields: Sequence[str]) -> dict[str, int]:
    """Lower-case field name -> column; Elapsed/JobIDRaw stand in for the raw ones.

    Raises:
        Unavailable: JobID (or JobIDRaw) or State is missing.
    """
    columns: dict[str, int] = {}
    for index, name in enumerate(fields):
        columns.setdefault(name.strip().lower().split("%")[0], index)
    for alias, raw in _SACCT_ALIASES.items():
        if alias in columns:
            columns.setdefault(raw, columns[alias])
    for required in ("jobid", "state"):
        if required not in columns:
            raise Unavailable(f"{_SACCT_WHAT}: the field list {list(fields)} has no {required}")
    return columns


def _looks_like_sacct_header(parts: Sequence[str]) -> bool:
    names = {part.strip().lower() for part in parts}
    return bool(names & {"jobid", "jobidraw"}) and "state" in names


def parse_sacct_parsable(text: str, fields: Sequence[str] = SACCT_FIELDS) -> list[SlurmRecord]:
    """Job allocations from ``sacct -P [-X] [--noheader] -o <fields>``.

    A header line, if present, gives the field order (and overrides ``fields``).
    Step lines (JobID with a ``.``) and blank lines are skipped, so a job is never
    counted twice. Times are read as UTC (run sacct with ``TZ=UTC`` and
    ``SLURM_TIME_FORMAT=%Y-%m-%dT%H:%M:%S``).

    Raises:
        Unavailable: a line has the wrong number of fields, or a value (state, time,
            exit code, TRES, count) cannot be read; the message quotes it.

    >>> [r] = parse_sacct_parsable("15|c1|job|FAILED|3:0|None|||||gres/gpu=1||1||||")
    >>> r.job_id, r.state.value, r.exit_code, r.alloc_gpus
    ('15', 'failed', 3, 1)
    """
    columns = _sacct_columns(fields)
    width = len(fields)
    records: list[SlurmRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if _looks_like_sacct_header(line.split("|")):
            fields = [f.strip() for f in line.split("|")]
            columns, width = _sacct_columns(fields), len(fields)
            continue
        what = f"{_SACCT_WHAT} line {number}"
        parts = _split_fields(line, width, columns.get("comment"), what)
        record = _sacct_record(parts, columns, what)
        if record is not None:
            records.append(record)
    return records


def _sacct_record(parts: Sequence[str], columns: Mapping[str, int], what: str) -> SlurmRecord | None:
    """One record from a split line; None for a step line.

    Raises:
        Unavailable: a value cannot be read.
    """

    def get(name: str) -> str:
        index = columns.get(name)
        return parts[index].strip() if index is not None else ""

    job_id = get("jobid")
    if not job_id:
        raise Unavailable(f"{what}: empty JobID")
    if "." in job_id:
        return None
    raw_state = get("state")
    exit_code, signal = _parse_exit(get("exitcode"), f"{what} ExitCode")
    comment_index = columns.get("comment")
    return SlurmRecord(
        job_id=job_id,
        cluster=get("cluster") or None,
        name=get("jobname"),
        comment=parts[comment_index] if comment_index is not None else "",
        state=map_state(raw_state),
        raw_state=raw_state,
        reason=_reason(get("reason")),
        exit_code=exit_code,
        signal=signal,
        submit=_parse_time(get("submit"), f"{what} Submit"),
        start=_sacct_start(_parse_time(get("start"), f"{what} Start"), get("nodelist"), columns),
        end=_parse_time(get("end"), f"{what} End"),
        elapsed_s=_parse_elapsed(get("elapsedraw"), f"{what} Elapsed"),
        alloc_gpus=_tres_gpus(get("alloctres"), f"{what} AllocTRES"),
        req_gpus=_tres_gpus(get("reqtres"), f"{what} ReqTRES"),
        nodes=_count(get("nnodes") or "0", f"{what} NNodes"),
        node_list=_node_list(get("nodelist")),
        energy_j=_parse_energy(get("consumedenergyraw"), f"{what} ConsumedEnergyRaw"),
    )


def _sacct_start(start: datetime | None, node_list: str, columns: Mapping[str, int]) -> datetime | None:
    """The start time, or None if NodeList was asked for and no node was ever assigned."""
    if "nodelist" in columns and not _node_list(node_list):
        return None
    return start


def _tres_gpus(tres: str, what: str) -> int:
    """:func:`parse_tres_gpus`, with ``what`` in the error message.

    Raises:
        Unavailable: the TRES string cannot be read.
    """
    try:
        return parse_tres_gpus(tres)
    except Unavailable as exc:
        raise Unavailable(f"{what}: {exc}") from exc


# ------------------------------------------------------------------------ JSON helpers


def _load_jobs(text: str, what: str) -> list[Mapping[str, object]]:
    """The ``jobs`` list of a ``--json`` document.

    Raises:
        Unavailable: not JSON, no ``jobs`` list, or Slurm reported errors.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unavailable(f"{what}: output is not JSON ({exc.msg} at {exc.pos}): {text[:200]!r}") from None
    if not isinstance(document, dict):
        raise Unavailable(f"{what}: expected a JSON object, got {text[:200]!r}")
    errors = document.get("errors")
    if isinstance(errors, list) and errors:
        raise Unavailable(f"{what}: Slurm reported errors: {errors[:3]!r}")
    jobs = document.get("jobs")
    if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
        raise Unavailable(f"{what}: expected a 'jobs' list of objects, got {str(jobs)[:200]!r}")
    return [dict(job) for job in jobs]


def _at(obj: object, path: str) -> object:
    """The value at a ``/``-separated path in nested dicts, or None."""
    for key in path.split("/"):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _number(value: object, what: str) -> int | None:
    """An integer from JSON: a number, ``null``, or ``{"set", "infinite", "number"}``.

    Unset and infinite values are None.

    Raises:
        Unavailable: anything else.
    """
    if isinstance(value, Mapping) and "number" in value:
        if value.get("set") is False or value.get("infinite") is True:
            return None
        value = value["number"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unavailable(f"{what}: expected a number, got {value!r}")
    return int(value)


def _epoch(value: object, what: str) -> datetime | None:
    """A UTC time from JSON epoch seconds; None for null, unset and 0.

    Raises:
        Unavailable: not a number.
    """
    seconds = _number(value, what)
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _text(value: object, what: str) -> str:
    """A JSON string; ``null`` is "".

    Raises:
        Unavailable: anything else.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Unavailable(f"{what}: expected a string, got {value!r}")
    return value


def _json_job_id(job: Mapping[str, object], what: str) -> str:
    """The id as ``sacct -P`` prints it: ``123``, ``123_4`` (array task), ``123+1`` (het).

    Raises:
        Unavailable: no job_id number.
    """
    job_id = _number(job.get("job_id"), f"{what} job_id")
    if job_id is None:
        raise Unavailable(f"{what}: job without a job_id: {str(job)[:200]!r}")
    array_id = _number(_at(job, "array/job_id"), f"{what} array/job_id")
    task_id = _number(_at(job, "array/task_id"), f"{what} array/task_id")
    if array_id and task_id is not None:
        return f"{array_id}_{task_id}"
    het_id = _number(_at(job, "het/job_id"), f"{what} het/job_id")
    offset = _number(_at(job, "het/job_offset"), f"{what} het/job_offset")
    if het_id and offset is not None:
        return f"{het_id}+{offset}"
    return str(job_id)


def _json_tres_gpus(value: object, what: str) -> int:
    """GPUs in a JSON TRES list ``[{"type": "gres", "name": "gpu:h100", "count": 2}]``.

    Raises:
        Unavailable: not a list of TRES objects.
    """
    if value is None:
        return 0
    if not isinstance(value, list):
        raise Unavailable(f"{what}: expected a list of TRES, got {value!r}")
    pairs: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise Unavailable(f"{what}: expected a TRES object, got {item!r}")
        if item.get("type") == "gres" and isinstance(item.get("name"), str):
            pairs.append((str(item["name"]), _number(item.get("count"), what) or 0))
    return _gpus_from_pairs(pairs)


def _json_exit(value: object, what: str) -> tuple[int | None, int | None]:
    """(exit code, signal) from a JSON exit_code object.

    ``return_code`` may be an int, null or a ``{"set", ...}`` object; the signal is
    ``{"signal_id": 15}`` (v0.0.39) or ``{"id": {"number": 15, ...}}`` (v0.0.40+).

    Raises:
        Unavailable: not an object, or a number is not a number.
    """
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise Unavailable(f"{what}: expected an exit code object, got {value!r}")
    code = _number(value.get("return_code"), f"{what} return_code")
    signal_obj = value.get("signal")
    signal = None
    if isinstance(signal_obj, Mapping):
        raw_signal = signal_obj.get("id", signal_obj.get("signal_id"))
        signal = _number(raw_signal, f"{what} signal") or None
    return code, signal


# ----------------------------------------------------------------------- sacct --json

_SACCT_JSON = "sacct --json"


def parse_sacct_json(text: str) -> list[SlurmRecord]:
    """Job allocations from ``sacct --json`` (22.05's dbv0.0.38 to 25.05's v0.0.43).

    Steps (nested under each job's ``steps``) are never counted. The exit code is
    mapped as reported, which is wrong for failed jobs up to v0.0.39 (see the
    module docstring): on 22.05 and 23.02 take exit codes from ``sacct -P``.

    Raises:
        Unavailable: the text is not such a document, or a value cannot be read.
    """
    records = []
    for index, job in enumerate(_load_jobs(text, _SACCT_JSON)):
        records.append(_sacct_json_record(job, f"{_SACCT_JSON} jobs[{index}]"))
    return records


def _sacct_json_record(job: Mapping[str, object], what: str) -> SlurmRecord:
    """One record from one ``jobs[]`` object.

    Raises:
        Unavailable: a value cannot be read.
    """
    state, raw_state = _map_state_value(_at(job, "state/current"), f"{what} state/current")
    exit_code, signal = _json_exit(job.get("exit_code"), f"{what} exit_code")
    comment = job.get("comment")
    energy = _json_energy(_at(job, "tres/allocated"), f"{what} tres/allocated")
    node_list = _node_list(_text(job.get("nodes"), f"{what} nodes"))
    start = _epoch(_at(job, "time/start"), f"{what} time/start")
    return SlurmRecord(
        job_id=_json_job_id(job, what),
        cluster=_text(job.get("cluster"), f"{what} cluster") or None,
        name=_text(job.get("name"), f"{what} name"),
        comment=_text(_at(comment, "job") if isinstance(comment, Mapping) else comment, f"{what} comment"),
        state=state,
        raw_state=raw_state,
        reason=_reason(_text(_at(job, "state/reason"), f"{what} state/reason")),
        exit_code=exit_code,
        signal=signal,
        submit=_epoch(_at(job, "time/submission"), f"{what} time/submission"),
        start=start if node_list else None,
        end=_epoch(_at(job, "time/end"), f"{what} time/end"),
        elapsed_s=_number(_at(job, "time/elapsed"), f"{what} time/elapsed") or 0,
        alloc_gpus=_json_tres_gpus(_at(job, "tres/allocated"), f"{what} tres/allocated"),
        req_gpus=_json_tres_gpus(_at(job, "tres/requested"), f"{what} tres/requested"),
        nodes=_number(job.get("allocation_nodes"), f"{what} allocation_nodes") or 0,
        node_list=node_list,
        energy_j=energy,
    )


def _json_energy(tres: object, what: str) -> float | None:
    """Joules from the allocation's ``energy`` TRES; None when absent or not positive.

    Raises:
        Unavailable: the count is not a number.
    """
    if not isinstance(tres, list):
        return None
    for item in tres:
        if isinstance(item, Mapping) and item.get("type") == "energy":
            joules = _number(item.get("count"), f"{what} energy")
            return float(joules) if joules and joules > 0 else None
    return None


# ---------------------------------------------------------------------- squeue --json

_SQUEUE_JSON = "squeue --json"


def parse_squeue_json(text: str) -> list[QueueEntry]:
    """Jobs from ``squeue --json`` (22.05's v0.0.38 to 25.05's v0.0.43).

    22.05 ignores ``-j``/``-t`` here and lists finished jobs too: filter the result.
    ``gpus`` is the whole job's: the allocation, else the request, else the
    ``tres_per_*`` requests, else ``gres_detail``.

    Raises:
        Unavailable: the text is not such a document, or a value cannot be read.
    """
    entries = []
    for index, job in enumerate(_load_jobs(text, _SQUEUE_JSON)):
        entries.append(_squeue_json_entry(job, f"{_SQUEUE_JSON} jobs[{index}]"))
    return entries


def _squeue_json_entry(job: Mapping[str, object], what: str) -> QueueEntry:
    """One entry from one ``jobs[]`` object.

    Raises:
        Unavailable: a value cannot be read.
    """
    state, raw_state = _map_state_value(job.get("job_state"), f"{what} job_state")
    start = _epoch(job.get("start_time"), f"{what} start_time")
    job_id = _number(job.get("job_id"), f"{what} job_id")
    if job_id is None:
        raise Unavailable(f"{what}: job without a job_id: {str(job)[:200]!r}")
    return QueueEntry(
        job_id=str(job_id),
        name=_text(job.get("name"), f"{what} name"),
        comment=_text(job.get("comment"), f"{what} comment"),
        state=state,
        raw_state=raw_state,
        reason=_reason(_text(job.get("state_reason"), f"{what} state_reason")),
        start=_started(state, _node_list(_text(job.get("nodes"), f"{what} nodes")), start),
        gpus=_squeue_json_gpus(job, what),
        cluster=_text(job.get("cluster"), f"{what} cluster") or None,
    )


def _squeue_json_gpus(job: Mapping[str, object], what: str) -> int:
    """The job's GPUs, from the first source that names any.

    Raises:
        Unavailable: a source cannot be read.
    """
    return next((gpus for gpus in _squeue_json_gpu_sources(job, what) if gpus), 0)


def _squeue_json_gpu_sources(job: Mapping[str, object], what: str) -> Iterator[int]:
    """GPU counts by source, best first, computed lazily.

    Raises:
        Unavailable: a source cannot be read.
    """
    yield parse_tres_gpus(_text(job.get("tres_alloc_str"), f"{what} tres_alloc_str"))
    yield parse_tres_gpus(_text(job.get("tres_req_str"), f"{what} tres_req_str"))
    yield _gres_spec_gpus(_text(job.get("tres_per_job"), what), f"{what} tres_per_job")
    nodes = _number(job.get("node_count"), f"{what} node_count") or 1
    yield nodes * _gres_spec_gpus(_text(job.get("tres_per_node"), what), f"{what} tres_per_node")
    tasks = _number(job.get("tasks"), f"{what} tasks") or 1
    yield tasks * _gres_spec_gpus(_text(job.get("tres_per_task"), what), f"{what} tres_per_task")
    detail = job.get("gres_detail")  # one entry per allocated node
    details = detail if isinstance(detail, list) else []
    yield sum(_gres_spec_gpus(str(d), f"{what} gres_detail") for d in details)


# ------------------------------------------------------------------------- squeue -o

_SQUEUE_O = "squeue -o"
_SQUEUE_FORMATS = {SQUEUE_FORMAT: ("-o", 9), SQUEUE_FORMAT_LONG: ("-O", 10)}


def parse_squeue_format(text: str, fmt: str = SQUEUE_FORMAT) -> list[QueueEntry]:
    """Jobs from ``squeue -h -o SQUEUE_FORMAT`` or ``squeue -h -O SQUEUE_FORMAT_LONG``.

    Pass the format used. With :data:`SQUEUE_FORMAT`, ``gpus`` is TRES-per-node
    times nodes, so 0 for ``--gpus=N`` jobs (squeue prints ``N/A``); with
    :data:`SQUEUE_FORMAT_LONG` it is the whole job's. ``CLUSTER: name`` lines
    (``squeue -M``) set the cluster of the lines that follow; a header is skipped.

    Raises:
        Unavailable: an unknown ``fmt``, a line with too few fields, or a value that
            cannot be read.

    >>> [e] = parse_squeue_format("19|held|PENDING|JobHeldUser|N/A|1|N/A||(null)")
    >>> e.job_id, e.state.value, e.reason, e.start, e.gpus, e.comment
    ('19', 'pending', 'JobHeldUser', None, 0, '')
    """
    if fmt not in _SQUEUE_FORMATS:
        raise Unavailable(f"{_SQUEUE_O}: unknown format {fmt!r}; use SQUEUE_FORMAT or SQUEUE_FORMAT_LONG")
    flag, width = _SQUEUE_FORMATS[fmt]
    cluster: str | None = None
    entries: list[QueueEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("CLUSTER: "):
            cluster = line.removeprefix("CLUSTER: ").strip() or None
            continue
        what = f"squeue {flag} line {number}"
        parts = _split_fields(line, width, width - 1, what)
        if parts[0].strip().upper() == "JOBID":
            continue
        entries.append(_squeue_format_entry(parts, flag == "-O", cluster, what))
    return entries


def _squeue_format_entry(parts: Sequence[str], long: bool, cluster: str | None, what: str) -> QueueEntry:
    """One entry from a split ``squeue -o``/``-O`` line.

    Raises:
        Unavailable: a value cannot be read.
    """
    job_id, name, raw_state, reason, start_text, nodes_text, gpu_text = (p.strip() for p in parts[:7])
    state = map_state(raw_state)
    nodes = _count(nodes_text or "0", f"{what} nodes")
    if long:
        gpus = _tres_gpus(gpu_text, f"{what} tres-alloc")
        cluster = parts[7].strip() or cluster
    else:
        per_node = 0 if gpu_text in ("N/A", "(null)") else _gres_spec_gpus(gpu_text, f"{what} %b")
        gpus = per_node * max(nodes, 1)
    comment = parts[-1]
    start = _parse_time(start_text, f"{what} start")
    node_list = _node_list(parts[-2])
    return QueueEntry(
        job_id=job_id,
        name=name,
        comment="" if comment == _COMMENT_NULL else comment,
        state=state,
        raw_state=raw_state,
        reason=_reason(reason),
        start=_started(state, node_list, start),
        gpus=gpus,
        cluster=cluster,
    )


# ------------------------------------------------------------------ sbatch --parsable

_SBATCH_RE = re.compile(r"(\d+)(?:;([^;\s]+))?")


def parse_sbatch_parsable(text: str) -> str:
    """The job id from ``sbatch --parsable`` stdout: ``123`` or ``123;cluster``.

    Raises:
        Unavailable: the output is anything else (quoted in the message).

    >>> parse_sbatch_parsable("14;isambard\\n"), parse_sbatch_parsable("100014")
    ('14', '100014')
    """
    match = _SBATCH_RE.fullmatch(text.strip())
    if match is None:
        raise Unavailable(f"sbatch --parsable: expected 'JOBID' or 'JOBID;CLUSTER', got {text[:200]!r}")
    return match.group(1)
