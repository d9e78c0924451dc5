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

The parsers live in sibling modules by what they parse; this module re-exports their
public names (import them from here) and parses ``sbatch`` itself:

* :mod:`accord.adapters.slurm.parse_sacct`: :class:`SlurmRecord`, :data:`SACCT_FIELDS`,
  :func:`parse_sacct_parsable`, :func:`parse_sacct_json`;
* :mod:`accord.adapters.slurm.parse_squeue`: :class:`QueueEntry`, :data:`SQUEUE_FORMAT`,
  :data:`SQUEUE_FORMAT_LONG`, :func:`parse_squeue_json`, :func:`parse_squeue_format`;
* :mod:`accord.adapters.slurm.parse_values`: what they share: :func:`map_state`,
  :func:`parse_tres_gpus`, value readers, line splitting, ``--json`` readers.
"""

from __future__ import annotations

import re

from accord.adapters.slurm.parse_sacct import (
    SACCT_FIELDS,
    SlurmRecord,
    parse_sacct_json,
    parse_sacct_parsable,
)
from accord.adapters.slurm.parse_squeue import (
    SQUEUE_FORMAT,
    SQUEUE_FORMAT_LONG,
    QueueEntry,
    parse_squeue_format,
    parse_squeue_json,
)
from accord.adapters.slurm.parse_values import map_state, parse_tres_gpus
from accord.domain.errors import Unavailable

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
