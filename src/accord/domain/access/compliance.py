"""Compliance rules as data (the federation file's ``[compliance]``) and what they decide.

Three kinds of rule:

* ``large_runs``: a run abroad above a size (GPU-hours requested, or estimated FLOP =
  GPUs × time limit × the model's peak TFLOP/s, an upper bound) by a user with no
  affiliation to the host partner is **held** until an operator of the host site
  approves (the UK–US scrutiny of foreign access to training compute).
* ``denied_parties``: institutions or countries whose users may not use the listed
  hosts (all hosts when none are listed): the submission is **refused**.
* ``residency``: work of some themes (from some partners) stays in given countries:
  the job's ``data_residency`` gains them, and placement enforces it.

Every finding names its rule and the facts that decided it, for the job's story.
Also here: ``[allocations]``, how allocation use is enforced (warn, lower priority, hold).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.domain.federation import limits as lim
from accord.domain.fieldreader import COUNTRY_ALLOWED, FieldReader, is_country_code

Doc = Mapping[str, object]


class RuleKind(enum.Enum):
    """The kinds of compliance rule."""

    LARGE_RUN = "large_run"
    DENIED_PARTY = "denied_party"
    RESIDENCY = "residency"


@dataclass(frozen=True, slots=True)
class LargeRunRule:
    """Hold big runs abroad by users unaffiliated with the host, at ``hosts`` (all if empty)."""

    id: str
    hosts: tuple[str, ...] = ()
    gpu_hours: float | None = None
    flop: float | None = None


@dataclass(frozen=True, slots=True)
class DeniedPartyRule:
    """Users of these institutions or countries may not use ``hosts`` (all if empty)."""

    id: str
    institutions: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResidencyRule:
    """Work of ``themes`` from ``partners`` (all if empty) stays in ``countries``."""

    id: str
    themes: tuple[str, ...]
    countries: tuple[str, ...]
    partners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AllocationPolicy:
    """Graded enforcement of allocations, as fractions of the amount granted after the
    job's estimated cost: warn above ``warn_at``, lower its priority above ``lower_at``,
    hold it above ``hold_at``."""

    warn_at: float = 0.8
    lower_at: float = 0.95
    hold_at: float = 1.0


@dataclass(frozen=True, slots=True)
class Compliance:
    """All the rules of a federation."""

    large_runs: tuple[LargeRunRule, ...] = ()
    denied_parties: tuple[DeniedPartyRule, ...] = ()
    residency: tuple[ResidencyRule, ...] = ()
    allocations: AllocationPolicy = field(default_factory=AllocationPolicy)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that applies to a job: which, what it does, and the facts."""

    rule: str
    kind: RuleKind
    message: str
    facts: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """The message with its rule and facts, for a story or an error."""
        facts = ", ".join(f"{k}={v}" for k, v in self.facts)
        return f"rule {self.rule} ({self.kind.value}): {self.message}" + (f" [{facts}]" if facts else "")


# ------------------------------------------------------------------ decisions
def denied_party(rules: Compliance, institution: str | None, country: str | None,
                 host: str | None = None) -> Finding | None:
    """The first denied-party rule that bars this institution/country: with ``host``
    None, the rules for every host (no ``hosts``); with a host, the rules listing it."""
    for r in rules.denied_parties:
        if (host is None and r.hosts) or (host is not None and host not in r.hosts):
            continue
        if institution is not None and institution in r.institutions:
            return Finding(r.id, RuleKind.DENIED_PARTY,
                           f"institution {institution} is on the denied-party list",
                           (("institution", institution),))
        if country is not None and country in r.countries:
            return Finding(r.id, RuleKind.DENIED_PARTY, f"country {country} is on the denied-party list",
                           (("country", country),))
    return None


def residency(rules: Compliance, theme: str | None, requester: str | None
              ) -> tuple[tuple[str, ...], tuple[Finding, ...]]:
    """The countries work of ``theme`` from ``requester`` must stay in (intersection of
    every rule that applies; empty when none does), with the findings that say so."""
    countries: set[str] | None = None
    found: list[Finding] = []
    for r in rules.residency:
        if theme not in r.themes or (r.partners and requester not in r.partners):
            continue
        countries = set(r.countries) if countries is None else countries & set(r.countries)
        found.append(Finding(r.id, RuleKind.RESIDENCY, f"{theme} work stays in {', '.join(r.countries)}",
                             (("theme", theme or ""), ("countries", ",".join(r.countries)))))
    return tuple(sorted(countries or ())), tuple(found)


def estimated_flop(gpus: int, time_limit_s: int, peak_tflops: float | None) -> float | None:
    """An upper bound on a run's floating-point operations (None without a peak).

    >>> estimated_flop(8, 3600, 1000.0)
    2.88e+19
    """
    return None if peak_tflops is None else gpus * time_limit_s * peak_tflops * 1e12


def large_run(rules: Compliance, *, host: str, gpus: int, time_limit_s: int, peak_tflops: float | None,
              affiliated: frozenset[str]) -> Finding | None:
    """The first large-run rule that holds this run at ``host``, or None (a user
    affiliated with the host partner is never held)."""
    if host in affiliated:
        return None
    gpu_hours = gpus * time_limit_s / 3600
    flop = estimated_flop(gpus, time_limit_s, peak_tflops)
    for r in rules.large_runs:
        if r.hosts and host not in r.hosts:
            continue
        over_hours = r.gpu_hours is not None and gpu_hours > r.gpu_hours
        over_flop = r.flop is not None and flop is not None and flop > r.flop
        if over_hours or over_flop:
            facts = [("host", host), ("gpu_hours", f"{gpu_hours:g}"),
                     ("affiliations", ",".join(sorted(affiliated)) or "none")]
            if flop is not None:
                facts.append(("estimated_flop", f"{flop:.3g}"))
            limit = (f"{r.gpu_hours:g} GPU-hours" if over_hours else f"{r.flop:.3g} FLOP")
            return Finding(r.id, RuleKind.LARGE_RUN,
                           f"a run above {limit} at {host} by a user with no affiliation to {host} "
                           f"waits for a site operator's approval", tuple(facts))
    return None


class Grade(enum.Enum):
    """What allocation enforcement does with a job."""

    OK = "ok"
    WARN = "warn"
    LOWER = "lower"
    HOLD = "hold"


def grade(policy: AllocationPolicy, amount: float, used: float, cost: float) -> Grade:
    """How far ``used`` + ``cost`` goes into ``amount`` decides the grade.

    >>> p = AllocationPolicy()
    >>> [grade(p, 100, u, 5).value for u in (10, 80, 92, 96)]
    ['ok', 'warn', 'lower', 'hold']
    """
    share = (used + cost) / amount if amount > 0 else float("inf")
    if share > policy.hold_at + 1e-12:
        return Grade.HOLD
    if share > policy.lower_at:
        return Grade.LOWER
    if share > policy.warn_at:
        return Grade.WARN
    return Grade.OK


# ------------------------------------------------------------------ parsing
COMPLIANCE_KEYS = ("large_runs", "denied_parties", "residency")
ALLOCATION_KEYS = ("warn_at", "lower_at", "hold_at")


def parse_compliance(r: FieldReader, doc: Doc, partners: list[str], institutions: list[str],
                     themes: tuple[str, ...]) -> Compliance:
    """``[compliance]`` and ``[allocations]`` of a federation document (problems go to ``r``)."""
    t = r.table(doc, "compliance", "")
    r.unknown_keys(t, "compliance", COMPLIANCE_KEYS)
    most = lim.RULES.maximum
    large = tuple(_large(r, x, f"compliance.large_runs[{i}]", partners)
                  for i, x in enumerate(r.tables(t, "large_runs", "compliance", max_items=most)))
    denied = tuple(_denied(r, x, f"compliance.denied_parties[{i}]", partners, institutions)
                   for i, x in enumerate(r.tables(t, "denied_parties", "compliance", max_items=most)))
    resid = tuple(_residency(r, x, f"compliance.residency[{i}]", partners, themes)
                  for i, x in enumerate(r.tables(t, "residency", "compliance", max_items=most)))
    ids = [x.id for x in large if x.id] + [x.id for x in denied if x.id] + [x.id for x in resid if x.id]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        r.add("compliance", "rule ids must be unique", dup, "a different id per rule")
    return Compliance(large, denied, resid, _allocations(r, r.table(doc, "allocations", ""), "allocations"))


#: How many of each kind a rule's list may name.
LIST_BOUND = {"partner": lim.PARTNERS, "institution": lim.INSTITUTIONS, "theme": lim.THEMES}


def _members(r: FieldReader, t: Doc, key: str, path: str, allowed: list[str], what: str) -> tuple[str, ...]:
    values = r.strings(t, key, path, max_items=LIST_BOUND[what].maximum)
    for i, v in enumerate(values):
        r.member(v, f"{path}.{key}[{i}]", allowed, what)
    return values


def _large(r: FieldReader, t: Doc, path: str, partners: list[str]) -> LargeRunRule:
    r.unknown_keys(t, path, ("id", "hosts", "gpu_hours", "flop"))
    rule = LargeRunRule(r.ident(t, "id", path) or "", _members(r, t, "hosts", path, partners, "partner"),
                        r.number(t, "gpu_hours", path, minimum=0, maximum=lim.RULE_GPU_HOURS.maximum,
                                 required=False),
                        r.number(t, "flop", path, minimum=0, maximum=lim.RULE_FLOP.maximum, required=False))
    if rule.gpu_hours is None and rule.flop is None:
        r.add(path, "needs a threshold", None, "gpu_hours, flop or both")
    return rule


def _denied(r: FieldReader, t: Doc, path: str, partners: list[str],
            institutions: list[str]) -> DeniedPartyRule:
    r.unknown_keys(t, path, ("id", "institutions", "countries", "hosts"))
    countries = r.strings(t, "countries", path, max_items=lim.COUNTRIES.maximum)
    for i, c in enumerate(countries):
        if not is_country_code(c):
            r.add(f"{path}.countries[{i}]", "is not an ISO 3166-1 alpha-2 code", c, COUNTRY_ALLOWED)
    rule = DeniedPartyRule(r.ident(t, "id", path) or "",
                           _members(r, t, "institutions", path, institutions, "institution"),
                           countries, _members(r, t, "hosts", path, partners, "partner"))
    if not rule.institutions and not rule.countries:
        r.add(path, "lists nobody", None, "institutions, countries or both")
    return rule


def _residency(r: FieldReader, t: Doc, path: str, partners: list[str],
               themes: tuple[str, ...]) -> ResidencyRule:
    r.unknown_keys(t, path, ("id", "themes", "countries", "partners"))
    countries = r.strings(t, "countries", path, max_items=lim.COUNTRIES.maximum)
    for i, c in enumerate(countries):
        if not is_country_code(c):
            r.add(f"{path}.countries[{i}]", "is not an ISO 3166-1 alpha-2 code", c, COUNTRY_ALLOWED)
    rule = ResidencyRule(r.ident(t, "id", path) or "", _members(r, t, "themes", path, list(themes), "theme"),
                         countries, _members(r, t, "partners", path, partners, "partner"))
    if not rule.themes or not rule.countries:
        r.add(path, "needs themes and countries", None,
              "non-empty lists themes = [...] and countries = [...]")
    return rule


def _allocations(r: FieldReader, t: Doc, path: str) -> AllocationPolicy:
    r.unknown_keys(t, path, ALLOCATION_KEYS)
    d = AllocationPolicy()
    got = [r.number(t, k, path, minimum=0, maximum=lim.ALLOCATION_THRESHOLD.maximum, required=False)
           for k in ALLOCATION_KEYS]
    warn, lower, hold = (default if v is None else v
                         for v, default in zip(got, (d.warn_at, d.lower_at, d.hold_at), strict=True))
    if not warn <= lower <= hold:
        r.add(path, "thresholds must not decrease", f"{warn}, {lower}, {hold}",
              "warn_at ≤ lower_at ≤ hold_at")
    return AllocationPolicy(warn, lower, hold)
