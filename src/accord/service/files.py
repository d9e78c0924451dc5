"""Files that travel with jobs (``docs/design/site-agent.md``, "Files"): people upload a job's
inputs before submitting; a site's agent fetches only the inputs of its own site's jobs and
uploads the outputs those jobs declared; people read the outputs of the jobs they may read.
The hub needs no view of any site's filesystem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.jobs.files import (
    FILE_BYTES,
    JOB_OUTPUT_BYTES,
    JOB_OUTPUT_FILES,
    OutputFile,
    check_output_name,
    input_files,
)
from accord.ports import Clock, FileStore


class FileService:
    """Inputs in, outputs home."""

    def __init__(self, store: FileStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def upload(self, user: str, data: bytes) -> dict[str, Any]:
        """Keep an input file; its SHA-256 and size (what ``inputs`` names it by).

        Raises:
            InvalidInput: empty, or over :data:`FILE_BYTES`.
        """
        if not data or len(data) > FILE_BYTES:
            raise InvalidInput(
                [
                    Problem(
                        "body",
                        "is empty" if not data else "is too large",
                        f"{len(data):,} bytes",
                        f"1 to {FILE_BYTES:,} bytes",
                    )
                ]
            )
        return {"sha256": self.store.put(data, user, self.clock.now()), "size": len(data)}

    def check_inputs(self, inputs: object) -> None:
        """That every input a submission names was uploaded (its form is the parser's to check).

        Raises:
            InvalidInput: naming each input whose file the hub does not hold.
        """
        if not isinstance(inputs, list) or not all(isinstance(x, str) and "=sha256:" in x for x in inputs):
            return
        wanted = {f.sha256: f.name for f in input_files(tuple(inputs))}
        missing = sorted(set(wanted) - self.store.present(list(wanted)))
        if missing:
            raise InvalidInput(
                [
                    Problem(
                        "inputs",
                        "names a file not uploaded to the hub",
                        f"{wanted[m]}=sha256:{m[:12]}…",
                        "upload it first: POST /api/v1/files (accord submit --input FILE does both)",
                    )
                    for m in missing
                ]
            )

    def _own_job(self, site: str, ref: str) -> dict[str, Any]:
        found = self.store.order_job(ref)
        if found is None:
            raise NotFound(f"job reference {ref!r} was never sent to site {site!r}")
        owner, job = found
        if owner != site:
            raise Forbidden(
                f"job reference {ref!r} belongs to another site; agent of {site!r} may not touch it"
            )
        return job

    def agent_input(self, site: str, ref: str, sha: str) -> bytes:
        """An input of one of the site's jobs.

        Raises:
            NotFound: no such job here, or the file is not held. Forbidden: another site's
                job, or a file the job does not name.
        """
        spec = self._own_job(site, ref).get("spec") or {}
        if sha not in {f.sha256 for f in input_files(tuple(spec.get("inputs", ())))}:
            raise Forbidden(f"job {ref} names no input {sha[:12]}…")
        data = self.store.get(sha)
        if data is None:
            raise NotFound(f"input {sha[:12]}… is not held at the hub")
        return data

    def agent_output(self, site: str, ref: str, name: str, sha: str, data: bytes) -> bool:
        """Keep an output file of one of the site's jobs (again: no change); whether new.

        Raises:
            NotFound/Forbidden: not this site's job. InvalidInput: a name the job did not
                declare, a file over :data:`FILE_BYTES`, or bytes whose SHA-256 is not ``sha``.
            Conflict: another file of that name, or over the job's limits.
        """
        job = self._own_job(site, ref)
        check_output_name(name, tuple((job.get("spec") or {}).get("outputs", ())))
        if len(data) > FILE_BYTES:
            raise InvalidInput(
                [Problem("body", "is too large", f"{len(data):,} bytes", f"at most {FILE_BYTES:,}")]
            )
        if hashlib.sha256(data).hexdigest() != sha:
            raise InvalidInput(
                [Problem("sha256", "does not match the bytes sent", sha[:16], "their SHA-256")]
            )
        o = OutputFile(site, ref, str(job.get("job_id", "")), name, sha, len(data))
        return self.store.add_output(o, data, (JOB_OUTPUT_FILES, JOB_OUTPUT_BYTES), self.clock.now())

    def outputs(self, job_id: str) -> list[OutputFile]:
        """The job's output files at the hub."""
        return self.store.outputs(job_id)

    def output(self, job_id: str, name: str) -> tuple[OutputFile, bytes]:
        """One output file of the job and its bytes.

        Raises:
            NotFound: the job has no such output at the hub.
        """
        found = next((o for o in self.store.outputs(job_id) if o.name == name), None)
        data = None if found is None else self.store.get(found.sha256)
        if found is None or data is None:
            raise NotFound(f"job {job_id} has no output {name!r} at the hub")
        return found, data


def names(files: Iterable[OutputFile]) -> list[dict[str, Any]]:
    """Output files as the API lists them."""
    return [
        {
            "name": o.name,
            "sha256": o.sha256,
            "size": o.size,
            "received_at": o.received_at.isoformat() if o.received_at else None,
        }
        for o in files
    ]
