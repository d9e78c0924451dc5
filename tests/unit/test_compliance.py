"""Compliance rules as a caller sees them: the exact findings (rule, message, facts) that
the API and the audit log show, the edges of every threshold, and the exact problems a
federation file's ``[compliance]`` and ``[allocations]`` produce. Pure functions, no I/O.

Every expected value below is written out by hand."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from accord.domain.access.compliance import (
    AllocationPolicy,
    Compliance,
    DeniedPartyRule,
    Finding,
    Grade,
    LargeRunRule,
    ResidencyRule,
    RuleKind,
    denied_party,
    estimated_flop,
    grade,
    large_run,
    parse_compliance,
    residency,
)
from accord.domain.errors import Problem
from accord.domain.fieldreader import FieldReader

HOUR = 3600
DAY = 24 * HOUR


# ── how a finding reads in a job's story or an error ─────────────────────────────────
@pytest.mark.parametrize(("finding", "text"), [
    (Finding("sanctions", RuleKind.DENIED_PARTY, "institution acme is on the denied-party list"),
     "rule sanctions (denied_party): institution acme is on the denied-party list"),
    (Finding("sanctions", RuleKind.DENIED_PARTY, "country XX is on the denied-party list",
             (("country", "XX"),)),
     "rule sanctions (denied_party): country XX is on the denied-party list [country=XX]"),
    (Finding("bio-home", RuleKind.RESIDENCY, "biomedicine work stays in GB, FR",
             (("theme", "biomedicine"), ("countries", "GB,FR"))),
     "rule bio-home (residency): biomedicine work stays in GB, FR [theme=biomedicine, countries=GB,FR]"),
])
def test_a_finding_reads_as_rule_kind_message_and_facts(finding: Finding, text: str) -> None:
    assert finding.text() == text


# ── denied parties ───────────────────────────────────────────────────────────────────
DENIED = Compliance(denied_parties=(
    DeniedPartyRule("sanctions", institutions=("acme",), countries=("XX",)),
    DeniedPartyRule("no-us", countries=("KR",), hosts=("us",)),
))


@pytest.mark.parametrize(("institution", "country", "host", "expected"), [
    ("acme", "GB", None,
     Finding("sanctions", RuleKind.DENIED_PARTY, "institution acme is on the denied-party list",
             (("institution", "acme"),))),
    ("bristol", "XX", None,
     Finding("sanctions", RuleKind.DENIED_PARTY, "country XX is on the denied-party list",
             (("country", "XX"),))),
    ("kaist", "KR", "us",
     Finding("no-us", RuleKind.DENIED_PARTY, "country KR is on the denied-party list",
             (("country", "KR"),))),
    ("kaist", "KR", None, None),          # barred at us only, not everywhere
    ("kaist", "KR", "fr", None),
    ("bristol", "GB", None, None),
    (None, None, None, None),
])
def test_a_denied_party_refusal_names_its_rule_and_the_fact_that_decided_it(
        institution: str | None, country: str | None, host: str | None, expected: Finding | None) -> None:
    assert denied_party(DENIED, institution, country, host) == expected


# ── residency ────────────────────────────────────────────────────────────────────────
RESIDENCY = Compliance(residency=(
    ResidencyRule("kr-bio", ("biomedicine",), ("KR",), ("kr",)),        # kr's own work only
    ResidencyRule("eu-bio", ("biomedicine",), ("FR", "GB")),            # everyone's
    ResidencyRule("uk-bio", ("biomedicine",), ("GB", "US"), ("uk",)),   # uk's, on top
))
EU_BIO = Finding("eu-bio", RuleKind.RESIDENCY, "biomedicine work stays in FR, GB",
                 (("theme", "biomedicine"), ("countries", "FR,GB")))
UK_BIO = Finding("uk-bio", RuleKind.RESIDENCY, "biomedicine work stays in GB, US",
                 (("theme", "biomedicine"), ("countries", "GB,US")))
KR_BIO = Finding("kr-bio", RuleKind.RESIDENCY, "biomedicine work stays in KR",
                 (("theme", "biomedicine"), ("countries", "KR")))


@pytest.mark.parametrize(("theme", "requester", "countries", "findings"), [
    # a rule for another partner is skipped, the later ones still apply; every rule narrows
    ("biomedicine", "uk", ("GB",), (EU_BIO, UK_BIO)),
    ("biomedicine", "fr", ("FR", "GB"), (EU_BIO,)),
    # two rules with nothing in common leave nowhere to run
    ("biomedicine", "kr", (), (KR_BIO, EU_BIO)),
    ("climate", "uk", (), ()),
    (None, "uk", (), ()),
])
def test_residency_intersects_every_rule_that_applies(
        theme: str | None, requester: str, countries: tuple[str, ...], findings: tuple[Finding, ...]) -> None:
    assert residency(RESIDENCY, theme, requester) == (countries, findings)


# ── large runs ───────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(("gpus", "time_limit_s", "peak_tflops", "flop"), [
    (8, HOUR, 1000.0, 2.88e19),
    (1, 1, 1.0, 1e12),
    (64, DAY, None, None),
])
def test_estimated_flop_is_gpus_times_seconds_times_peak(
        gpus: int, time_limit_s: int, peak_tflops: float | None, flop: float | None) -> None:
    assert estimated_flop(gpus, time_limit_s, peak_tflops) == flop


LARGE = Compliance(large_runs=(
    LargeRunRule("fr-cap", hosts=("fr",), gpu_hours=10),
    LargeRunRule("us-scrutiny", hosts=("us",), gpu_hours=1000, flop=1e21),
    LargeRunRule("kr-flop", hosts=("kr",), flop=2.88e19),
))
US_WAIT = "at us by a user with no affiliation to us waits for a site operator's approval"


@pytest.mark.parametrize(("host", "gpus", "time_limit_s", "peak", "affiliated", "expected"), [
    # 64 GPUs x 24 h = 1536 GPU-hours at us (the fr rule before it does not apply there)
    ("us", 64, DAY, None, {"uk", "kr"},
     Finding("us-scrutiny", RuleKind.LARGE_RUN, f"a run above 1000 GPU-hours {US_WAIT}",
             (("host", "us"), ("gpu_hours", "1536"), ("affiliations", "kr,uk")))),
    # 40 GPUs x 24 h = 960 GPU-hours (under), x 989 TFLOP/s = 3.42e21 FLOP (over 1e21)
    ("us", 40, DAY, 989.0, set(),
     Finding("us-scrutiny", RuleKind.LARGE_RUN, f"a run above 1e+21 FLOP {US_WAIT}",
             (("host", "us"), ("gpu_hours", "960"), ("affiliations", "none"),
              ("estimated_flop", "3.42e+21")))),
    ("us", 64, DAY, None, {"us"}, None),                   # affiliated with the host
    ("us", 1000, HOUR, None, set(), None),                 # exactly 1000 GPU-hours: not above
    ("us", 1000, HOUR + 36, None, set(),                   # 1010 GPU-hours: above
     Finding("us-scrutiny", RuleKind.LARGE_RUN, f"a run above 1000 GPU-hours {US_WAIT}",
             (("host", "us"), ("gpu_hours", "1010"), ("affiliations", "none")))),
    ("kr", 8, HOUR, 1000.0, set(), None),                  # exactly 2.88e19 FLOP: not above
    ("kr", 8, HOUR + 1, 1000.0, {"fr"},
     Finding("kr-flop", RuleKind.LARGE_RUN,
             "a run above 2.88e+19 FLOP at kr by a user with no affiliation to kr "
             "waits for a site operator's approval",
             (("host", "kr"), ("gpu_hours", "8.00222"), ("affiliations", "fr"),
              ("estimated_flop", "2.88e+19")))),
    ("kr", 8000, DAY, None, set(), None),                  # no peak, so no FLOP estimate
    ("ca", 8000, DAY, 1000.0, set(), None),                # no rule for this host
])
def test_a_large_run_hold_names_its_threshold_and_facts(
        host: str, gpus: int, time_limit_s: int, peak: float | None, affiliated: set[str],
        expected: Finding | None) -> None:
    assert large_run(LARGE, host=host, gpus=gpus, time_limit_s=time_limit_s, peak_tflops=peak,
                     affiliated=frozenset(affiliated)) == expected


# ── allocation grades ────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(("amount", "used", "cost", "expected"), [
    (100, 75, 5, Grade.OK),                # exactly 80 %: not above warn_at
    (100, 76, 5, Grade.WARN),
    (100, 90, 5, Grade.WARN),              # exactly 95 %: not above lower_at
    (100, 91, 5, Grade.LOWER),
    (100, 95, 5, Grade.LOWER),             # exactly all of it: not held
    (1, 1.0 + 1e-12, 0, Grade.LOWER),      # over by the rounding tolerance only: not held
    (100, 96, 5, Grade.HOLD),
    (1, 0, 0.5, Grade.OK),                 # a grant of one unit is a grant
    (0, 0, 5, Grade.HOLD),                 # nothing granted: held
    (0, 0, 0, Grade.HOLD),
])
def test_allocation_grades_at_their_edges(amount: float, used: float, cost: float, expected: Grade) -> None:
    assert grade(AllocationPolicy(), amount, used, cost) is expected


# ── parsing [compliance] and [allocations] ──────────────────────────────────────────
PARTNERS = ["uk", "fr", "us"]
INSTITUTIONS = ["bristol", "acme"]
THEMES = ("climate", "biomedicine")
Doc = Mapping[str, object]


def parse(doc: Doc) -> tuple[Compliance, list[Problem]]:
    r = FieldReader()
    rules = parse_compliance(r, doc, PARTNERS, INSTITUTIONS, THEMES)
    return rules, r.problems


def test_a_valid_compliance_section_is_read_field_by_field() -> None:
    rules, problems = parse({
        "compliance": {
            "large_runs": [{"id": "gpu-cap", "hosts": ["us"], "gpu_hours": 0.5},
                           {"id": "flop-cap", "flop": 0.5}],
            "denied_parties": [{"id": "sanctions", "institutions": ["acme"], "countries": ["XX"],
                                "hosts": ["us"]}],
            "residency": [{"id": "bio-home", "themes": ["biomedicine"], "countries": ["GB"],
                           "partners": ["uk"]}],
        },
    })
    assert problems == []
    assert rules == Compliance(
        (LargeRunRule("gpu-cap", ("us",), 0.5, None), LargeRunRule("flop-cap", (), None, 0.5)),
        (DeniedPartyRule("sanctions", ("acme",), ("XX",), ("us",)),),
        (ResidencyRule("bio-home", ("biomedicine",), ("GB",), ("uk",)),),
        AllocationPolicy(0.8, 0.95, 1.0),
    )


def test_rules_without_an_id_are_reported_once_each_and_not_as_duplicates() -> None:
    rules, problems = parse({"compliance": {
        "large_runs": [{"gpu_hours": 1}, {"gpu_hours": 2}],
        "denied_parties": [{"countries": ["XX"]}, {"countries": ["YY"]}],
        "residency": [{"themes": ["climate"], "countries": ["GB"]},
                      {"themes": ["climate"], "countries": ["FR"]}],
    }})
    assert problems == [
        Problem(f"compliance.{kind}[{i}].id", "is required", None, "a non-empty string")
        for kind in ("large_runs", "denied_parties", "residency") for i in (0, 1)
    ]
    assert [r.id for r in rules.large_runs] == ["", ""]
    assert [r.id for r in rules.denied_parties] == ["", ""]
    assert [r.id for r in rules.residency] == ["", ""]


LR = "compliance.large_runs[0]"
DP = "compliance.denied_parties[0]"
RS = "compliance.residency[0]"
ISO = "is not an ISO 3166-1 alpha-2 code"
COUNTRY = "an ISO 3166-1 alpha-2 code: two capital letters A-Z, e.g. GB, FR"
NEEDS_BOTH = "non-empty lists themes = [...] and countries = [...]"


@pytest.mark.parametrize(("doc", "expected"), [
    ({"compliance": 5}, [Problem("compliance", "must be a table", "5", "a [table]")]),
    ({"compliance": {"nonsense": 1}},
     [Problem("compliance.nonsense", "unknown field", "'nonsense'",
              "denied_parties, large_runs, residency")]),
    ({"compliance": {"large_runs": 5}},
     [Problem("compliance.large_runs", "must be an array of tables", "5", "[[large_runs]] entries")]),
    ({"compliance": {"denied_parties": [5]}},
     [Problem("compliance.denied_parties[0]", "must be a table", "5", "a table")]),
    ({"compliance": {"residency": "GB"}},
     [Problem("compliance.residency", "must be an array of tables", "'GB'", "[[residency]] entries")]),
    # the same id on two rules of different kinds
    ({"compliance": {"large_runs": [{"id": "same", "gpu_hours": 1}],
                     "denied_parties": [{"id": "same", "countries": ["XX"]}]}},
     [Problem("compliance", "rule ids must be unique", "'same'", "a different id per rule")]),
    # large runs
    ({"compliance": {"large_runs": [{"id": "cap", "hosts": ["mars"], "gpu_hours": 1}]}},
     [Problem(f"{LR}.hosts[0]", "names an unknown partner", "'mars'", "uk, fr, us")]),
    ({"compliance": {"large_runs": [{"id": "cap", "gpu_hours": -1}]}},
     [Problem(f"{LR}.gpu_hours", "is out of range", "-1", "a number from 0 to 1,000,000,000,000"),
      Problem(LR, "needs a threshold", None, "gpu_hours, flop or both")]),
    ({"compliance": {"large_runs": [{"id": "cap", "flop": -1e20}]}},
     [Problem(f"{LR}.flop", "is out of range", "-1e+20", "a number from 0 to 1e+30"),
      Problem(LR, "needs a threshold", None, "gpu_hours, flop or both")]),
    ({"compliance": {"large_runs": [{"id": "cap", "hosts": ["us"]}]}},
     [Problem(LR, "needs a threshold", None, "gpu_hours, flop or both")]),
    # denied parties
    ({"compliance": {"denied_parties": [{"id": "d", "countries": ["GB", "gb", "GBR", "G1"]}]}},
     [Problem(f"{DP}.countries[1]", ISO, "'gb'", COUNTRY),
      Problem(f"{DP}.countries[2]", ISO, "'GBR'", COUNTRY),
      Problem(f"{DP}.countries[3]", ISO, "'G1'", COUNTRY)]),
    ({"compliance": {"denied_parties": [{"id": "d", "institutions": ["mit"], "hosts": ["mars"]}]}},
     [Problem(f"{DP}.institutions[0]", "names an unknown institution", "'mit'", "bristol, acme"),
      Problem(f"{DP}.hosts[0]", "names an unknown partner", "'mars'", "uk, fr, us")]),
    ({"compliance": {"denied_parties": [{"id": "d", "hosts": ["us"]}]}},
     [Problem(DP, "lists nobody", None, "institutions, countries or both")]),
    # residency
    ({"compliance": {"residency": [{"id": "r", "themes": ["knitting"], "countries": ["GB"],
                                    "partners": ["mars"]}]}},
     [Problem(f"{RS}.themes[0]", "names an unknown theme", "'knitting'", "climate, biomedicine"),
      Problem(f"{RS}.partners[0]", "names an unknown partner", "'mars'", "uk, fr, us")]),
    ({"compliance": {"residency": [{"id": "r", "themes": ["climate"]}]}},
     [Problem(RS, "needs themes and countries", None, NEEDS_BOTH)]),
    ({"compliance": {"residency": [{"id": "r", "countries": ["GB"]}]}},
     [Problem(RS, "needs themes and countries", None, NEEDS_BOTH)]),
])
def test_each_mistake_in_compliance_is_located_and_explained(doc: Doc, expected: list[Problem]) -> None:
    assert parse(doc)[1] == expected


ALLOWED = "a number from 0 to 10"


@pytest.mark.parametrize(("allocations", "policy", "expected"), [
    ({}, AllocationPolicy(0.8, 0.95, 1.0), []),
    ({"warn_at": 0.9, "lower_at": 0.9, "hold_at": 1.5}, AllocationPolicy(0.9, 0.9, 1.5), []),
    ({"warn_at": 0.5, "lower_at": 1.0, "hold_at": 1.0}, AllocationPolicy(0.5, 1.0, 1.0), []),
    ({"hold_at": 10}, AllocationPolicy(0.8, 0.95, 10.0), []),
    ({"hold_at": 10.5}, AllocationPolicy(0.8, 0.95, 1.0),
     [Problem("allocations.hold_at", "is out of range", "10.5", ALLOWED)]),
    ({"warn_at": -0.1}, AllocationPolicy(0.8, 0.95, 1.0),
     [Problem("allocations.warn_at", "is out of range", "-0.1", ALLOWED)]),
    ({"warn_at": 0.9, "lower_at": 0.5}, AllocationPolicy(0.9, 0.5, 1.0),
     [Problem("allocations", "thresholds must not decrease", "'0.9, 0.5, 1.0'",
              "warn_at ≤ lower_at ≤ hold_at")]),
    ({"warn": 0.5}, AllocationPolicy(0.8, 0.95, 1.0),
     [Problem("allocations.warn", "unknown field", "'warn'", "hold_at, lower_at, warn_at")]),
    (5, AllocationPolicy(0.8, 0.95, 1.0), [Problem("allocations", "must be a table", "5", "a [table]")]),
])
def test_allocation_thresholds_are_read_and_checked(
        allocations: object, policy: AllocationPolicy, expected: list[Problem]) -> None:
    rules, problems = parse({"allocations": allocations})
    assert (rules.allocations, problems) == (policy, expected)


@pytest.mark.parametrize(("doc", "where", "got"), [
    ({"compliance": {"residency": [{"id": "r", "themes": ["climate"], "countries": ["gb"]}]}},
     "compliance.residency[0].countries[0]", "'gb'"),
    ({"compliance": {"residency": [{"id": "r", "themes": ["climate"], "countries": ["GB", "Britain"]}]}},
     "compliance.residency[0].countries[1]", "'Britain'"),
    ({"compliance": {"denied_parties": [{"id": "d", "countries": ["ÉÉ"]}]}},
     "compliance.denied_parties[0].countries[0]", "'ÉÉ'"),
])
def test_rule_countries_are_iso_codes_in_ascii(doc: Doc, where: str, got: str) -> None:
    """A residency rule's countries were not checked at all (a typo made every job of the theme
    unplaceable, silently), and two non-ASCII capitals passed for a code."""
    assert parse(doc)[1] == [Problem(where, ISO, got, COUNTRY)]
