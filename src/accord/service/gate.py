"""The gate between a caller and the broker: who may submit what, and what the rules
say once placement has chosen where a job runs.

At submission (:meth:`Gate.shape`): a registered project the caller belongs to, its
home partner as the requester, the caller's sector, denied-party rules (refusal) and
residency rules (the job's ``data_residency`` narrowed). At placement
(:meth:`Gate.review`): the large-run rule (held until an operator of the host site
approves) and graded allocation enforcement (warn, lower priority, hold). Every
outcome carries its rule and the facts that decided it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from accord.domain.access.compliance import Finding, Grade, denied_party, grade, large_run, residency
from accord.domain.access.rules import Principal, TokenScope, token_scope
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job, JobSpec
from accord.domain.placement.records import Candidate
from accord.service.access import ADMIN, AccessService


class ProjectUse(Protocol):
    """Units a project used under an agreement at a host over some months (the ledger)."""

    def __call__(self, project: str, agreement: str, host: str, first: str, last: str) -> Decimal: ...


class Action(enum.Enum):
    """What the broker must do with a placed job."""

    GO = "go"
    WARN = "warn"
    LOWER = "lower"
    HOLD = "hold"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Review:
    """The rules' verdict on a placement; ``note`` goes into the story."""

    action: Action
    note: str = ""
    data: tuple[tuple[str, str], ...] = ()
    commit: tuple[tuple[str, str, str], float] | None = None   # ((project, agreement, host), units)


@dataclass(frozen=True, slots=True)
class Shaped:
    """A submission after the gate: the document to parse, the sector, and notes."""

    doc: dict[str, object]
    sector: str | None
    notes: tuple[str, ...]


class Gate:
    """Applies access, compliance and allocation rules to submissions and placements."""

    def __init__(self, federation: Federation, access: AccessService, project_used: ProjectUse) -> None:
        self.federation = federation
        self.access = access
        self.project_used = project_used

    # ------------------------------------------------------------ submission
    def shape(self, p: Principal, doc: Mapping[str, object]) -> Shaped:
        """Check a submission by ``p`` and fill in what Accord decides for it.

        Raises:
            Forbidden: the token lacks jobs:write; not a member of the project (same
                message when it does not exist); a denied party.
            InvalidInput: a partner other than the project's, residency that the rules
                leave empty.
        """
        if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
            refusal.require()
        out = dict(doc)
        if p.user == ADMIN.user:
            return Shaped(out, None, ())
        project_id = str(doc.get("project") or "")
        hidden = f"project {project_id or '(none given)'} does not exist or you are not a member"
        project = self.access.store.project(project_id) if project_id else None
        if project is None or (p.user not in project.members and p.user != project.pi):
            raise Forbidden(hidden + "; submit to a project you belong to (--project)")
        given = doc.get("partner")
        if given is not None and given != project.partner:
            raise InvalidInput([Problem("partner", "must be the project's home partner", str(given)[:64],
                                        project.partner)])
        out["partner"] = project.partner
        if (f := self._denied(p)) is not None:
            raise Forbidden(f.text())
        notes: list[str] = []
        countries, found = residency(self.federation.compliance, project.theme if doc.get("theme") is None
                                     else str(doc.get("theme")), project.partner)
        barred = {x.id: f for x in self.federation.partners if (f := self._denied(p, x.id)) is not None}
        if barred:   # host-specific denied-party rules: keep the work away from those hosts
            open_ = tuple(sorted({x.country for x in self.federation.partners if x.id not in barred}))
            countries = tuple(c for c in countries if c in open_) if countries else open_
            found = (*found, *barred.values())
        if found and not countries:
            raise Forbidden("; ".join(x.text() for x in found) + "; together they leave nowhere to run")
        if countries:
            raw = doc.get("data_residency")
            asked = [str(c) for c in raw] if isinstance(raw, list) else []
            keep = [c for c in asked if c in countries] if asked else list(countries)
            if not keep:
                raise InvalidInput([Problem("data_residency", "; ".join(x.text() for x in found),
                                            ",".join(asked), ", ".join(countries))])
            out["data_residency"] = keep
            notes.extend(x.text() for x in found)
        if doc.get("theme") is None and project.theme is not None:
            out["theme"] = project.theme
        return Shaped(out, self.access.sector_for(p, project.partner), tuple(notes))

    def _denied(self, p: Principal, host: str | None = None) -> Finding | None:
        """The denied-party rule that bars ``p`` everywhere (``host`` None) or at ``host``."""
        for a in p.affiliations:
            country = next((x.country for x in self.federation.partners if x.id == a.partner), None)
            found = denied_party(self.federation.compliance, a.institution, country, host)
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------ placement
    def allocations(self, day: date) -> Mapping[str, frozenset[tuple[str, str]]]:
        """For the placement context: per registered project, (agreement, site) pairs."""
        return self.access.held_allocations(day)

    def committed(self, jobs: Iterable[Job], at: datetime) -> dict[tuple[str, str, str], float]:
        """Estimated units of jobs placed abroad and not yet ended, per (project,
        agreement, host): what allocation checks count besides the ledger."""
        out: dict[tuple[str, str, str], float] = {}
        for j in jobs:
            if j.placement is None or j.placement.agreement is None:
                continue
            key = (j.spec.project, j.placement.agreement, self.federation.site(j.placement.site).partner)
            out[key] = out.get(key, 0.0) + self.units(j.spec, j.placement.site, j.placement.pool, at)
        return out

    def units(self, spec: JobSpec, site: str, pool: str, at: datetime) -> float:
        """Estimated normalised units of ``spec`` at a pool (its time limit × the rate in
        force at ``at``; 0 without a rate)."""
        model = next(x.gpu_model for x in self.federation.site(site).pools if x.id == pool)
        try:
            rate = self.federation.rate(model, at).units_per_gpu_hour
        except NotFound:
            return 0.0
        return spec.gpus * spec.time_limit_s / 3600 * rate

    def review(self, job: Job, c: Candidate, at: datetime,
               committed: Mapping[tuple[str, str, str], float]) -> Review:
        """The rules' verdict on running ``job`` at candidate ``c`` (abroad only; at home GO)."""
        if c.agreement is None:
            return Review(Action.GO)
        host = self.federation.site(c.site).partner
        held = self._compliance(job, c, host, at)
        if held is not None:
            return held
        return self._allocation(job, c, host, at, committed)

    def _compliance(self, job: Job, c: Candidate, host: str, at: datetime) -> Review | None:
        owner = self._owner(job.owner)
        if owner is not None and (denied := self._denied(owner, host)) is not None:
            return Review(Action.FAIL, f"Refused at {host}: {denied.text()}",
                          (("compliance_rule", denied.rule),))
        affiliated = owner.partners(at.date(), for_compliance=True) if owner is not None else frozenset()
        pool = next(x for x in self.federation.site(c.site).pools if x.id == c.pool)
        model = next((m for m in self.federation.gpu_models if m.name == pool.gpu_model), None)
        finding = large_run(self.federation.compliance, host=host, gpus=job.spec.gpus,
                            time_limit_s=job.spec.time_limit_s,
                            peak_tflops=model.peak_tflops if model else None, affiliated=affiliated)
        if finding is None:
            return None
        decided = self.access.store.compliance_decision(job.id, c.site)
        data = (("compliance_rule", finding.rule), ("site", c.site), ("pool", c.pool))
        if decided is None:
            return Review(Action.HOLD, f"Held for compliance review at {c.site}: {finding.text()}", data)
        approved, by, reason = decided
        if not approved:
            return Review(Action.FAIL, f"Refused by {by}, operator of {c.site}: {reason} "
                                       f"({finding.text()})", data)
        return Review(Action.GO, f"Approved by {by}, operator of {c.site}: {reason}")

    def _owner(self, owner: str) -> Principal | None:
        if owner == ADMIN.user:
            return None
        try:
            return self.access.principal(self.access.store.user(owner))
        except NotFound:
            return None

    def _allocation(self, job: Job, c: Candidate, host: str, at: datetime,
                    committed: Mapping[tuple[str, str, str], float]) -> Review:
        assert c.agreement is not None
        found = self.access.allocations_for(job.spec.project, c.agreement, c.site, at.date())
        if not found:
            return Review(Action.GO)
        # Every approved allocation covering the run counts as one pot, used over their months.
        amount = sum(a.units for a in found)
        first, last = min(a.start for a in found), max(a.end for a in found)
        key = (job.spec.project, c.agreement, host)
        used = (float(self.project_used(job.spec.project, c.agreement, host, first, last))
                + committed.get(key, 0.0))
        cost = self.units(job.spec, c.site, c.pool, at)
        level = grade(self.federation.compliance.allocations, amount, used, cost)
        policy = self.federation.compliance.allocations
        share = (used + cost) / amount if amount else float("inf")
        ids = ", ".join(a.id for a in found)
        facts = (f"allocation {ids} of project {job.spec.project}: {used:.2f} of {amount:.2f} "
                 f"{self.federation.reference_unit} used or committed, this job about {cost:.2f} "
                 f"({share:.0%} after it)")
        data = (("allocation", ids), ("share", f"{share:.4f}"))
        if level is Grade.HOLD:
            return Review(Action.HOLD, f"Held: the allocation would be overdrawn beyond "
                                       f"{policy.hold_at:.0%}; {facts}. Ask for more, or cancel", data)
        action = {Grade.LOWER: Action.LOWER, Grade.WARN: Action.WARN}.get(level, Action.GO)
        note = {Action.LOWER: f"Priority lowered: past {policy.lower_at:.0%} of the allocation; {facts}",
                Action.WARN: f"Warning: past {policy.warn_at:.0%} of the allocation; {facts}"}.get(action, "")
        return Review(action, note, data, (key, cost))
