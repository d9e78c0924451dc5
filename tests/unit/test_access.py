"""Access rules, compliance rules and allocation grading: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.adapters.federation_file import parse_federation_text
from accord.domain.access import rules as ac
from accord.domain.access.compliance import (
    AllocationPolicy,
    Compliance,
    DeniedPartyRule,
    Grade,
    LargeRunRule,
    ResidencyRule,
    denied_party,
    grade,
    large_run,
    residency,
)
from accord.domain.access.rules import (
    Affiliation,
    AffiliationKind,
    Grant,
    JobFacts,
    Principal,
    Role,
    ScopeKind,
    TokenScope,
)
from accord.domain.errors import Forbidden, InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.place import place
from accord.domain.placement.records import Verdict
from tests.conftest import SMALL_FEDERATION

DAY = date(2026, 11, 2)
AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
UK = Affiliation("bristol", "uk")
JOB = JobFacts("j1", owner="alice", project="p1", requester="uk", site="paris", host="fr")


def who(user: str = "bob", *grants: Grant, member: tuple[str, ...] = (), pi: tuple[str, ...] = (),
        scopes: frozenset[TokenScope] | None = None, affs: tuple[Affiliation, ...] = (UK,)) -> Principal:
    return Principal(user, user, affs, grants, frozenset(member) | frozenset(pi), frozenset(pi), scopes)


# ── affiliations ──────────────────────────────────────────────────────────────────────
def test_secondments_are_time_bounded_and_placements_do_not_count_for_compliance() -> None:
    kaist = Affiliation("kaist", "kr", AffiliationKind.SECONDMENT, date(2026, 10, 1), date(2026, 12, 31))
    visit = Affiliation("inria", "fr", AffiliationKind.PLACEMENT, date(2026, 11, 1), date(2026, 11, 30))
    p = who("ana", affs=(UK, kaist, visit))
    assert p.partners(DAY) == {"uk", "kr", "fr"}
    assert p.partners(DAY, for_compliance=True) == {"uk", "kr"}
    assert p.partners(date(2027, 1, 1)) == {"uk"}          # both ended
    assert p.partners(date(2026, 9, 30)) == {"uk"}         # neither started
    assert p.institution_for("kr", DAY) == kaist
    assert p.institution_for("kr", date(2027, 1, 1)) is None


# ── who may see and change a job ─────────────────────────────────────────────────────
CASES = [
    # (principal, read, change, logs)
    (who("alice"), True, True, True),                                           # owner
    (who("bob", member=("p1",)), True, False, True),                            # project member
    (who("bob", pi=("p1",)), True, True, True),                                 # project PI
    (who("bob", member=("p2",)), False, False, False),                          # other project
    (who("bob", Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "paris")), True, True, False),
    (who("bob", Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "bristol")), False, False, False),
    (who("bob", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "fr")), True, False, False),
    (who("bob", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "kr")), False, False, False),
    (who("bob", Grant(Role.AUDITOR, ScopeKind.GLOBAL)), True, False, False),
    (who("bob", Grant(Role.ADMIN, ScopeKind.GLOBAL)), True, True, True),
    (who("bob"), False, False, False),                                          # a stranger
]


@pytest.mark.parametrize(("p", "read", "change", "logs"), CASES)
def test_job_rules(p: Principal, read: bool, change: bool, logs: bool) -> None:
    assert ac.can_read_job(p, JOB).allowed is read
    assert ac.can_change_job(p, JOB).allowed is change
    assert ac.can_read_logs(p, JOB).allowed is logs


def test_a_token_narrows_but_never_widens() -> None:
    owner = who("alice", scopes=frozenset({TokenScope.JOBS_READ}))
    assert ac.can_read_job(owner, JOB).allowed
    refused = ac.can_change_job(owner, JOB)
    assert not refused.allowed
    assert "jobs:write" in refused.explain()
    admin_read_only = who("root", Grant(Role.ADMIN, ScopeKind.GLOBAL),
                          scopes=frozenset({TokenScope.JOBS_READ}))
    assert not ac.can_manage_users(admin_read_only).allowed
    assert ac.can_manage_users(who("root", Grant(Role.ADMIN, ScopeKind.GLOBAL),
                                   scopes=frozenset({TokenScope.ADMIN}))).allowed


def test_refusals_name_the_rule_and_facts_and_can_hide_existence() -> None:
    r = ac.can_read_agreement(who(), ("uk", "fr"), "uk-fr")
    assert not r.allowed and "agreement=uk-fr" in r.explain()
    with pytest.raises(Forbidden, match="uk-fr"):
        r.require()
    with pytest.raises(Forbidden, match=r"^does not exist or is not yours$"):
        r.require("does not exist or is not yours")


def test_allocations_are_decided_only_by_an_officer_of_the_granting_partner() -> None:
    officer = who("o", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "fr"))
    assert ac.can_decide_allocation(officer, "fr").allowed
    assert not ac.can_decide_allocation(who("o", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "uk")),
                                        "fr").allowed
    assert not ac.can_decide_allocation(who("root", Grant(Role.ADMIN, ScopeKind.GLOBAL)), "fr").allowed


def test_only_an_operator_of_the_site_decides_a_held_run() -> None:
    op = who("o", Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "paris"))
    assert ac.can_decide_compliance(op, "paris").allowed
    assert not ac.can_decide_compliance(op, "bristol").allowed
    assert not ac.can_decide_compliance(who("root", Grant(Role.ADMIN, ScopeKind.GLOBAL)), "paris").allowed


def test_audit_records_are_scoped_for_partner_auditors() -> None:
    fr_auditor = who("a", Grant(Role.AUDITOR, ScopeKind.PARTNER, "fr"))
    assert ac.sees_audit_record(fr_auditor, ("uk", "fr"))
    assert not ac.sees_audit_record(fr_auditor, ("uk",))
    assert ac.sees_audit_record(who("a", Grant(Role.AUDITOR, ScopeKind.GLOBAL)), ())
    assert not ac.can_audit(who()).allowed


# ── who may correct a ledger entry ───────────────────────────────────────────────────
# An entry of a uk job run at fr's Paris site: a correction takes units from the host, fr.
WRITE = frozenset({TokenScope.LEDGER_WRITE})
READ = frozenset({TokenScope.LEDGER_READ})
ADMIN_GRANT = Grant(Role.ADMIN, ScopeKind.GLOBAL)
PO = Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "fr")
CORRECTORS = [
    # (who, allowed, the rule's words)
    (who("root", ADMIN_GRANT), True, "admin"),
    (who("root", ADMIN_GRANT, scopes=WRITE), True, "admin"),
    (who("root", ADMIN_GRANT, scopes=frozenset({TokenScope.ADMIN})), True, "admin"),
    (who("root", ADMIN_GRANT, scopes=READ), False, "lacks a scope (needs=ledger:write"),
    (who("pofr", PO), True, "programme officer of the host partner (host=fr)"),
    (who("pofr", PO, scopes=WRITE), True, "programme officer of the host partner (host=fr)"),
    (who("pofr", PO, scopes=READ), False, "lacks a scope (needs=ledger:write"),
    (who("pofr", PO, scopes=frozenset({TokenScope.JOBS_WRITE})), False, "needs=ledger:write"),
    # officers of another partner, the requester's included
    (who("pouk", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "uk"), scopes=WRITE), False,
     "only the operator or the host partner's programme officer"),
    (who("pokr", Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "kr")), False,
     "only the operator or the host partner's programme officer"),
    # a researcher, with a ledger:write token and with no token at all
    (who("alice", scopes=WRITE), False, "only the operator or the host partner's programme officer"),
    (who("alice"), False, "only the operator or the host partner's programme officer"),
    (who("alice", member=("proj",), pi=("proj",), scopes=WRITE), False,
     "only the operator or the host partner's programme officer"),
    # other roles, even of the host, even with ledger:write
    (who("audfr", Grant(Role.AUDITOR, ScopeKind.PARTNER, "fr"), scopes=WRITE), False,
     "only the operator or the host partner's programme officer"),
    (who("aud", Grant(Role.AUDITOR, ScopeKind.GLOBAL), scopes=WRITE), False,
     "only the operator or the host partner's programme officer"),
    (who("opfr", Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "paris"), scopes=WRITE), False,
     "only the operator or the host partner's programme officer"),
]


@pytest.mark.parametrize(("p", "allowed", "rule"), CORRECTORS)
def test_who_may_correct_an_entry(p: Principal, allowed: bool, rule: str) -> None:
    decided = ac.can_correct(p, "fr")
    assert decided.allowed is allowed
    assert rule in decided.explain()


@given(st.sampled_from(list(Role)), st.sampled_from(["uk", "fr", "kr", ""]),
       st.text(min_size=1, max_size=8))
def test_nobody_without_a_tie_reads_a_job(role: Role, target: str, user: str) -> None:
    """Property: a caller who is not the owner, not in the project, not operating its site,
    not overseeing its partners and not an admin or global auditor never reads the job."""
    if user == "alice":
        return
    scope = ScopeKind.GLOBAL if role in (Role.ADMIN,) else ScopeKind.PARTNER
    g = Grant(role, scope, target if scope is ScopeKind.PARTNER else "")
    p = who(user, g)
    tied = role is Role.ADMIN or (role in (Role.PROGRAMME_OFFICER, Role.AUDITOR) and target in ("uk", "fr"))
    assert ac.can_read_job(p, JOB).allowed is tied


# ── compliance rules ─────────────────────────────────────────────────────────────────
RULES = Compliance(
    large_runs=(LargeRunRule("scrutiny", hosts=("us",), gpu_hours=1000, flop=1e21),),
    denied_parties=(DeniedPartyRule("denied", institutions=("acme",), countries=("XX",)),),
    residency=(ResidencyRule("bio-home", ("biomedicine",), ("GB",), ("uk",)),),
)


def test_large_runs_abroad_by_unaffiliated_users_are_held() -> None:
    held = large_run(RULES, host="us", gpus=64, time_limit_s=24 * 3600, peak_tflops=None,
                     affiliated=frozenset({"uk"}))
    assert held is not None and held.rule == "scrutiny"
    assert ("gpu_hours", "1536") in held.facts and "1000 GPU-hours" in held.message
    assert large_run(RULES, host="us", gpus=64, time_limit_s=24 * 3600, peak_tflops=None,
                     affiliated=frozenset({"uk", "us"})) is None          # affiliated with the host
    assert large_run(RULES, host="fr", gpus=64, time_limit_s=24 * 3600, peak_tflops=None,
                     affiliated=frozenset({"uk"})) is None                # rule not for this host
    small = large_run(RULES, host="us", gpus=8, time_limit_s=3600, peak_tflops=None, affiliated=frozenset())
    assert small is None


def test_the_flop_threshold_uses_the_models_peak() -> None:
    # 8 GPUs x 10 h x 989 TFLOP/s = 2.8e20 FLOP: under 1e21; 40 GPUs x 24 h (960 GPU-h) = 3.4e21: over
    assert large_run(RULES, host="us", gpus=8, time_limit_s=36000, peak_tflops=989,
                     affiliated=frozenset()) is None
    held = large_run(RULES, host="us", gpus=40, time_limit_s=24 * 3600, peak_tflops=989,
                     affiliated=frozenset())
    assert held is not None and "FLOP" in held.message


def test_denied_parties_and_residency() -> None:
    assert denied_party(RULES, "acme", "GB") is not None
    assert denied_party(RULES, "bristol", "XX") is not None
    assert denied_party(RULES, "bristol", "GB") is None
    countries, found = residency(RULES, "biomedicine", "uk")
    assert countries == ("GB",) and found[0].rule == "bio-home"
    assert residency(RULES, "biomedicine", "fr") == ((), ())
    assert residency(RULES, "climate", "uk") == ((), ())


@given(st.floats(1, 1e6), st.floats(0, 2e6), st.floats(0, 1e6))
def test_grade_is_monotone_in_use(amount: float, used: float, cost: float) -> None:
    order = [Grade.OK, Grade.WARN, Grade.LOWER, Grade.HOLD]
    p = AllocationPolicy()
    assert order.index(grade(p, amount, used, cost)) <= order.index(grade(p, amount, used + 1, cost))


def test_grade_thresholds() -> None:
    p = AllocationPolicy(0.5, 0.75, 1.0)
    grades = [grade(p, 100, u, 0).value for u in (50, 51, 76, 100, 101)]
    assert grades == ["ok", "warn", "lower", "lower", "hold"]


# ── rules in the federation file ─────────────────────────────────────────────────────
def test_compliance_section_is_parsed_and_checked() -> None:
    fed = parse_federation_text(SMALL_FEDERATION + """
[[compliance.large_runs]]
id = "big"
hosts = ["fr"]
gpu_hours = 500
[[compliance.denied_parties]]
id = "deny"
countries = ["XX"]
[[compliance.residency]]
id = "stay"
themes = ["climate"]
countries = ["GB"]
[allocations]
warn_at = 0.7
""", "f.toml")
    assert fed.compliance.large_runs[0].gpu_hours == 500
    assert fed.compliance.allocations.warn_at == 0.7 and fed.compliance.allocations.hold_at == 1.0
    with pytest.raises(InvalidInput) as exc:
        parse_federation_text(SMALL_FEDERATION + """
[[compliance.large_runs]]
id = "big"
hosts = ["mars"]
[[compliance.residency]]
id = "stay"
themes = ["knitting"]
countries = ["GB"]
[allocations]
warn_at = 0.9
lower_at = 0.5
[compliance]
nonsense = 1
""", "f.toml")
    text = str(exc.value)
    for expected in ("compliance.large_runs[0].hosts[0]", "mars", "needs a threshold",
                     "compliance.residency[0].themes[0]", "knitting", "thresholds must not decrease",
                     "nonsense"):
        assert expected in text, expected


# ── placement: sectors and allocations ───────────────────────────────────────────────
@pytest.fixture(scope="module")
def fed() -> Federation:
    return parse_federation_text(SMALL_FEDERATION, "small.toml")


def spec(**kw: object) -> JobSpec:
    base: dict[str, object] = {"name": "j", "gpus": 8, "time_limit_s": 3600, "partner": "uk",
                               "theme": "climate"}
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_an_agreements_sectors_admit_or_refuse_the_submitter(fed: Federation) -> None:
    # 8 GPUs fit only in Paris (uk's Bristol has 4): the agreement decides
    assert place(spec(sector="academia"), fed, {}, AT).chosen.site == "paris"  # type: ignore[union-attr]
    d = place(spec(sector="industry"), fed, {}, AT)
    assert d.verdict is Verdict.REJECT
    assert "open to the academia sector(s), not industry" in d.explain()


def test_a_registered_project_runs_abroad_only_under_its_allocations(fed: Federation) -> None:
    none = PlacementContext(allocations={"p1": frozenset()})
    d = place(spec(project="p1"), fed, {}, AT, context=none)
    assert d.verdict is Verdict.REJECT
    assert "project p1 holds no approved allocation under agreement uk-fr at paris" in d.explain()
    held = PlacementContext(allocations={"p1": frozenset({("uk-fr", "paris")})})
    assert place(spec(project="p1"), fed, {}, AT, context=held).chosen.site == "paris"  # type: ignore[union-attr]
    other = PlacementContext(allocations={"p2": frozenset()})      # p1 is not limited
    assert place(spec(project="p1"), fed, {}, AT, context=other).chosen.site == "paris"  # type: ignore[union-attr]


def test_host_specific_denied_parties_apply_only_at_those_hosts() -> None:
    rules = Compliance(denied_parties=(DeniedPartyRule("no-us", countries=("KR",), hosts=("us",)),))
    assert denied_party(rules, "kaist", "KR") is None                 # not barred everywhere
    assert denied_party(rules, "kaist", "KR", "fr") is None
    found = denied_party(rules, "kaist", "KR", "us")
    assert found is not None and found.rule == "no-us"
