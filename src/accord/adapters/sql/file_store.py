"""Files that travel with jobs, in the SQL store (:class:`accord.ports.FileStore`): inputs a
person uploads before submitting, outputs a site's agent uploads when the job ends. Stored
once each by SHA-256 (so every replica of the hub sees them, and no site's filesystem is
needed); ``docs/design/site-agent.md``, "Files".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from accord.adapters.sql.schema import agent_orders, job_outputs, stored_files
from accord.adapters.sql.store import SqlStore
from accord.adapters.sql.upsert import insert_ignore
from accord.domain.agent.protocol import OrderKind, order_id
from accord.domain.errors import Conflict
from accord.domain.jobs.files import OutputFile


class SqlFiles:
    """The file tables of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def put(self, data: bytes, by: str, at: datetime) -> str:
        """Store ``data`` (once); its SHA-256 (hex)."""
        sha = hashlib.sha256(data).hexdigest()
        with self.store.transaction() as conn:
            _put(conn, sha, data, by, at)
        return sha

    def present(self, shas: Sequence[str]) -> set[str]:
        """Which of these digests are stored."""
        with self.store.transaction() as conn:
            found = conn.execute(select(stored_files.c.sha256).where(stored_files.c.sha256.in_(list(shas))))
            return set(found.scalars())

    def get(self, sha: str) -> bytes | None:
        """The file's bytes, if stored."""
        with self.store.transaction() as conn:
            data = conn.execute(select(stored_files.c.data).where(stored_files.c.sha256 == sha)).scalar()
        return None if data is None else bytes(data)

    def order_job(self, ref: str) -> tuple[str, dict[str, object]] | None:
        """The site and job document of the dispatch order for ``ref``, if any."""
        q = select(agent_orders.c.site, agent_orders.c.job).where(
            agent_orders.c.id == order_id(ref, OrderKind.DISPATCH)   # the primary key: no scan by ref
        )
        with self.store.transaction() as conn:
            row = conn.execute(q).first()
        return None if row is None else (str(row[0]), json.loads(row[1] or "{}"))

    def add_output(self, o: OutputFile, data: bytes, limits: tuple[int, int], at: datetime) -> bool:
        """Keep an output file of a job (again, the same: no change); whether it was new.

        Raises:
            Conflict: the job already has a different file of that name, or this one would
                take it over ``limits`` (files, bytes).
        """
        with self.store.transaction() as conn:
            old = conn.execute(
                select(job_outputs.c.sha256).where(job_outputs.c.ref == o.ref, job_outputs.c.name == o.name)
            ).scalar()
            if old is not None:
                if old != o.sha256:
                    raise Conflict(f"output {o.name!r} of job {o.ref} was already sent with other content")
                return False
            _within(conn, o, limits)
            _put(conn, o.sha256, data, f"site:{o.site}", at)
            conn.execute(
                job_outputs.insert(),
                [
                    {
                        "ref": o.ref,
                        "name": o.name,
                        "job_id": o.job_id,
                        "site": o.site,
                        "sha256": o.sha256,
                        "size": o.size,
                        "received_at": at,
                    }
                ],
            )
            return True

    def outputs(self, job_id: str) -> list[OutputFile]:
        """The job's output files at the hub, by name."""
        q = select(job_outputs).where(job_outputs.c.job_id == job_id).order_by(job_outputs.c.name)
        with self.store.transaction() as conn:
            return [
                OutputFile(
                    r["site"], r["ref"], r["job_id"], r["name"], r["sha256"], r["size"], r["received_at"]
                )
                for r in conn.execute(q).mappings()
            ]


def _within(conn: Connection, o: OutputFile, limits: tuple[int, int]) -> None:
    files, size = conn.execute(
        select(func.count(), func.coalesce(func.sum(job_outputs.c.size), 0)).where(job_outputs.c.ref == o.ref)
    ).one()
    most_files, most_bytes = limits
    if files + 1 > most_files or size + o.size > most_bytes:
        raise Conflict(
            f"job {o.ref}: output {o.name!r} would take it over {most_files} files or "
            f"{most_bytes:,} bytes (it has {files} files, {size:,} bytes)"
        )


def _put(conn: Connection, sha: str, data: bytes, by: str, at: datetime) -> None:
    insert_ignore(conn, stored_files, [{"sha256": sha, "size": len(data), "data": data, "created_at": at,
                                         "uploaded_by": by[:200]}], "sha256")
