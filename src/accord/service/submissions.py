"""One path for a submission: every job a person submits enters Accord here.

:meth:`Submissions.submit` (and :meth:`~Submissions.submit_async`, the API's) takes the
caller and the job document as it came (the API's JSON body, the document the campaigns
build) and

1. checks the token may submit (``jobs:write``);
2. parses the document once (:func:`accord.domain.jobs.spec.parse_job`: every field read by
   its declaration in :mod:`accord.domain.jobs.fields`, every problem listed);
3. lets the gate shape the parsed spec (:meth:`accord.service.gate.Gate.shape`: a project
   the caller belongs to, its partner and theme, the caller's sector, denied-party and
   residency rules);
4. has the lifecycle machine make the job (:meth:`accord.service.broker.Broker.new_submission`:
   its first event, and one note per rule applied);
5. stores it through the group committer (:class:`accord.service.group_commit.GroupCommitter`),
   which writes concurrent submissions in one transaction; a retried idempotency key gives
   back the job it made.

:meth:`Submissions.preview` does steps 1 to 4 and stores nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from accord.domain.access.rules import Principal, TokenScope, token_scope
from accord.domain.errors import Unavailable
from accord.domain.jobs.model import Job
from accord.domain.jobs.spec import parse_job
from accord.service.broker import Broker
from accord.service.gate import Gate
from accord.service.group_commit import GroupCommitter

COMMIT_WAIT_S = 60.0   # how long a blocking submission waits for the group committer


@dataclass(frozen=True, slots=True)
class Prepared:
    """A submission the gate and the machine accepted, not stored yet: the new job, its
    spec hash (to tell a retried submission from a different one) and the notes of the rules
    the gate applied."""

    job: Job
    spec_hash: str
    notes: tuple[str, ...]


class Submissions:
    """The one service entry for submitting a job (the API, the campaigns)."""

    def __init__(self, broker: Broker, gate: Gate, committer: GroupCommitter) -> None:
        self.broker = broker
        self.gate = gate
        self.committer = committer

    def prepare(self, p: Principal, document: Mapping[str, object],
                idempotency_key: str | None = None, request_id: str | None = None) -> Prepared:
        """Steps 1 to 4: the job ``p`` submits with ``document``, made and not stored. A
        ``request_id`` (the API's, already checked safe) names the job's first event's
        stimulus, ``submit.request.<id>``: the story tells which request made the job.

        Raises:
            Forbidden: the token lacks jobs:write; the gate refuses (not a member of the
                project, a denied party, rules that leave nowhere to run).
            InvalidInput: the document is wrong (a deadline already passed too), or the
                gate refuses its project, partner or residency (every problem listed).
        """
        if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
            refusal.require()
        parsed = parse_job(document, self.broker.federation, self.broker.clock.now())
        shaped = self.gate.shape(p, parsed)
        job, spec_hash = self.broker.new_submission(
            shaped.spec, p.user, idempotency_key, sector=shaped.sector, notes=shaped.notes,
            stimulus=f"submit.request.{request_id}" if request_id else None)
        return Prepared(job, spec_hash, shaped.notes)

    def queue(self, p: Principal, document: Mapping[str, object],
              idempotency_key: str | None = None, request_id: str | None = None
              ) -> tuple[Job, Future[Job]]:
        """The new job and the future of its storing by the group committer (which gives
        the stored job: the new one, or an earlier one with the same owner and key).

        Raises:
            Forbidden, InvalidInput: as :meth:`prepare` (nothing is queued). The future
                raises Conflict (the key was used for a different spec) or Unavailable.
        """
        new = self.prepare(p, document, idempotency_key, request_id)
        stored = self.committer.submit(new.job, new.spec_hash)
        stored.add_done_callback(lambda _: self.broker.nudge())   # place it now, not at the next tick
        return new.job, stored

    def submit(self, p: Principal, document: Mapping[str, object],
               idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Submit and wait until the job is stored: the stored job, and whether it was made
        now (False: an earlier submission with the same key).

        Raises:
            Forbidden, InvalidInput: as :meth:`prepare`.
            Conflict: the key was used for a different spec.
            Unavailable: the store failed, or did not answer in :data:`COMMIT_WAIT_S`.
        """
        new, stored = self.queue(p, document, idempotency_key)
        try:
            job = stored.result(timeout=COMMIT_WAIT_S)
        except FutureTimeout:
            raise Unavailable(f"the store did not take job {new.id} in {COMMIT_WAIT_S:g} s") from None
        return job, job.id == new.id

    async def submit_async(self, p: Principal, document: Mapping[str, object],
                           idempotency_key: str | None = None, request_id: str | None = None
                           ) -> tuple[Job, bool]:
        """As :meth:`submit`, awaiting the group commit instead of blocking (the API's
        route: concurrent requests share one transaction); ``request_id`` as :meth:`prepare`.

        Raises:
            Forbidden, InvalidInput: as :meth:`prepare`.
            Conflict: the key was used for a different spec.
            Unavailable: the store failed.
        """
        new, stored = self.queue(p, document, idempotency_key, request_id)
        job = await asyncio.wrap_future(stored)
        return job, job.id == new.id

    def preview(self, p: Principal, document: Mapping[str, object]) -> Prepared:
        """The job ``p`` would submit with ``document`` (:meth:`prepare`; nothing is stored).

        Raises:
            Forbidden, InvalidInput: as :meth:`prepare`.
        """
        return self.prepare(p, document)
