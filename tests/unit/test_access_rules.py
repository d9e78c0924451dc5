"""Access rules as their callers see them: every decision's rule text and facts, exactly.

A decision is more than allowed / refused: the API turns a refusal into a 403 whose
message is :meth:`Access.explain`, the audit log records the rule and its facts, and a
partner reading either must learn which rule decided and on what grounds. So these
tables write out, by hand, the whole decision each rule returns: a changed word, a
dropped fact or a wrong boundary is a change a user or partner would see.

Each decision is made inside the test (never at import), so the rules run when the test
runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from accord.domain.access import rules as ac
from accord.domain.access.rules import (
    Access,
    Affiliation,
    AffiliationKind,
    Grant,
    JobFacts,
    Principal,
    ProjectFacts,
    Role,
    ScopeKind,
    TokenScope,
)
from accord.domain.errors import Forbidden

DAY = date(2026, 11, 2)
UK = Affiliation("bristol", "uk")
FR = Affiliation("inria", "fr")
# alice's uk job, run at fr's Paris site
JOB = JobFacts("j1", owner="alice", project="p1", requester="uk", site="paris", host="fr")
# a uk project led by pia, with one other member, holding an allocation from fr
PROJECT = ProjectFacts("p1", pi="pia", partner="uk", members=frozenset({"pia", "mo"}),
                       granting=frozenset({"fr"}))

ADMIN = Grant(Role.ADMIN, ScopeKind.GLOBAL)
AUDITOR = Grant(Role.AUDITOR, ScopeKind.GLOBAL)
AUDITOR_FR = Grant(Role.AUDITOR, ScopeKind.PARTNER, "fr")
PO_UK = Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "uk")
PO_FR = Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "fr")
OP_PARIS = Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "paris")
OP_BRISTOL = Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "bristol")

# the refusals' words, as a 403 shows them
NO_CHANGE = "only the owner, the project's PI, the site's operator or an admin may change a job"
NO_BOOKS = "only programme officers and auditors of its parties may read an agreement's books"
NO_CORRECT = "only the operator or the host partner's programme officer may correct an entry"
NO_CLOSE = "only the operator (admin) closes periods"
NO_AUDIT = "only auditors and the operator may do this"
NO_HOME = "a project's home partner must be one you are affiliated with today"
NO_ALLOCATION = "only a programme officer of the granting partner decides"
NO_HELD_RUN = "only an operator of the site the job would run at decides"


def who(user: str = "bob", *grants: Grant, member: tuple[str, ...] = (), pi: tuple[str, ...] = (),
        scopes: frozenset[TokenScope] | None = None, affs: tuple[Affiliation, ...] = (UK,)) -> Principal:
    """A caller: ``member`` and ``pi`` are projects; ``scopes`` narrows them to a token."""
    return Principal(user, user, affs, grants, frozenset(member) | frozenset(pi), frozenset(pi), scopes)


def token(*scopes: TokenScope) -> frozenset[TokenScope]:
    return frozenset(scopes)


# ── affiliations: a bounded one holds on its first and its last day ───────────────────
SECONDMENT = Affiliation("kaist", "kr", AffiliationKind.SECONDMENT, date(2026, 10, 1), date(2026, 12, 31))
FROM_OCT = Affiliation("kaist", "kr", AffiliationKind.SECONDMENT, start=date(2026, 10, 1))
UNTIL_DEC = Affiliation("kaist", "kr", AffiliationKind.SECONDMENT, end=date(2026, 12, 31))
ONE_DAY = Affiliation("kaist", "kr", AffiliationKind.SECONDMENT, date(2026, 11, 2), date(2026, 11, 2))


@pytest.mark.parametrize(("aff", "day", "active"), [
    pytest.param(SECONDMENT, date(2026, 9, 30), False, id="day before start"),
    pytest.param(SECONDMENT, date(2026, 10, 1), True, id="first day"),
    pytest.param(SECONDMENT, date(2026, 11, 15), True, id="midway"),
    pytest.param(SECONDMENT, date(2026, 12, 31), True, id="last day (end is inclusive)"),
    pytest.param(SECONDMENT, date(2027, 1, 1), False, id="day after end"),
    pytest.param(FROM_OCT, date(2026, 10, 1), True, id="open-ended, first day"),
    pytest.param(FROM_OCT, date(2026, 9, 30), False, id="open-ended, day before"),
    pytest.param(FROM_OCT, date(2099, 1, 1), True, id="open-ended, years on"),
    pytest.param(UNTIL_DEC, date(2000, 1, 1), True, id="no start, long before the end"),
    pytest.param(UNTIL_DEC, date(2026, 12, 31), True, id="no start, last day"),
    pytest.param(UNTIL_DEC, date(2027, 1, 1), False, id="no start, day after end"),
    pytest.param(ONE_DAY, date(2026, 11, 2), True, id="a one-day visit, that day"),
    pytest.param(ONE_DAY, date(2026, 11, 1), False, id="a one-day visit, the day before"),
    pytest.param(ONE_DAY, date(2026, 11, 3), False, id="a one-day visit, the day after"),
    pytest.param(Affiliation("kaist", "kr"), date(1990, 1, 1), True, id="an unbounded affiliation"),
])
def test_an_affiliation_holds_from_its_first_to_its_last_day(aff: Affiliation, day: date,
                                                              active: bool) -> None:
    assert aff.active(day) is active
    p = who("ana", affs=(UK, aff))
    assert p.partners(day) == ({"uk", "kr"} if active else {"uk"})
    assert p.institution_for("kr", day) == (aff if active else None)


@pytest.mark.parametrize(("day", "decision"), [
    pytest.param(date(2026, 9, 30),
                 Access(False, NO_HOME, (("partner", "kr"), ("yours", "uk"))),
                 id="the day before the secondment"),
    pytest.param(date(2026, 10, 1),
                 Access(True, "affiliated with the home partner", (("partner", "kr"),)),
                 id="its first day"),
    pytest.param(date(2026, 12, 31),
                 Access(True, "affiliated with the home partner", (("partner", "kr"),)),
                 id="its last day"),
    pytest.param(date(2027, 1, 1),
                 Access(False, NO_HOME, (("partner", "kr"), ("yours", "uk"))), id="the day after it ends"),
])
def test_a_secondee_may_start_a_host_project_on_the_first_and_last_day_of_the_secondment(
        day: date, decision: Access) -> None:
    assert ac.can_create_project(who("ana", affs=(UK, SECONDMENT)), "kr", day) == decision


# ── scoped grants: the sites or partners a role is held for ────────────────────────────
OP_LYON = Grant(Role.SITE_OPERATOR, ScopeKind.SITE, "lyon")
MANY_HATS = who("hat", AUDITOR_FR, AUDITOR, PO_UK, OP_PARIS, OP_LYON)


@pytest.mark.parametrize(("p", "role", "targets"), [
    pytest.param(MANY_HATS, Role.SITE_OPERATOR, {"paris", "lyon"}, id="operator of two sites"),
    pytest.param(MANY_HATS, Role.AUDITOR, {"fr"}, id="global auditor grant is not a target"),
    pytest.param(MANY_HATS, Role.PROGRAMME_OFFICER, {"uk"}, id="officer of one partner"),
    pytest.param(MANY_HATS, Role.ADMIN, set(), id="a role not held"),
    pytest.param(who("aud", AUDITOR), Role.AUDITOR, set(), id="only a global grant"),
    pytest.param(who("po", PO_FR), Role.SITE_OPERATOR, set(), id="another role's target"),
])
def test_scoped_targets_are_that_roles_own_sites_or_partners(p: Principal, role: Role,
                                                             targets: set[str]) -> None:
    """What the reconcile report and the audit log filter by: only this role's scoped grants."""
    assert p.scoped_targets(role) == targets


# ── every decision, written out ──────────────────────────────────────────────────────
STRANGER = who("bob")
ROOT = who("root", ADMIN)
PO_KR = Grant(Role.PROGRAMME_OFFICER, ScopeKind.PARTNER, "kr")
AUDITOR_UK = Grant(Role.AUDITOR, ScopeKind.PARTNER, "uk")

DECISIONS = [
    # can_read_job: owner, project member, site operator, overseer of a partner, admin
    pytest.param(lambda: ac.can_read_job(ROOT, JOB), Access(True, "admin"), id="job: admin reads"),
    pytest.param(lambda: ac.can_read_job(who("alice"), JOB), Access(True, "owner of the job"),
                 id="job: owner reads"),
    pytest.param(lambda: ac.can_read_job(who("bob", member=("p1",)), JOB),
                 Access(True, "member of the job's project", (("project", "p1"),)),
                 id="job: project member reads"),
    pytest.param(lambda: ac.can_read_job(who("bob", OP_PARIS), JOB),
                 Access(True, "operator of the job's site", (("site", "paris"),)),
                 id="job: site operator reads"),
    pytest.param(lambda: ac.can_read_job(who("bob", PO_FR), JOB),
                 Access(True, "programme officer or auditor of a partner the job involves"),
                 id="job: host's officer reads"),
    pytest.param(lambda: ac.can_read_job(who("bob", AUDITOR_FR), JOB),
                 Access(True, "programme officer or auditor of a partner the job involves"),
                 id="job: host's auditor reads"),
    pytest.param(lambda: ac.can_read_job(STRANGER, JOB),
                 Access(False, "not the owner, a member of its project, its site's operator or an overseer"),
                 id="job: stranger refused"),
    pytest.param(lambda: ac.can_read_job(who("bob", OP_BRISTOL), JOB),
                 Access(False, "not the owner, a member of its project, its site's operator or an overseer"),
                 id="job: another site's operator refused"),
    # can_change_job: owner, the project's PI, site operator, admin
    pytest.param(lambda: ac.can_change_job(ROOT, JOB), Access(True, "admin"), id="cancel: admin"),
    pytest.param(lambda: ac.can_change_job(who("alice"), JOB), Access(True, "owner of the job"),
                 id="cancel: owner"),
    pytest.param(lambda: ac.can_change_job(who("bob", pi=("p1",)), JOB),
                 Access(True, "PI of the job's project", (("project", "p1"),)), id="cancel: PI"),
    pytest.param(lambda: ac.can_change_job(who("bob", OP_PARIS), JOB),
                 Access(True, "operator of the job's site", (("site", "paris"),)),
                 id="cancel: site operator"),
    pytest.param(lambda: ac.can_change_job(who("bob", member=("p1",)), JOB),
                 Access(False, NO_CHANGE),
                 id="cancel: a member is refused"),
    pytest.param(lambda: ac.can_change_job(who("bob", PO_FR), JOB),
                 Access(False, NO_CHANGE),
                 id="cancel: an officer is refused"),
    # can_read_logs: owner, project members, admin
    pytest.param(lambda: ac.can_read_logs(ROOT, JOB), Access(True, "owner of the job or admin"),
                 id="logs: admin"),
    pytest.param(lambda: ac.can_read_logs(who("alice"), JOB), Access(True, "owner of the job or admin"),
                 id="logs: owner"),
    pytest.param(lambda: ac.can_read_logs(who("bob", member=("p1",)), JOB),
                 Access(True, "member of the job's project", (("project", "p1"),)), id="logs: member"),
    pytest.param(lambda: ac.can_read_logs(who("bob", OP_PARIS), JOB),
                 Access(False, "a job's output is for its owner and its project's members"),
                 id="logs: site operator refused"),
    pytest.param(lambda: ac.can_read_logs(who("bob", AUDITOR), JOB),
                 Access(False, "a job's output is for its owner and its project's members"),
                 id="logs: auditor refused"),
    # can_read_agreement: overseers of a party, admin
    pytest.param(lambda: ac.can_read_agreement(ROOT, ("uk", "fr"), "uk-fr"), Access(True, "admin"),
                 id="agreement: admin"),
    pytest.param(lambda: ac.can_read_agreement(who("po", PO_UK), ("uk", "fr"), "uk-fr"),
                 Access(True, "programme officer or auditor of a party", (("agreement", "uk-fr"),)),
                 id="agreement: a party's officer"),
    pytest.param(lambda: ac.can_read_agreement(who("po", PO_KR), ("uk", "fr"), "uk-fr"),
                 Access(False, NO_BOOKS, (("agreement", "uk-fr"),)),
                 id="agreement: another partner's officer refused"),
    # can_correct: admin, the host partner's officer
    pytest.param(lambda: ac.can_correct(ROOT, "fr"), Access(True, "admin"), id="correct: admin"),
    pytest.param(lambda: ac.can_correct(who("po", PO_FR), "fr"),
                 Access(True, "programme officer of the host partner", (("host", "fr"),)),
                 id="correct: host's officer"),
    pytest.param(lambda: ac.can_correct(who("po", PO_UK), "fr"),
                 Access(False, NO_CORRECT),
                 id="correct: requester's officer refused"),
    # can_operate_ledger: admin only
    pytest.param(lambda: ac.can_operate_ledger(ROOT), Access(True, "admin"), id="close period: admin"),
    pytest.param(lambda: ac.can_operate_ledger(who("po", PO_FR)),
                 Access(False, NO_CLOSE), id="close period: officer refused"),
    # can_audit: admin and auditors
    pytest.param(lambda: ac.can_audit(ROOT), Access(True, "admin or auditor"), id="audit: admin"),
    pytest.param(lambda: ac.can_audit(who("aud", AUDITOR_FR)), Access(True, "admin or auditor"),
                 id="audit: partner auditor"),
    pytest.param(lambda: ac.can_audit(who("op", OP_PARIS)),
                 Access(False, NO_AUDIT), id="audit: operator refused"),
    # can_reconcile: site operators too
    pytest.param(lambda: ac.can_reconcile(who("op", OP_PARIS)), Access(True, "site operator"),
                 id="reconcile: site operator"),
    pytest.param(lambda: ac.can_reconcile(who("aud", AUDITOR)), Access(True, "admin or auditor"),
                 id="reconcile: auditor"),
    pytest.param(lambda: ac.can_reconcile(who("po", PO_FR)),
                 Access(False, NO_AUDIT), id="reconcile: officer refused"),
    # can_read_project: members, the PI, overseers of its home or granting partners, admin
    pytest.param(lambda: ac.can_read_project(ROOT, PROJECT), Access(True, "admin"), id="project: admin"),
    pytest.param(lambda: ac.can_read_project(who("pia"), PROJECT), Access(True, "member of the project"),
                 id="project: PI"),
    pytest.param(lambda: ac.can_read_project(who("mo"), PROJECT), Access(True, "member of the project"),
                 id="project: a member who is not the PI"),
    pytest.param(lambda: ac.can_read_project(who("pia"), ProjectFacts("p2", pi="pia", partner="uk")),
                 Access(True, "member of the project"), id="project: PI not listed among members"),
    pytest.param(lambda: ac.can_read_project(who("po", PO_FR), PROJECT),
                 Access(True, "programme officer or auditor of its home or granting partner"),
                 id="project: granting partner's officer"),
    pytest.param(lambda: ac.can_read_project(who("aud", AUDITOR_UK), PROJECT),
                 Access(True, "programme officer or auditor of its home or granting partner"),
                 id="project: home partner's auditor"),
    pytest.param(lambda: ac.can_read_project(STRANGER, PROJECT),
                 Access(False, "only its members and their partners' officers may see a project"),
                 id="project: stranger refused"),
    # can_manage_project: the PI, admin
    pytest.param(lambda: ac.can_manage_project(ROOT, PROJECT), Access(True, "PI of the project or admin"),
                 id="manage project: admin"),
    pytest.param(lambda: ac.can_manage_project(who("pia"), PROJECT),
                 Access(True, "PI of the project or admin"),
                 id="manage project: PI"),
    pytest.param(lambda: ac.can_manage_project(who("mo"), PROJECT),
                 Access(False, "only the project's PI may do this", (("project", "p1"),)),
                 id="manage project: member refused"),
    # can_create_project: affiliated today with the home partner, or admin
    pytest.param(lambda: ac.can_create_project(who("ana"), "uk", DAY),
                 Access(True, "affiliated with the home partner", (("partner", "uk"),)),
                 id="create project: affiliated"),
    pytest.param(lambda: ac.can_create_project(who("root", ADMIN, affs=()), "kr", DAY),
                 Access(True, "affiliated with the home partner", (("partner", "kr"),)),
                 id="create project: admin"),
    pytest.param(lambda: ac.can_create_project(who("ana"), "kr", DAY),
                 Access(False, NO_HOME, (("partner", "kr"), ("yours", "uk"))),
                 id="create project: one affiliation"),
    pytest.param(lambda: ac.can_create_project(who("ana", affs=(UK, FR)), "kr", DAY),
                 Access(False, NO_HOME, (("partner", "kr"), ("yours", "fr,uk"))),
                 id="create project: two affiliations, sorted"),
    pytest.param(lambda: ac.can_create_project(who("ana", affs=()), "kr", DAY),
                 Access(False, NO_HOME, (("partner", "kr"), ("yours", "none"))),
                 id="create project: no affiliation"),
    # can_decide_allocation: an officer of the granting partner (not admin)
    pytest.param(lambda: ac.can_decide_allocation(who("po", PO_FR), "fr"),
                 Access(True, "programme officer of the granting partner", (("partner", "fr"),)),
                 id="allocation: granting officer"),
    pytest.param(lambda: ac.can_decide_allocation(ROOT, "fr"),
                 Access(False, NO_ALLOCATION, (("partner", "fr"),)),
                 id="allocation: admin refused"),
    # can_read_compliance: admin, auditors, site operators, programme officers
    pytest.param(lambda: ac.can_read_compliance(who("op", OP_BRISTOL)),
                 Access(True, "admin, auditor, site operator or programme officer"),
                 id="compliance report: operator"),
    pytest.param(lambda: ac.can_read_compliance(who("alice", pi=("p1",))),
                 Access(False, "only operators, officers and auditors see the compliance report"),
                 id="compliance report: PI refused"),
    # can_decide_compliance: an operator of the site the run would use
    pytest.param(lambda: ac.can_decide_compliance(who("op", OP_PARIS), "paris"),
                 Access(True, "operator of the site", (("site", "paris"),)), id="held run: site operator"),
    pytest.param(lambda: ac.can_decide_compliance(who("op", OP_BRISTOL), "paris"),
                 Access(False, NO_HELD_RUN, (("site", "paris"),)),
                 id="held run: another site's operator refused"),
    # can_manage_users: admin
    pytest.param(lambda: ac.can_manage_users(ROOT), Access(True, "admin"), id="users: admin"),
    pytest.param(lambda: ac.can_manage_users(who("po", PO_FR)),
                 Access(False, "only an admin manages users and roles"), id="users: officer refused"),
]


@pytest.mark.parametrize(("decide", "decision"), DECISIONS)
def test_each_rule_says_which_rule_decided_and_on_what_facts(decide: Callable[[], Access],
                                                             decision: Access) -> None:
    assert decide() == decision


# ── a token narrows a caller; its refusal names the scope it needed and the ones it had ─
def lacks(needs: str, had: str) -> Access:
    return Access(False, "the API token used lacks a scope", (("needs", needs), ("token_scopes", had)))


TOKENS = [
    pytest.param(lambda: ac.can_change_job(
                     who("alice", scopes=token(TokenScope.JOBS_READ, TokenScope.PROJECTS_READ)), JOB),
                 lacks("jobs:write", "jobs:read,projects:read"), id="owner with a read-only token cancels"),
    pytest.param(lambda: ac.can_read_job(who("alice", scopes=token()), JOB), lacks("jobs:read", ""),
                 id="a token with no scopes"),
    pytest.param(lambda: ac.can_correct(who("po", PO_FR, scopes=token(TokenScope.LEDGER_READ)), "fr"),
                 lacks("ledger:write", "ledger:read"), id="officer corrects with a ledger:read token"),
    pytest.param(lambda: ac.can_manage_users(who("root", ADMIN, scopes=token(
                     TokenScope.PROJECTS_WRITE, TokenScope.JOBS_WRITE, TokenScope.COMPLIANCE))),
                 lacks("admin", "compliance,jobs:write,projects:write"), id="three scopes, sorted"),
    # the audit log takes audit:read: ledger:read reads the books, not who did what
    pytest.param(lambda: ac.can_audit(who("aud", AUDITOR, scopes=token(TokenScope.AUDIT_READ))),
                 Access(True, "admin or auditor"), id="audit with audit:read only"),
    pytest.param(lambda: ac.can_audit(who("aud", AUDITOR, scopes=token(TokenScope.LEDGER_READ))),
                 lacks("audit:read", "ledger:read"), id="audit log with ledger:read only"),
    pytest.param(lambda: ac.can_audit(who("root", ADMIN, scopes=token(TokenScope.LEDGER_READ,
                                                                        TokenScope.LEDGER_WRITE))),
                 lacks("audit:read", "ledger:read,ledger:write"), id="admin's audit log with ledger scopes"),
    pytest.param(lambda: ac.can_audit(who("root", ADMIN, scopes=token(TokenScope.AUDIT_READ))),
                 Access(True, "admin or auditor"), id="admin's audit log with audit:read"),
    pytest.param(lambda: ac.can_audit(who("op", OP_PARIS, scopes=token(TokenScope.AUDIT_READ))),
                 Access(False, NO_AUDIT), id="audit:read alone makes nobody an auditor"),
    # verifying the whole ledger takes audit:read or ledger:read; lacking both, the refusal
    # names ledger:read
    pytest.param(lambda: ac.can_verify_ledger(who("aud", AUDITOR, scopes=token(TokenScope.AUDIT_READ))),
                 Access(True, "admin or auditor"), id="verify with audit:read only"),
    pytest.param(lambda: ac.can_verify_ledger(who("aud", AUDITOR, scopes=token(TokenScope.LEDGER_READ))),
                 Access(True, "admin or auditor"), id="verify with ledger:read only"),
    pytest.param(lambda: ac.can_verify_ledger(who("aud", AUDITOR, scopes=token(TokenScope.JOBS_READ))),
                 lacks("ledger:read", "jobs:read"), id="verify with neither"),
    pytest.param(lambda: ac.can_verify_ledger(ROOT), Access(True, "admin or auditor"), id="verify: admin"),
    pytest.param(lambda: ac.can_verify_ledger(who("po", PO_FR, scopes=token(TokenScope.LEDGER_READ))),
                 Access(False, NO_AUDIT), id="verify: officer refused"),
    pytest.param(lambda: ac.can_reconcile(who("op", OP_PARIS, scopes=token(TokenScope.AUDIT_READ))),
                 Access(False, NO_AUDIT),
                 id="operator reconciles with audit:read only"),
    pytest.param(lambda: ac.can_reconcile(who("op", OP_PARIS, scopes=token(TokenScope.JOBS_READ))),
                 lacks("ledger:read", "jobs:read"), id="operator reconciles with neither"),
    pytest.param(lambda: ac.can_reconcile(who("op", OP_PARIS, scopes=token(TokenScope.ADMIN))),
                 Access(True, "site operator"), id="an admin-scoped token permits everything"),
]


@pytest.mark.parametrize(("decide", "decision"), TOKENS)
def test_a_token_refusal_names_the_scope_needed_and_the_scopes_held(decide: Callable[[], Access],
                                                                    decision: Access) -> None:
    assert decide() == decision


# ── what the caller reads: the 403 message ───────────────────────────────────────────
RENDERED = [
    pytest.param(lambda: ac.can_read_job(STRANGER, JOB),
                 "not the owner, a member of its project, its site's operator or an overseer",
                 id="a rule without facts is the rule alone"),
    pytest.param(lambda: ac.can_manage_project(who("mo"), PROJECT),
                 "only the project's PI may do this (project=p1)", id="one fact"),
    pytest.param(lambda: ac.can_create_project(who("ana", affs=(UK, FR)), "kr", DAY),
                 "a project's home partner must be one you are affiliated with today"
                 " (partner=kr, yours=fr,uk)",
                 id="two facts"),
    pytest.param(lambda: ac.can_change_job(
                     who("alice", scopes=token(TokenScope.JOBS_READ, TokenScope.LEDGER_READ)), JOB),
                 "the API token used lacks a scope (needs=jobs:write, token_scopes=jobs:read,ledger:read)",
                 id="a token refusal"),
]


@pytest.mark.parametrize(("decide", "message"), RENDERED)
def test_a_refusal_reads_as_one_sentence(decide: Callable[[], Access], message: str) -> None:
    refused = decide()
    assert refused.explain() == message
    with pytest.raises(Forbidden) as raised:
        refused.require()
    assert str(raised.value) == message


def test_an_allowing_decision_explains_itself_and_requires_nothing() -> None:
    allowed = ac.can_read_job(who("alice"), JOB)
    assert allowed.explain() == "owner of the job"
    assert ac.can_read_job(who("op", OP_PARIS), JOB).explain() == "operator of the job's site (site=paris)"
    allowed.require()
    allowed.require("does not exist or is not yours")
