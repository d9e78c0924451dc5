"""Campaigns: create them, run each (task, model) pair as an Accord job, collect and
summarise Inspect's logs, and hand out results by the campaign's policy.

Jobs go through the API's own path (:class:`~accord.service.submissions.Submissions`: one
parse, the gate, the lifecycle machine, the group committer), so placement, the allocation
and compliance gate, accounting and the ledger apply to them like to any job. Collection
(:meth:`CampaignService.collect`) keeps no state outside the database: it is run by the
dispatcher loop and before every status or results read, and storing a log twice stores it
once.

Errors: :class:`~accord.domain.errors.InvalidInput` (a bad document),
:class:`~accord.domain.errors.Forbidden` (not allowed; for a campaign the caller may
not see, the same words as for one that does not exist),
:class:`~accord.domain.errors.Conflict` (an id that is taken).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import accord
from accord.domain.access.audit import AuditRecord, Outcome
from accord.domain.access.rules import Principal, Role, TokenScope, token_scope
from accord.domain.campaigns.campaign import (
    LOG_DIR,
    Campaign,
    CollectedLog,
    Run,
    ScoreLine,
    TaskRef,
    can_approve_release,
    can_read_results,
    can_see_campaign,
    embargo_lifted,
    encode_campaign,
    interval,
    job_script,
    parse_campaign,
    readable_pairs,
    run_key,
)
from accord.domain.errors import Forbidden, InvalidInput, LeaseLost, NotFound, Problem
from accord.domain.jobs.fields import NAME_LENGTH
from accord.domain.jobs.model import Job
from accord.ports import CampaignStore, SiteBackend
from accord.service.access import AccessService
from accord.service.broker import Broker
from accord.service.files import FileService
from accord.service.submissions import Submissions

log = logging.getLogger("accord.campaigns")
TASKS_DIR = Path(accord.__file__).parent / "data" / "inspect_tasks"
MAX_LOG_BYTES = 50_000_000
JobDir = Callable[[Job], Path | None]


def builtin_tasks(tasks_dir: Path = TASKS_DIR) -> dict[str, str]:
    """The Inspect tasks shipped with Accord: file stem → its ``VERSION``."""
    out = {}
    for f in sorted(tasks_dir.glob("*.py")):
        m = re.search(r"^VERSION = (\d+)$", f.read_text(), re.MULTILINE)
        if m is not None:
            out[f.stem] = m.group(1)
    return out


def backend_job_dir(backends: Mapping[str, SiteBackend]) -> JobDir:
    """Where a job's working directory is, by the backends' convention (``root/<job id>``
    for the local and Slurm backends). Here sites share this machine's filesystem; a
    real site needs its job directories mounted or staged where Accord runs."""

    def find(job: Job) -> Path | None:
        backend = backends.get(job.placement.site) if job.placement else None
        root = getattr(backend, "root", None)
        return Path(root) / job.id if root is not None else None

    return find


@dataclass(frozen=True, slots=True)
class Summary:
    """What Accord reads from one Inspect log with Inspect's own reader."""

    task: str
    task_version: str
    model: str
    status: str
    samples: int
    completed: int
    scores: tuple[ScoreLine, ...]
    error: str | None = None


def summarise(data: bytes) -> Summary:
    """Summarise an Inspect log's bytes with ``inspect_ai.log.read_eval_log``.

    Raises:
        InvalidInput: the bytes are not an Inspect log.
    """
    from inspect_ai.log import read_eval_log

    with tempfile.TemporaryDirectory(prefix="accord-inspect-") as tmp:
        path = Path(tmp) / "log.json"
        path.write_bytes(data)
        try:
            ev = read_eval_log(str(path))
        except Exception as exc:   # Inspect's reader raises many kinds; map at the edge
            raise InvalidInput([Problem("log", f"is not an Inspect log: {type(exc).__name__}: {exc}"[:300])]
                               ) from exc
    lines: list[ScoreLine] = []
    for s in ev.results.scores if ev.results else []:
        err = s.metrics.get("stderr")
        stderr = float(err.value) if err is not None else None
        for name, m in s.metrics.items():
            if name == "stderr":
                continue
            low, high = interval(name, float(m.value), stderr)
            lines.append(ScoreLine(s.name, name, float(m.value), stderr, low, high))
    return Summary(ev.eval.task, str(ev.eval.task_version), ev.eval.model, str(ev.status),
                   ev.results.total_samples if ev.results else 0,
                   ev.results.completed_samples if ev.results else 0, tuple(lines),
                   ev.error.message if ev.error else None)


class CampaignService:
    """Campaigns over the broker, the submissions, access and the campaign store."""

    def __init__(self, broker: Broker, submissions: Submissions, access: AccessService,
                 store: CampaignStore, *, python: str = sys.executable, tasks_dir: Path = TASKS_DIR,
                 job_dir: JobDir | None = None, files: FileService | None = None) -> None:
        self.broker = broker
        self.files = files
        self.submissions = submissions
        self.access = access
        self.store = store
        self.python = python
        self.tasks_dir = tasks_dir
        self.job_dir = job_dir or backend_job_dir(broker.backends)

    # ------------------------------------------------------------ definitions
    def create(self, p: Principal, doc: Mapping[str, object]) -> Campaign:
        """Create a campaign charged to a project the caller belongs to.

        Raises:
            Forbidden: the token lacks jobs:write; not a member of the project (same words
                when it does not exist).
            InvalidInput: a bad document; the project's partner is not a partner of it.
            Conflict: the id is taken.
        """
        if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
            refusal.require()
        c = parse_campaign(doc, self.broker.federation, builtin_tasks(self.tasks_dir))
        project = self.access.store.project(c.project)
        if project is None or not (p.is_admin or p.user == project.pi or p.user in project.members):
            raise Forbidden(f"project {c.project} does not exist or you are not a member; "
                            "charge the campaign to a project you belong to")
        if project.partner not in c.partners:
            raise InvalidInput([Problem("partners", "must include the partner of the project it is "
                                        "charged to", ",".join(c.partners), project.partner)])
        now = self.access.clock.now()
        self.store.add_campaign(json.dumps(encode_campaign(c), sort_keys=True), c.id, p.user, now)
        return self._load(c.id)

    def _load(self, campaign_id: str) -> Campaign:
        """Raises NotFound."""
        found = self.store.campaign(campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        doc, by, at = found
        c = parse_campaign(json.loads(doc), self.broker.federation, _trust_versions(json.loads(doc)))
        return replace(c, created_by=by, created_at=at)

    def get(self, p: Principal, campaign_id: str, scope: TokenScope = TokenScope.JOBS_READ) -> Campaign:
        """A campaign the caller may see, with a token that has ``scope``.

        Raises:
            Forbidden: the token lacks ``scope`` (named, whatever the campaign); it does not
                exist or the caller may not see it (same words).
        """
        if (refusal := token_scope(p, scope)) is not None:
            refusal.require()
        hidden = f"campaign {campaign_id} does not exist or you may not see it"
        try:
            c = self._load(campaign_id)
        except NotFound:
            raise Forbidden(hidden) from None
        can_see_campaign(p, c, self._today(), self._members(c)).require(hidden)
        return c

    def visible(self, p: Principal) -> list[Campaign]:
        """The campaigns the caller may see, oldest first.

        Raises:
            Forbidden: the token lacks jobs:read.
        """
        if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
            refusal.require()
        out = []
        for cid in self.store.campaign_ids():
            c = self._load(cid)
            if can_see_campaign(p, c, self._today(), self._members(c)).allowed:
                out.append(c)
        return out

    def _members(self, c: Campaign) -> frozenset[str]:
        project = self.access.store.project(c.project)
        return frozenset() if project is None else frozenset({*project.members, project.pi})

    def _today(self) -> date:
        return self.access.clock.now().date()

    def released(self) -> list[tuple[str, tuple[str, ...], str]]:
        """Each campaign whose results are released today: its id, who to tell (its creator,
        its project's members) and the rule that released them (for notifications)."""
        out = []
        for cid in self.store.campaign_ids():
            c = self._load(cid)
            lifted = embargo_lifted(c, frozenset(a[0] for a in self.store.approvals(cid)), self._today())
            if lifted.allowed:
                out.append((cid, tuple(sorted({c.created_by, *self._members(c)} - {""})), lifted.rule))
        return out

    # ------------------------------------------------------------ running
    def submit(self, p: Principal, campaign_id: str) -> list[Run]:
        """Submit a job for every pair that has none yet, as the caller, through
        :meth:`Submissions.submit` (each pair's job keyed by the campaign's own idempotency
        key, so submitting again makes no second job).

        Raises:
            Forbidden: the campaign is not visible; the token lacks jobs:write; the gate
                refuses (not a member of the project, a denied party...).
            InvalidInput: the gate or the job parser refuse a job (every problem listed).
            Conflict: a pair's key names a job of a different spec.
            Unavailable: the store failed.
        """
        c = self.get(p, campaign_id)
        done = {(r.task, r.model) for r in self.store.runs(c.id)}
        task_files = {t.name: task_file(t, self.tasks_dir) for t in c.tasks}
        for i, (t, m) in enumerate(c.pairs()):
            if (t.name, m.name) in done:
                continue
            source = None if t.file else Path(task_files[t.name]).read_text()
            doc: dict[str, object] = {
                "name": f"campaign {c.id}: {t.name} on {m.name}"[:NAME_LENGTH], "gpus": c.gpus,
                "time_limit": c.time_limit_s, "project": c.project, "site": c.site_for(i),
                "script": job_script(c, t, m, self.python, task_files[t.name], source),
                "outputs": [f"{LOG_DIR}/*.json"]}   # an agent site sends them home
            job, _ = self.submissions.submit(p, doc, run_key(c.id, t.name, m.name))
            self.store.add_run(Run(c.id, t.name, m.name, job.id, p.user, self.access.clock.now()))
        return self.store.runs(c.id)

    # ------------------------------------------------------------ collection
    def collect(self, campaign_id: str | None = None) -> int:
        """Store the Inspect logs of every finished, uncollected pair; the number of logs
        newly stored. Never raises for one pair: a failure is logged and retried later.

        Raises:
            LeaseLost: the collection runs under a lease this replica no longer holds.
        """
        stored = 0
        for run in self.store.runs(campaign_id, uncollected=True):
            try:
                stored += self._collect(run)
            except LeaseLost:
                raise
            except Exception:   # one unreadable job must not stop the others
                log.exception("campaign %s: collecting %s × %s (job %s) failed; will retry",
                              run.campaign, run.task, run.model, run.job_id)
        return stored

    def _collect(self, run: Run) -> int:
        job = self.broker.store.get_job(run.job_id)
        if not job.state.is_final:
            return 0
        stored = 0
        now = self.access.clock.now()
        for name, data in self._logs_of(job):
            if len(data) > MAX_LOG_BYTES:
                log.warning("campaign %s: %s is over %d bytes; not stored", run.campaign, name, MAX_LOG_BYTES)
                continue
            try:
                summary = json.dumps(_summary_doc(summarise(data)), sort_keys=True)
            except InvalidInput as exc:   # kept, with why it says nothing: it will not change
                summary = json.dumps({"status": "unreadable", "error": str(exc), "scores": []})
            stored += self.store.add_log(CollectedLog(
                run.campaign, run.task, run.model, run.job_id, name, hashlib.sha256(data).hexdigest(),
                len(data), summary, now, data))
        self.store.mark_collected(run.campaign, run.task, run.model, now)
        return stored

    def _logs_of(self, job: Job) -> list[tuple[str, bytes]]:
        """The job's Inspect logs (file name, bytes): from the job's directory when the hub
        sees it (a site it drives itself), else as the site's agent sent them home."""
        where = self.job_dir(job)
        if where is not None:
            found = sorted((where / LOG_DIR).glob("*.json"))
            for f in (f for f in found if f.stat().st_size > MAX_LOG_BYTES):
                log.warning("job %s: %s is over %d bytes; not stored", job.id, f, MAX_LOG_BYTES)
            return [(f.name, f.read_bytes()) for f in found if f.stat().st_size <= MAX_LOG_BYTES]
        if self.files is None:
            return []
        return [(o.name.rpartition("/")[2], self.files.output(job.id, o.name)[1])
                for o in self.files.outputs(job.id) if o.name.startswith(f"{LOG_DIR}/")]

    # ------------------------------------------------------------ reading
    def status(self, p: Principal, campaign_id: str) -> dict[str, Any]:
        """Definition, each pair's job (state, site, agreement), collection, compute per
        partner and the embargo (no scores).

        Raises:
            Forbidden: the campaign is not visible.
        """
        c = self.get(p, campaign_id)
        self.collect(c.id)
        approvals = self.store.approvals(c.id)
        logs = self.store.logs(c.id)
        runs = []
        for r in self.store.runs(c.id):
            job = self.broker.store.get_job(r.job_id)
            runs.append({"task": r.task, "model": r.model, "job": r.job_id, "state": job.state.value,
                         "site": job.placement.site if job.placement else None,
                         "agreement": job.placement.agreement if job.placement else None,
                         "collected_at": r.collected_at.isoformat() if r.collected_at else None,
                         "logs": sum(1 for x in logs if x.job_id == r.job_id)})
        lifted = embargo_lifted(c, frozenset(a[0] for a in approvals), self._today())
        return {"campaign": self.doc(c), "runs": runs, "pairs": len(c.pairs()),
                "compute": self.compute(c),
                "embargo": {"kind": c.policy.embargo.kind.value, "lifted": lifted.allowed,
                            "rule": lifted.rule, "facts": dict(lifted.facts),
                            "approvals": [{"partner": x, "by": by, "at": at.isoformat()}
                                          for x, by, at in approvals]}}

    def compute(self, c: Campaign) -> dict[str, Any]:
        """GPU-hours, energy and emissions of the campaign's finished jobs, per host
        partner (whose compute it was) and per agreement, from the usage records."""
        by_host: dict[str, dict[str, Any]] = {}
        total = {"gpu_hours": 0.0, "energy_kwh": 0.0, "emissions_kg": 0.0, "jobs": 0}
        for r in self.store.runs(c.id):
            for u in self.broker.store.usage(job_id=r.job_id):
                row = by_host.setdefault(u.host_partner, {"gpu_hours": 0.0, "energy_kwh": 0.0,
                                                          "emissions_kg": 0.0, "jobs": 0, "agreements": []})
                for bucket in (row, total):
                    bucket["gpu_hours"] += u.gpu_seconds / 3600
                    bucket["energy_kwh"] += u.energy_kwh or 0.0
                    bucket["emissions_kg"] += (u.emissions_g or 0.0) / 1000
                    bucket["jobs"] += 1
                if u.agreement and u.agreement not in row["agreements"]:
                    row["agreements"].append(u.agreement)
        return {"by_host_partner": by_host, "total": total, "requester": self._requester(c)}

    def _requester(self, c: Campaign) -> str | None:
        project = self.access.store.project(c.project)
        return project.partner if project else None

    def results(self, p: Principal, campaign_id: str, source: str) -> dict[str, Any]:
        """The (task, model) results the policy gives the caller, once the embargo has
        lifted. Every call, allowed or refused, writes an audit record.

        Raises:
            Forbidden: the campaign is not visible, the policy gives the caller nothing,
                or the embargo holds.
        """
        try:
            c = self.get(p, campaign_id)
            approvals = frozenset(a[0] for a in self.store.approvals(c.id))
            can_read_results(p, c, approvals, self._today()).require()
        except Forbidden as exc:
            self._audit(p, campaign_id, self._partners(campaign_id), 403, source, str(exc))
            raise
        self.collect(c.id)
        pairs = readable_pairs(p, c, self._today())
        out = []
        for x in self.store.logs(c.id):
            if (x.task, x.model) in pairs:
                out.append({**json.loads(x.summary), "task": x.task, "model": x.model, "job": x.job_id,
                            "log": x.name, "sha256": x.sha256, "size": x.size})
        runs = {(r.task, r.model): r for r in self.store.runs(c.id)}
        missing = sorted(f"{t}×{m}" for t, m in pairs if (t, m) not in {(x["task"], x["model"])
                                                                          for x in out})
        self._audit(p, c.id, c.partners, 200, source,
                    f"{len(out)} result(s): " + ", ".join(sorted({f"{x['task']}×{x['model']}" for x in out})))
        return {"campaign": c.id, "results": out, "pending": missing, "submitted": len(runs),
                "versions": {t.name: t.version for t in c.tasks}}

    def log_bytes(self, p: Principal, campaign_id: str, sha256: str, source: str) -> bytes:
        """The stored bytes of one collected log the caller may read (audited).

        Raises:
            Forbidden: as :meth:`results`, or no readable log has that hash.
        """
        try:
            c = self.get(p, campaign_id)
            approvals = frozenset(a[0] for a in self.store.approvals(c.id))
            can_read_results(p, c, approvals, self._today()).require()
            pairs = readable_pairs(p, c, self._today())
            found = next((x for x in self.store.logs(c.id, content=True)
                          if x.sha256 == sha256 and (x.task, x.model) in pairs), None)
            if found is None or found.content is None:
                raise Forbidden(f"campaign {campaign_id} has no log {sha256[:64]} you may read")
        except Forbidden as exc:
            self._audit(p, campaign_id, self._partners(campaign_id), 403, source, f"log {sha256[:64]}: {exc}")
            raise
        self._audit(p, c.id, c.partners, 200, source, f"log {found.name} sha256 {sha256}")
        return found.content

    def approve_release(self, p: Principal, campaign_id: str, partner: str | None) -> dict[str, Any]:
        """Record the release approval of a partner the caller is programme officer of
        (``partner`` may be omitted when that is one partner of the campaign).

        Raises:
            Forbidden: the token lacks projects:write; the campaign is not visible; not that
                partner's programme officer; the embargo does not wait for approvals.
            InvalidInput: ``partner`` omitted and the caller oversees several partners.
        """
        c = self.get(p, campaign_id, TokenScope.PROJECTS_WRITE)
        if partner is None:
            mine = [x for x in c.partners if p.holds(Role.PROGRAMME_OFFICER, x)]
            if len(mine) > 1:
                raise InvalidInput([Problem("partner", "say which partner you approve for", None,
                                            ", ".join(mine))])
            partner = mine[0] if mine else ""
        can_approve_release(p, c, partner).require()
        self.store.approve(c.id, partner, p.user, self.access.clock.now())
        approvals = self.store.approvals(c.id)
        lifted = embargo_lifted(c, frozenset(a[0] for a in approvals), self._today())
        return {"campaign": c.id, "partner": partner, "lifted": lifted.allowed, "rule": lifted.rule,
                "approvals": [{"partner": x, "by": by, "at": at.isoformat()} for x, by, at in approvals]}

    def _partners(self, campaign_id: str) -> tuple[str, ...]:
        """The partners a campaign concerns (for scoped auditors); none if there is no such campaign."""
        try:
            return self._load(campaign_id).partners
        except NotFound:
            return ()

    def _audit(self, p: Principal, campaign_id: str, partners: tuple[str, ...], status: int, source: str,
               detail: str) -> None:
        self.access.record(AuditRecord(datetime.now(UTC), p.user, p.via, "campaign.results.read",
                                       f"campaign {campaign_id[:64]}", partners,
                                       Outcome.OK if status < 400 else Outcome.REFUSED, status, source,
                                       detail[:500]))

    def doc(self, c: Campaign) -> dict[str, Any]:
        """The campaign as the API shows it."""
        return {**encode_campaign(c), "created_by": c.created_by,
                "created_at": c.created_at.isoformat() if c.created_at else None}


def _trust_versions(doc: Mapping[str, Any]) -> dict[str, str]:
    """The shipped versions a stored campaign was validated against (they are checked
    at creation; a later upgrade of the shipped tasks must not make it unreadable)."""
    return {str(t.get("name")): str(t.get("version")) for t in doc.get("tasks", [])
            if isinstance(t, Mapping) and not t.get("file")}


def _summary_doc(s: Summary) -> dict[str, Any]:
    """The summary as stored; Inspect's own names of the task and model are kept apart
    from the campaign's."""
    doc = {**asdict(s), "scores": [asdict(x) for x in s.scores]}
    doc["inspect_task"], doc["inspect_model"] = doc.pop("task"), doc.pop("model")
    return doc


def task_file(t: TaskRef, tasks_dir: Path = TASKS_DIR) -> str:
    """Where a task's file is at the sites."""
    return t.file or str(tasks_dir / f"{t.name}.py")
