"""Placement: choose a site and pool for a job, and say why.

One pure function, :func:`place`, used by the broker (and later the simulator).
Hard constraints remove candidates, each with its reason; the remaining
candidates are scored (lower is better) term by term, so a decision can be
explained. ``docs/design/placement.md`` describes the terms.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from accord.domain.federation import Agreement, Federation, GpuPool, Site
from accord.domain.jobs import JobSpec

CROSS_BORDER_PENALTY = 0.5


class Verdict(enum.Enum):
    """What the broker should do with a job after a placement attempt."""

    PLACE = "place"
    WAIT = "wait"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """What a site reports about one pool right now."""

    free_gpus: int
    queued_gpus: int = 0
    available: bool = True
    note: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A (site, pool) that passed every hard constraint, with its score terms."""

    site: str
    pool: str
    agreement: str | None
    terms: tuple[tuple[str, float], ...]

    @property
    def score(self) -> float:
        """Sum of the terms; lower is better."""
        return sum(v for _, v in self.terms)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A (site, pool) ruled out, and why; ``transient`` if it may pass later."""

    site: str
    pool: str
    reason: str
    transient: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`place`."""

    verdict: Verdict
    chosen: Candidate | None
    alternatives: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]

    def explain(self) -> str:
        """One readable paragraph: where, why, and what else was considered."""
        if self.chosen is None:
            why = "; ".join(f"{r.site}/{r.pool}: {r.reason}" for r in self.rejected)
            verb = "waits" if self.verdict is Verdict.WAIT else "cannot run anywhere"
            return f"The job {verb}: {why or 'the federation has no sites'}."
        c = self.chosen
        terms = ", ".join(f"{n} {v:.2f}" for n, v in c.terms)
        text = f"Placed at {c.site}/{c.pool} (score {c.score:.2f}: {terms})"
        if c.agreement:
            text += f" under agreement {c.agreement}"
        others = [f"{a.site}/{a.pool} ({a.score:.2f})" for a in self.alternatives[:3]]
        if others:
            text += f". Next best: {', '.join(others)}"
        if self.rejected:
            text += f". Ruled out: {len(self.rejected)} pool(s), e.g. {self.rejected[0].site}: " \
                    f"{self.rejected[0].reason}"
        return text + "."


def place(
    spec: JobSpec,
    federation: Federation,
    loads: Mapping[tuple[str, str], PoolLoad],
    at: datetime,
) -> Decision:
    """Choose the best (site, pool) for ``spec`` at time ``at``.

    ``loads`` maps (site id, pool id) to its current load; a pool missing from it
    is taken as idle and available. The verdict is PLACE with a chosen candidate,
    WAIT when every ruled-out pool may pass later (busy or down), or REJECT when
    nothing can ever take the job.
    """
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    for site in federation.sites:
        for pool in site.pools:
            load = loads.get((site.id, pool.id), PoolLoad(free_gpus=pool.gpus))
            outcome = _assess(spec, federation, site, pool, load, at)
            if isinstance(outcome, Rejection):
                rejected.append(outcome)
            else:
                candidates.append(outcome)
    candidates.sort(key=lambda c: (c.score, c.site, c.pool))
    if candidates:
        return Decision(Verdict.PLACE, candidates[0], tuple(candidates[1:]), tuple(rejected))
    transient = any(r.transient for r in rejected)
    verdict = Verdict.WAIT if transient else Verdict.REJECT
    return Decision(verdict, None, (), tuple(rejected))


def _assess(
    spec: JobSpec, fed: Federation, site: Site, pool: GpuPool, load: PoolLoad, at: datetime
) -> Candidate | Rejection:
    def no(reason: str, transient: bool = False) -> Rejection:
        return Rejection(site.id, pool.id, reason, transient)

    if spec.site is not None and spec.site != site.id:
        return no(f"the job asks for site {spec.site}")
    if spec.gpu_model is not None and pool.gpu_model != spec.gpu_model:
        return no(f"GPU model {pool.gpu_model}, the job asks for {spec.gpu_model}")
    if spec.gpus > pool.gpus:
        return no(f"pool has {pool.gpus} GPUs, the job asks for {spec.gpus}")
    country = fed.partner(site.partner).country
    if spec.data_residency and country not in spec.data_residency:
        return no(f"site is in {country}; the job's data must stay in "
                  f"{', '.join(spec.data_residency)}")
    agreement: Agreement | None = None
    if spec.partner is not None and spec.partner != site.partner:
        found = _agreement_for(spec, fed, site, at)
        if isinstance(found, str):
            return no(found)
        agreement = found
    if not load.available:
        return no(f"site unavailable: {load.note or 'backend not answering'}", transient=True)
    return Candidate(site.id, pool.id, agreement.id if agreement else None,
                     _terms(spec, pool, load, agreement is not None))


def _agreement_for(spec: JobSpec, fed: Federation, site: Site, at: datetime) -> Agreement | str:
    """The agreement that lets the job's partner use ``site``, or why none does."""
    reasons: list[str] = []
    for a in fed.agreements:
        if spec.partner not in a.parties or site.partner not in a.parties:
            continue
        if not a.in_force(at.date()):
            reasons.append(f"agreement {a.id} is not in force on {at.date().isoformat()}")
        elif a.quota(spec.partner or "", site.partner) is None:
            reasons.append(f"agreement {a.id} grants {spec.partner} no quota at {site.partner}")
        elif a.themes and spec.theme not in a.themes:
            reasons.append(f"agreement {a.id} covers themes {', '.join(a.themes)}, "
                           f"not {spec.theme or '(no theme given)'}")
        elif a.residency_countries and \
                fed.partner(site.partner).country not in a.residency_countries:
            reasons.append(f"agreement {a.id} keeps work in {', '.join(a.residency_countries)}")
        else:
            return a
    if not reasons:
        return f"no agreement between {spec.partner} and {site.partner}"
    return "; ".join(reasons)


def _terms(
    spec: JobSpec, pool: GpuPool, load: PoolLoad, cross_border: bool
) -> tuple[tuple[str, float], ...]:
    shortfall = max(0, spec.gpus - load.free_gpus) + load.queued_gpus
    wait = shortfall / pool.gpus
    return (("wait", round(wait, 6)), ("border", CROSS_BORDER_PENALTY if cross_border else 0.0))
