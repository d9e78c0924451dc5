"""The gate between a caller and the broker: who may submit what, and the facts the rules
need once placement has chosen where a job runs.

At submission (:meth:`Gate.shape`, on the parsed spec): a registered project the caller
belongs to, its home partner as the requester, its theme when the job names none, the
caller's sector, denied-party rules (refusal) and residency rules (the job's
``data_residency`` narrowed). At placement
(:meth:`Gate.review`): the facts (owner, compliance decision, allocations and their use) for
:mod:`accord.domain.access.review`, which decides (the large-run rule, graded allocation
enforcement). Every outcome carries its rule and the facts that decided it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from accord.domain.access.compliance import Finding, residency
from accord.domain.access.review import (
    Action,
    ComplianceDecision,
    Review,
    ReviewFacts,
    denied_for,
    estimated_units,
    review_placement,
)
from accord.domain.access.rules import Principal, TokenScope, token_scope
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem
from accord.domain.federation.model import Federation
from accord.domain.fieldreader import show
from accord.domain.jobs.model import Job, JobSpec
from accord.domain.jobs.spec import ParsedJob
from accord.domain.placement.records import Candidate
from accord.service.access import ADMIN, AccessService


class ProjectUse(Protocol):
    """Units a project used under an agreement at a host over some months (the ledger)."""

    def __call__(self, project: str, agreement: str, host: str, first: str, last: str) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class Shaped:
    """A submission after the gate: the spec as the rules leave it (the project's partner as
    the requester, its theme, residency narrowed), the submitter's sector, and the notes of
    the rules applied."""

    spec: JobSpec
    sector: str | None
    notes: tuple[str, ...]


class Gate:
    """Applies access, compliance and allocation rules to submissions and placements."""

    def __init__(self, federation: Federation, access: AccessService, project_used: ProjectUse) -> None:
        self.federation = federation
        self.access = access
        self.project_used = project_used

    # ------------------------------------------------------------ submission
    def shape(self, p: Principal, job: ParsedJob) -> Shaped:
        """Check a parsed submission by ``p`` and fill in what Accord decides for it.

        Raises:
            Forbidden: the token lacks jobs:write; not a member of the project (same
                message when it does not exist); a denied party.
            InvalidInput: a partner other than the project's, residency that the rules
                leave empty; for the local admin, a project that does not exist.
        """
        if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
            refusal.require()
        spec = job.spec
        if p.user == ADMIN.user:
            self._known_project(job)
            return Shaped(spec, None, ())
        project_id = spec.project if "project" in job.given else ""
        hidden = f"project {project_id or '(none given)'} does not exist or you are not a member"
        project = self.access.store.project(project_id) if project_id else None
        if project is None or (p.user not in project.members and p.user != project.pi):
            raise Forbidden(hidden + "; submit to a project you belong to (--project)")
        if spec.partner is not None and spec.partner != project.partner:
            raise InvalidInput([Problem("partner", "must be the project's home partner", spec.partner[:64],
                                        project.partner)])
        if (f := self._denied(p)) is not None:
            raise Forbidden(f.text())
        residency_, notes = self._residency(p, spec, project.theme, project.partner)
        theme = project.theme if spec.theme is None else spec.theme
        spec = replace(spec, partner=project.partner, data_residency=residency_, theme=theme)
        return Shaped(spec, self.access.sector_for(p, project.partner), notes)

    def _known_project(self, job: ParsedJob) -> None:
        """The local admin may charge any project, but only one that exists (or none).

        Raises:
            InvalidInput: at ``project``, naming it.
        """
        if "project" in job.given and self.access.store.project(job.spec.project) is None:
            raise InvalidInput([Problem("project", "names no registered project", show(job.spec.project),
                                        "a project of `accord project list`, or none (the "
                                        "default project)")])

    def _residency(self, p: Principal, spec: JobSpec, project_theme: str | None,
                   partner: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Where the job may keep its data by the residency and host-specific denied-party
        rules, narrowing the countries it asked for; and the rules' notes.

        Raises:
            Forbidden: the rules together leave no country.
            InvalidInput: none of the countries asked for is allowed.
        """
        countries, found = residency(self.federation.compliance,
                                     project_theme if spec.theme is None else spec.theme, partner)
        barred = {x.id: f for x in self.federation.partners if (f := self._denied(p, x.id)) is not None}
        if barred:   # host-specific denied-party rules: keep the work away from those hosts
            open_ = tuple(sorted({x.country for x in self.federation.partners if x.id not in barred}))
            countries = tuple(c for c in countries if c in open_) if countries else open_
            found = (*found, *barred.values())
        if found and not countries:
            raise Forbidden("; ".join(x.text() for x in found) + "; together they leave nowhere to run")
        if not countries:
            return spec.data_residency, ()
        asked = spec.data_residency
        keep = tuple(c for c in asked if c in countries) if asked else tuple(countries)
        if not keep:
            raise InvalidInput([Problem("data_residency", "; ".join(x.text() for x in found),
                                        ",".join(asked), ", ".join(countries))])
        return keep, tuple(x.text() for x in found)

    def _denied(self, p: Principal, host: str | None = None) -> Finding | None:
        """The denied-party rule that bars ``p`` everywhere (``host`` None) or at ``host``."""
        return denied_for(self.federation, p, host)

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
        return estimated_units(self.federation, spec, site, pool, at)

    def review(self, job: Job, c: Candidate, at: datetime,
               committed: Mapping[tuple[str, str, str], float]) -> Review:
        """The rules' verdict on running ``job`` at candidate ``c`` (abroad only; at home GO):
        the facts gathered here, the verdict :func:`~accord.domain.access.review.review_placement`'s."""
        if c.agreement is None:
            return Review(Action.GO)
        return review_placement(self.federation, job, c, at, self.facts(job, c, at, committed))

    def facts(self, job: Job, c: Candidate, at: datetime,
              committed: Mapping[tuple[str, str, str], float]) -> ReviewFacts:
        """What the rules need to review running ``job`` at ``c`` (abroad) that the job does
        not say: its owner, a recorded compliance decision, the covering allocations and
        what the project used under them."""
        assert c.agreement is not None
        host = self.federation.site(c.site).partner
        decided = self.access.store.compliance_decision(job.id, c.site)
        found = self.access.allocations_for(job.spec.project, c.agreement, c.site, at.date())
        used = 0.0
        if found:   # every approved allocation covering the run counts as one pot, over their months
            first, last = min(a.start for a in found), max(a.end for a in found)
            used = float(self.project_used(job.spec.project, c.agreement, host, first, last))
        return ReviewFacts(self._owner(job.owner),
                           None if decided is None else ComplianceDecision(*decided),
                           tuple(found), used, committed)

    def _owner(self, owner: str) -> Principal | None:
        if owner == ADMIN.user:
            return None
        try:
            return self.access.principal(self.access.store.user(owner))
        except NotFound:
            return None
