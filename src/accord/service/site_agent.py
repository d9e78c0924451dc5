"""The site agent: dials out to the hub, takes its site's orders, runs them with the site's
own scheduler, and reports back, signing the usage it reports (``docs/design/site-agent.md``).

One :meth:`SiteAgent.step` is one round: a heartbeat when due (a full resynchronisation at
start and every ``resync_s``), one poll of the scheduler for every held job (a job that ended
has its output sent first), then one exchange with the hub (the acknowledgements and reports
due, and a short long poll for orders), then submissions and cancels, then the output of the
jobs still running. Every step reads its work from the agent's own
state, so a crash anywhere loses nothing: an order is acknowledged only once kept, a
submission is written ahead and looked up after a crash, a report is resent until the hub
takes it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from accord.domain.agent import attest
from accord.domain.agent.protocol import (
    LOG_CHUNK_BYTES,
    LOG_JOB_BYTES,
    MAX_REPORTS,
    Ack,
    HeldJob,
    LogChunk,
    Order,
    Report,
    Stream,
)
from accord.domain.errors import (
    AccordError,
    Busy,
    Conflict,
    Forbidden,
    InDoubt,
    InvalidInput,
    Problem,
    Unavailable,
)
from accord.domain.jobs import codec
from accord.domain.jobs.files import input_files
from accord.domain.jobs.model import Job, Placement, new_job
from accord.domain.jobs.site import RemoteState, RemoteStatus
from accord.ports import AgentState, Clock, HubLink, JobDirectory, SiteBackend

log = logging.getLogger("accord.agent")


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """How often the agent does what: heartbeat, resynchronise, and wait for orders."""

    heartbeat_s: float = 10.0
    resync_s: float = 3600.0
    wait_s: float = 2.0
    cluster: str = ""


def rebuild(doc: Mapping[str, Any]) -> Job:
    """The job a dispatch order describes (as the site's backend needs it).

    Raises:
        KeyError, ValueError: the order's job document is malformed.
    """
    submitted = codec.parse_iso(doc.get("submitted_at"))
    assert submitted is not None
    job = new_job(str(doc["job_id"]), codec.decode_spec(dict(doc["spec"])), submitted)
    return replace(
        job,
        owner=str(doc.get("owner", "")),
        placement=Placement(str(doc["site"]), str(doc["pool"]), doc.get("agreement")),
    )


class SiteAgent:
    """One site's agent over its scheduler (``backend``), its hub and its own state."""

    def __init__(
        self,
        site: str,
        backend: SiteBackend,
        hub: HubLink,
        state: AgentState,
        clock: Clock,
        private_key: bytes,
        settings: AgentSettings = AgentSettings(),
        monotonic: Callable[[], float] = time.monotonic,
        files: JobDirectory | None = None,
        labels: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self.site = site
        self.files = files
        self.labels = labels  # site enforcement: a job's Slurm account and local user, by its local id
        self.backend = backend
        self.hub = hub
        self.state = state
        self.clock = clock
        self.key = private_key
        self.settings = settings
        self.monotonic = monotonic
        self._beat_at = float("-inf")
        self._synced_at = float("-inf")
        self._separate_until = float("-inf")  # the hub takes no exchanges: separate requests till then
        self._refused = 0  # reports the hub refused, counted (to tell a refused report from a refused route)

    # ------------------------------------------------------------ one round
    def step(self) -> None:
        """One round. Raises Unavailable: the hub was not reached (nothing is lost)."""
        self._heartbeat()
        for order in self.state.take(self._exchange(self._reports(self.state.held())), self.clock.now()):
            log.info("took order %s", order.id)
        held = self.state.held()   # without the jobs just reported ended: their output went first
        for job in held:            # orders are kept (agent.db) before anything is carried out;
            self._carry_out(job)    # the next exchange acknowledges them, Slurm ids and all
        self._send_logs([j for j in held if j.local_id])

    def _heartbeat(self) -> None:
        now = self.monotonic()
        resync = now - self._synced_at >= self.settings.resync_s
        if not resync and now - self._beat_at < self.settings.heartbeat_s:
            return
        try:
            loads = dict(self.backend.loads())
        except Unavailable as exc:
            log.warning("scheduler unavailable for loads: %s", exc)
            loads = {}
        held = [j.ref for j in self.state.held()] if resync else None
        answer = self.hub.heartbeat(loads, held)
        self._beat_at = now
        if resync:
            self._synced_at = now
            for ref in answer.lost:
                log.warning("the hub counts job %s lost: this agent did not hold it", ref)

    def _exchange(self, reports: list[Report]) -> list[Order]:
        """Send the acknowledgements and reports due, and take the orders: one request (more
        only past :data:`MAX_REPORTS` of either), the last a long poll. If the hub refuses
        one, its parts go separately (:meth:`_separately`).

        Raises:
            Unavailable: the hub was not reached (what was not taken is sent again).
        """
        acks = [Ack(order, local) for order, local in self.state.unacked()]
        if self.monotonic() < self._separate_until:
            return self._separately(acks, reports)
        rounds = max(1, -(-max(len(acks), len(reports)) // MAX_REPORTS))
        orders: list[Order] = []
        for i in range(rounds):
            part = slice(i * MAX_REPORTS, (i + 1) * MAX_REPORTS)
            a, r = acks[part], reports[part]
            wait = self.settings.wait_s if i == rounds - 1 else 0.0
            try:
                orders = self.hub.exchange(a, r, wait)  # the last answer has every order not yet taken
            except Unavailable:
                raise
            except AccordError as exc:
                log.warning("the hub refused an exchange (%s); sending its parts separately", exc)
                return self._after_refusal(acks[i * MAX_REPORTS :], reports[i * MAX_REPORTS :])
            self._sent(a, r)
        return orders

    def _after_refusal(self, acks: list[Ack], reports: list[Report]) -> list[Order]:
        before = self._refused
        orders = self._separately(acks, reports)
        if self._refused == before:  # every part was taken: the hub refused the exchange itself
            log.warning("the hub takes no exchanges (an older hub?): separate requests until the next resync")
            self._separate_until = self.monotonic() + self.settings.resync_s
        return orders

    def _separately(self, acks: list[Ack], reports: list[Report]) -> list[Order]:
        """Acknowledge, report, and fetch orders with the separate requests; a batch of
        reports the hub refuses goes again report by report, so one bad report holds up no
        other report and no order (a refused one is logged and tried again next round)."""
        for part in _batches(acks):
            self.hub.ack(part)
            self._sent(part, [])
        for batch in _batches(reports):
            try:
                self.hub.report(batch)
                self._sent([], batch)
            except Unavailable:
                raise
            except AccordError:
                for r in batch:
                    self._report_alone(r)
        return self.hub.orders(self.settings.wait_s)

    def _report_alone(self, r: Report) -> None:
        try:
            self.hub.report([r])
        except Unavailable:
            raise
        except AccordError as exc:
            self._refused += 1
            log.error("the hub refused the report of %s as %s: %s", r.ref, r.state.value, exc)
            return
        self._sent([], [r])

    def _sent(self, acks: list[Ack], reports: list[Report]) -> None:
        self.state.acked([x.order for x in acks])
        for r in reports:
            self.state.reported(r.ref, r.state)

    # ------------------------------------------------------------ orders into the scheduler
    def _carry_out(self, job: HeldJob) -> None:
        if job.cancel:
            self._cancel(job)
        elif job.local_id is None:
            self._submit(job)

    def _submit(self, held: HeldJob) -> None:
        try:
            job = rebuild(held.job)
        except (KeyError, ValueError, TypeError, AssertionError, AccordError) as exc:
            self._end_unrun(held, RemoteState.FAILED, f"the order's job could not be read: {exc}")
            return
        try:
            self._stage_inputs(held, job)
        except (Unavailable, OSError) as exc:
            self.state.note(held.ref, f"waiting for its inputs: {exc}")
            return
        except AccordError as exc:
            self._end_unrun(held, RemoteState.FAILED, f"its inputs could not be had: {exc}")
            return
        try:
            found = self.backend.look_up(job) if held.submitting else None
            if found is None:
                self.state.submitting(held.ref)
                found = self.backend.submit(job)
        except (Busy, Unavailable, InDoubt) as exc:
            self.state.note(held.ref, f"waiting at the site: {exc}")
            return
        except Conflict as exc:
            self._end_unrun(held, RemoteState.FAILED, f"the site refused the job: {exc}")
            return
        self.state.submitted(held.ref, found.backend_ref)
        log.info("job %s submitted as %s", held.ref, found.backend_ref)

    def _stage_inputs(self, held: HeldJob, job: Job) -> None:
        """Fetch the job's inputs into its directory, each checked against its SHA-256.

        Raises:
            Unavailable: the hub was not reached. OSError: the directory could not be written.
            AccordError: the hub refused, a file arrived other than named, or no directory here.
        """
        wanted = input_files(job.spec.inputs)
        if wanted and self.files is None:
            raise InvalidInput([Problem("inputs", "this agent's backend takes no input files")])
        for f in wanted:
            assert self.files is not None
            if self.files.has_input(job, f.name, f.sha256):
                continue
            data = self.hub.input(held.ref, f.sha256)
            if hashlib.sha256(data).hexdigest() != f.sha256:
                raise InvalidInput(
                    [Problem("inputs", "arrived with other content than named", f.name, f"sha256:{f.sha256}")]
                )
            self.files.put_input(job, f.name, data)

    def _send_outputs(self, held: HeldJob) -> str:
        """Upload the job's declared outputs; what was left out (for its final report)."""
        try:
            job = rebuild(held.job)
        except (KeyError, ValueError, TypeError, AssertionError, AccordError):
            return ""
        if not job.spec.outputs or self.files is None:
            return ""
        send, skipped = self.files.outputs(job, job.spec.outputs)
        for name, data in send:
            try:
                self.hub.output(held.ref, name, hashlib.sha256(data).hexdigest(), data)
            except (InvalidInput, Conflict, Forbidden) as exc:
                skipped.append(f"{name}: refused by the hub: {exc}")
        note = f"outputs: {len(send) - len([s for s in skipped if 'refused' in s])} sent"
        return note + (f"; left out: {'; '.join(skipped)}" if skipped else "")

    def _cancel(self, held: HeldJob) -> None:
        if held.local_id is None and not held.submitting:
            self._end_unrun(held, RemoteState.CANCELLED, "cancelled before it was submitted")
            return
        if held.local_id is not None and held.reported is not RemoteState.CANCELLED:
            try:
                self.backend.cancel(held.local_id)
            except Unavailable as exc:
                log.warning("cancel of %s not sent yet: %s", held.ref, exc)

    def _end_unrun(self, held: HeldJob, state: RemoteState, reason: str) -> None:
        self.hub.report([Report(held.ref, state, reason=reason)])
        self.state.reported(held.ref, state)

    # ------------------------------------------------------------ reports
    def _reports(self, held: list[HeldJob]) -> list[Report]:
        """What the hub should hear of the held jobs, from one poll of the scheduler; a job
        that ended has its output sent home first and what was left out said in its report."""
        submitted = [j for j in held if j.local_id]
        statuses: Mapping[str, RemoteStatus] = {}
        if submitted:
            try:
                statuses = self.backend.poll([j.local_id for j in submitted if j.local_id])
            except Unavailable as exc:
                log.warning("scheduler unavailable for a poll: %s", exc)
                return []
        reports = [self._news(j, statuses.get(j.local_id or "")) for j in held]
        fresh = [r for r in reports if r is not None]
        ending = {r.ref for r in fresh if r.state.is_final}
        self._send_logs([j for j in submitted if j.ref in ending])  # output home before the end
        notes = {j.ref: self._send_outputs(j) for j in submitted if j.ref in ending}
        return [
            replace(r, reason=f"{r.reason}; {notes[r.ref]}"[:500]) if notes.get(r.ref) else r for r in fresh
        ]

    def _news(self, job: HeldJob, status: RemoteStatus | None) -> Report | None:
        """The report to make of the job, if it has news for the hub."""
        if job.local_id is None:
            if job.reported is None:
                return Report(job.ref, RemoteState.PENDING, reason=job.note or "queued at the site's agent")
            return None
        if status is None:
            return None
        state = RemoteState.FAILED if status.state is RemoteState.LOST else status.state
        return None if state is job.reported else self._report_of(job, status)

    def _report_of(self, job: HeldJob, status: RemoteStatus) -> Report:
        state = RemoteState.FAILED if status.state is RemoteState.LOST else status.state
        o = status.outcome
        base = Report(job.ref, state, job.local_id or "", status.started_at, reason=status.reason)
        if not state.is_final or o is None:
            return base
        report = replace(
            base,
            started_at=o.started_at or status.started_at,
            ended_at=o.ended_at,
            exit_code=o.exit_code,
            gpus=o.gpus,
            gpu_seconds=o.gpu_seconds,
            energy_j=o.energy_j,
            reason=o.reason or status.reason,
        )
        if report.started_at is None or report.ended_at is None:
            return replace(report, started_at=None, ended_at=None, gpu_seconds=0.0)
        usage = attest.Usage(
            self.site,
            job.ref,
            job.job_id,
            job.local_id or "",
            self.settings.cluster,
            state.value,
            report.started_at,
            report.ended_at,
            report.gpus,
            report.gpu_seconds,
            report.exit_code,
            report.energy_j,
            *self._labels(job.local_id or ""),
        )
        return replace(report, usage=attest.sign(usage, self.key))

    def _labels(self, local_id: str) -> tuple[str, str]:
        """The job's Slurm account and local user for its signed usage (empty if unknown)."""
        if self.labels is None or not local_id:
            return "", ""
        try:
            return self.labels(local_id)
        except Unavailable as exc:
            log.warning("account and user of %s not read: %s", local_id, exc)
            return "", ""

    # ------------------------------------------------------------ output
    def _send_logs(self, jobs: list[HeldJob]) -> None:
        for held in jobs:
            try:
                logs = self.backend.logs(held.local_id or "", rebuild(held.job))
            except (Unavailable, KeyError, ValueError, OSError) as exc:
                log.info("no output of %s yet: %s", held.ref, exc)
                continue
            for stream, text in ((Stream.STDOUT, logs.stdout), (Stream.STDERR, logs.stderr)):
                self._send_stream(held.ref, stream, text.encode("utf-8", errors="replace"))

    def _send_stream(self, ref: str, stream: Stream, data: bytes) -> None:
        sent, cut = self.state.log_sent(ref, stream)
        while not cut and sent < len(data):
            if sent >= LOG_JOB_BYTES:
                self.hub.log(LogChunk(ref, stream, sent, b"", truncated=True))
                cut = True
                break
            piece = data[sent : min(len(data), sent + LOG_CHUNK_BYTES, LOG_JOB_BYTES)]
            try:
                sent = self.hub.log(LogChunk(ref, stream, sent, piece))
            except Conflict as exc:
                log.warning("hub refused output of %s at %d: %s", ref, sent, exc)
                break
        self.state.set_log_sent(ref, stream, sent, cut)


def _batches(items: list[Any]) -> list[list[Any]]:
    """``items`` in requests of at most :data:`MAX_REPORTS`."""
    return [items[i : i + MAX_REPORTS] for i in range(0, len(items), MAX_REPORTS)]
