"""Parsers for ``sacct`` (internal to :mod:`accord.adapters.slurm.parse`, which
re-exports the public names): :class:`SlurmRecord`, the fields :data:`SACCT_FIELDS` asked
of ``sacct -P``, :func:`parse_sacct_parsable` and :func:`parse_sacct_json`. The formats
and the Slurm quirks they absorb are described in :mod:`accord.adapters.slurm.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from accord.adapters.slurm.parse_values import (
    _at,
    _count,
    _epoch,
    _gpus_from_pairs,
    _load_jobs,
    _map_state_value,
    _node_list,
    _number,
    _parse_elapsed,
    _parse_energy,
    _parse_exit,
    _parse_time,
    _reason,
    _split_fields,
    _text,
    _tres_gpus,
    map_state,
)
from accord.domain.errors import Unavailable
from accord.domain.jobs.site import RemoteState


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



# ----------------------------------------------------------- JSON helpers (sacct only)


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
