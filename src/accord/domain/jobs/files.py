"""Files that travel with a job: the inputs a person uploads to the hub before submitting
(``inputs``: ``NAME=sha256:HEX``), fetched by the site's agent into the job's directory and
checked before the job starts; and the outputs the job declares (``outputs``: paths or
patterns in its directory), uploaded by the agent when the job ends. The bounds are here,
once (``docs/security.md``, "Limits").
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from accord.domain.errors import InvalidInput, Problem

FILE_BYTES = 64 * 1024 * 1024  # one input or output file
JOB_OUTPUT_FILES = 100  # output files of one job
JOB_OUTPUT_BYTES = 256 * 1024 * 1024  # all output files of one job together


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input of a job: its name in the job's directory and the SHA-256 of its bytes."""

    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One output file of a job, as the hub holds it."""

    site: str
    ref: str
    job_id: str
    name: str
    sha256: str
    size: int
    received_at: datetime | None = None


def input_files(inputs: tuple[str, ...]) -> tuple[InputFile, ...]:
    """The inputs of a spec (already validated as ``NAME=sha256:HEX``)."""
    out = []
    for item in inputs:
        name, _, digest = item.partition("=")
        out.append(InputFile(name, digest.removeprefix("sha256:")))
    return tuple(out)


def declared(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether an output file's path is one the job declared (a path or a pattern)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_output_name(name: str, patterns: tuple[str, ...]) -> None:
    """That an agent may send this output of a job.

    Raises:
        InvalidInput: not a relative path inside the job's directory, or not declared.
    """
    parts = name.split("/")
    if not name or name.startswith("/") or ".." in parts or "" in parts or len(name) > 200:
        raise InvalidInput(
            [
                Problem(
                    "name",
                    "is not a relative path inside the job's directory",
                    name[:80],
                    "e.g. results.json or logs/run.json (no '..', at most 200 characters)",
                )
            ]
        )
    if not declared(name, patterns):
        raise InvalidInput(
            [
                Problem(
                    "name",
                    "is not an output the job declared",
                    name[:80],
                    ", ".join(patterns) or "the job declared no outputs",
                )
            ]
        )
