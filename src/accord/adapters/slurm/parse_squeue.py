"""Parsers for ``squeue`` (internal to :mod:`accord.adapters.slurm.parse`, which
re-exports the public names): :class:`QueueEntry`, the formats :data:`SQUEUE_FORMAT` and
:data:`SQUEUE_FORMAT_LONG`, :func:`parse_squeue_json` and :func:`parse_squeue_format`. The
formats and the Slurm quirks they absorb are described in :mod:`accord.adapters.slurm.parse`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from accord.adapters.slurm.parse_values import (
    _COMMENT_NULL,
    _count,
    _epoch,
    _gres_spec_gpus,
    _load_jobs,
    _map_state_value,
    _node_list,
    _number,
    _parse_time,
    _reason,
    _split_fields,
    _started,
    _text,
    _tres_gpus,
    map_state,
    parse_tres_gpus,
)
from accord.domain.errors import Unavailable
from accord.domain.jobs.site import RemoteState


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



# For ``squeue -h -o``: id|name|state|reason|start|nodes|TRES-per-node|node list|comment.
SQUEUE_FORMAT = "%i|%j|%T|%r|%S|%D|%b|%N|%k"

# For ``squeue -h -O`` (``--Format``): the same, with the whole job's TRES (the
# request while pending) instead of TRES per node, plus the cluster.
SQUEUE_FORMAT_LONG = (
    "JobID:|,Name:|,State:|,Reason:|,StartTime:|,NumNodes:|,tres-alloc:|,Cluster:|,NodeList:|,Comment:"
)


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
