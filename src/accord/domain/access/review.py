"""The rules' verdict on a placement abroad: compliance (denied parties, the large-run rule)
and graded allocation enforcement (warn, lower priority, hold).

Pure: the gate (:mod:`accord.service.gate`) gathers the facts (:class:`ReviewFacts`: the
job's owner, a recorded compliance decision, the allocations that cover the run and what they
have used), :func:`review_placement` decides, and the lifecycle machine acts on the
:class:`Review`. Every verdict carries its rule and the facts that decided it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from accord.domain.access.compliance import Finding, Grade, denied_party, grade, large_run
from accord.domain.access.projects import Allocation
from accord.domain.access.rules import Principal
from accord.domain.errors import NotFound
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import HoldKind, Job, JobSpec
from accord.domain.placement.records import Candidate

Key = tuple[str, str, str]   # (project, agreement, host partner)


class Action(enum.Enum):
    """What the lifecycle machine must do with a placement."""

    GO = "go"
    WARN = "warn"
    LOWER = "lower"
    HOLD = "hold"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Review:
    """The rules' verdict on a placement; ``note`` goes into the story. ``hold`` says what a
    HOLD waits for; ``commit`` is the allocation use the placement adds (key, units)."""

    action: Action
    note: str = ""
    data: tuple[tuple[str, str], ...] = ()
    hold: HoldKind | None = None
    commit: tuple[Key, float] | None = None


@dataclass(frozen=True, slots=True)
class ComplianceDecision:
    """A site operator's recorded decision on a held run."""

    approved: bool
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReviewFacts:
    """What the rules need that the job does not say. ``owner`` is None for the embedded
    admin (no person to check); ``used`` is what the covering allocations' project used under
    them (the ledger), ``committed`` what jobs placed abroad and not yet ended will use."""

    owner: Principal | None
    decision: ComplianceDecision | None
    allocations: Sequence[Allocation]
    used: float
    committed: Mapping[Key, float]


def denied_for(federation: Federation, p: Principal, host: str | None = None) -> Finding | None:
    """The denied-party rule that bars ``p`` everywhere (``host`` None) or at ``host``."""
    for a in p.affiliations:
        country = next((x.country for x in federation.partners if x.id == a.partner), None)
        found = denied_party(federation.compliance, a.institution, country, host)
        if found is not None:
            return found
    return None


def estimated_units(federation: Federation, spec: JobSpec, site: str, pool: str, at: datetime) -> float:
    """Estimated normalised units of ``spec`` at a pool: its time limit × the rate in force
    at ``at`` (0 without a rate)."""
    model = next(x.gpu_model for x in federation.site(site).pools if x.id == pool)
    try:
        rate = federation.rate(model, at).units_per_gpu_hour
    except NotFound:
        return 0.0
    return spec.gpus * spec.time_limit_s / 3600 * rate


def review_placement(federation: Federation, job: Job, c: Candidate, at: datetime,
                     facts: ReviewFacts) -> Review:
    """The rules' verdict on running ``job`` at candidate ``c`` (abroad only; at home GO)."""
    if c.agreement is None:
        return Review(Action.GO)
    host = federation.site(c.site).partner
    held = _compliance(federation, job, c, host, at, facts)
    if held is not None:
        return held
    return _allocation(federation, job, c, host, at, facts)


def _compliance(federation: Federation, job: Job, c: Candidate, host: str, at: datetime,
                facts: ReviewFacts) -> Review | None:
    owner = facts.owner
    if owner is not None and (denied := denied_for(federation, owner, host)) is not None:
        return Review(Action.FAIL, f"Refused at {host}: {denied.text()}", (("compliance_rule", denied.rule),))
    affiliated = owner.partners(at.date(), for_compliance=True) if owner is not None else frozenset()
    pool = next(x for x in federation.site(c.site).pools if x.id == c.pool)
    model = next((m for m in federation.gpu_models if m.name == pool.gpu_model), None)
    finding = large_run(federation.compliance, host=host, gpus=job.spec.gpus,
                        time_limit_s=job.spec.time_limit_s,
                        peak_tflops=model.peak_tflops if model else None, affiliated=affiliated)
    if finding is None:
        return None
    data = (("compliance_rule", finding.rule), ("site", c.site), ("pool", c.pool))
    decided = facts.decision
    if decided is None:
        return Review(Action.HOLD, f"Held for compliance review at {c.site}: {finding.text()}", data,
                      HoldKind.COMPLIANCE)
    if not decided.approved:
        return Review(Action.FAIL, f"Refused by {decided.by}, operator of {c.site}: {decided.reason} "
                                   f"({finding.text()})", data)
    return Review(Action.GO, f"Approved by {decided.by}, operator of {c.site}: {decided.reason}")


def _allocation(federation: Federation, job: Job, c: Candidate, host: str, at: datetime,
                facts: ReviewFacts) -> Review:
    assert c.agreement is not None
    found = facts.allocations
    if not found:
        return Review(Action.GO)
    # Every approved allocation covering the run counts as one pot, used over their months.
    amount = sum(a.units for a in found)
    key = (job.spec.project, c.agreement, host)
    used = facts.used + facts.committed.get(key, 0.0)
    cost = estimated_units(federation, job.spec, c.site, c.pool, at)
    policy = federation.compliance.allocations
    level = grade(policy, amount, used, cost)
    share = (used + cost) / amount if amount else float("inf")
    ids = ", ".join(a.id for a in found)
    facts_text = (f"allocation {ids} of project {job.spec.project}: {used:.2f} of {amount:.2f} "
                  f"{federation.reference_unit} used or committed, this job about {cost:.2f} "
                  f"({share:.0%} after it)")
    data = (("allocation", ids), ("share", f"{share:.4f}"))
    if level is Grade.HOLD:
        return Review(Action.HOLD, f"Held: the allocation would be overdrawn beyond "
                                   f"{policy.hold_at:.0%}; {facts_text}. Ask for more, or cancel", data,
                      HoldKind.ALLOCATION)
    action = {Grade.LOWER: Action.LOWER, Grade.WARN: Action.WARN}.get(level, Action.GO)
    note = {Action.LOWER: f"Priority lowered: past {policy.lower_at:.0%} of the allocation; {facts_text}",
            Action.WARN: f"Warning: past {policy.warn_at:.0%} of the allocation; {facts_text}",
            }.get(action, "")
    return Review(action, note, data, None, (key, cost))
