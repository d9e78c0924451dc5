"""What the Slurm parsers share (internal to :mod:`accord.adapters.slurm.parse`): job
states (:func:`map_state`), GPU counts in TRES and GRES strings (:func:`parse_tres_gpus`),
the readers of single values (times, exit codes, elapsed times, energy, reasons, node
lists), the splitting of ``|``-separated lines and the readers of ``--json`` documents.

Pure functions, no I/O; every failure raises :class:`~accord.domain.errors.Unavailable`
naming the command and quoting the bad value. :mod:`accord.adapters.slurm.parse`
re-exports the public names; import them from there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

from accord.domain.errors import Unavailable
from accord.domain.jobs.site import RemoteState

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


def _tres_gpus(tres: str, what: str) -> int:
    """:func:`parse_tres_gpus`, with ``what`` in the error message.

    Raises:
        Unavailable: the TRES string cannot be read.
    """
    try:
        return parse_tres_gpus(tres)
    except Unavailable as exc:
        raise Unavailable(f"{what}: {exc}") from exc



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
