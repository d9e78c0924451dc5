"""Who may see and do what: principals, affiliations, roles and the rules that decide.

Everyone who calls Accord is a :class:`Principal`: a user with affiliations (a primary
institution, and time-bounded secondments and placements), explicit role grants (site
operator, programme officer, auditor, admin, each scoped) and the projects they belong
to (member, or PI). A researcher needs no grant: an enrolled user with an active
affiliation is one. API tokens narrow a principal further to their scopes.

Every rule here is a pure function that returns an :class:`Access` (allowed or not,
which rule decided and the facts it used), so a refusal can always say why. Shells turn
a refusal into 403 with a message that never tells whether the object exists.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from accord.domain.errors import Forbidden


class Role(enum.Enum):
    """The roles of the issue; researcher and PI follow from affiliations and projects."""

    RESEARCHER = "researcher"
    PI = "pi"
    SITE_OPERATOR = "site_operator"
    PROGRAMME_OFFICER = "programme_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


GRANTABLE = (Role.SITE_OPERATOR, Role.PROGRAMME_OFFICER, Role.AUDITOR, Role.ADMIN)


class ScopeKind(enum.Enum):
    """What a role grant is limited to."""

    GLOBAL = "global"
    PARTNER = "partner"
    SITE = "site"


ROLE_SCOPES: dict[Role, tuple[ScopeKind, ...]] = {
    Role.SITE_OPERATOR: (ScopeKind.SITE,),
    Role.PROGRAMME_OFFICER: (ScopeKind.PARTNER,),
    Role.AUDITOR: (ScopeKind.PARTNER, ScopeKind.GLOBAL),
    Role.ADMIN: (ScopeKind.GLOBAL,),
}


class AffiliationKind(enum.Enum):
    """How a user belongs to an institution.

    PRIMARY: their employer. SECONDMENT: they work for the host institution for a while
    (e.g. a KAIST researcher at the Turing): while it lasts they may act for its partner
    and count as affiliated with it for compliance rules. PLACEMENT: a visit (student,
    industry placement): they may join the host's projects, but it does not count as an
    affiliation for compliance rules.
    """

    PRIMARY = "primary"
    SECONDMENT = "secondment"
    PLACEMENT = "placement"


class TokenScope(enum.Enum):
    """What an API token may be used for (OIDC and the admin token are unrestricted)."""

    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    LEDGER_READ = "ledger:read"
    LEDGER_WRITE = "ledger:write"
    PROJECTS_READ = "projects:read"
    PROJECTS_WRITE = "projects:write"
    COMPLIANCE = "compliance"
    AUDIT_READ = "audit:read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Affiliation:
    """A user's tie to an institution (hence a partner), possibly time-bounded."""

    institution: str
    partner: str
    kind: AffiliationKind = AffiliationKind.PRIMARY
    start: date | None = None
    end: date | None = None   # inclusive

    def active(self, day: date) -> bool:
        """Whether it holds on ``day``."""
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Grant:
    """An explicit role, scoped: ``target`` is a partner or site id ("" when global)."""

    role: Role
    scope: ScopeKind
    target: str = ""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as every rule sees them."""

    user: str
    name: str
    affiliations: tuple[Affiliation, ...] = ()
    grants: tuple[Grant, ...] = ()
    member_of: frozenset[str] = frozenset()   # projects (PI included)
    pi_of: frozenset[str] = frozenset()
    scopes: frozenset[TokenScope] | None = None   # None: not narrowed by a token
    via: str = "oidc"
    sector: str | None = None   # of the primary institution

    @property
    def is_admin(self) -> bool:
        """Holds the global admin role."""
        return any(g.role is Role.ADMIN for g in self.grants)

    def partners(self, day: date, *, for_compliance: bool = False) -> frozenset[str]:
        """Partners the user is affiliated with on ``day`` (placements excluded when
        ``for_compliance``)."""
        return frozenset(a.partner for a in self.affiliations if a.active(day)
                         and not (for_compliance and a.kind is AffiliationKind.PLACEMENT))

    def institution_for(self, partner: str, day: date) -> Affiliation | None:
        """The active affiliation through which the user acts for ``partner``."""
        return next((a for a in self.affiliations if a.partner == partner and a.active(day)), None)

    def holds(self, role: Role, target: str | None = None) -> bool:
        """Holds ``role`` globally, or scoped to ``target`` (a partner or site id)."""
        return any(g.role is role and (g.scope is ScopeKind.GLOBAL or g.target == target)
                   for g in self.grants)

    def scoped_targets(self, role: Role) -> frozenset[str]:
        """The partners or sites ``role`` is granted for (global grants excluded)."""
        return frozenset(g.target for g in self.grants if g.role is role and g.scope is not ScopeKind.GLOBAL)

    def allows(self, scope: TokenScope) -> bool:
        """Whether the credential used permits ``scope``."""
        return self.scopes is None or scope in self.scopes or TokenScope.ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class Access:
    """A decision: allowed or not, the rule that decided and the facts it used."""

    allowed: bool
    rule: str
    facts: tuple[tuple[str, str], ...] = ()

    def require(self, hidden: str | None = None) -> None:
        """Raise unless allowed.

        ``hidden`` replaces the message (the rule and facts) when it would reveal that
        an object exists to someone who may not see it.

        Raises:
            Forbidden: not allowed.
        """
        if not self.allowed:
            raise Forbidden(hidden or self.explain())

    def explain(self) -> str:
        """The rule and facts in one sentence."""
        facts = ", ".join(f"{k}={v}" for k, v in self.facts)
        return f"{self.rule}" + (f" ({facts})" if facts else "")


def allow(rule: str, *facts: tuple[str, str]) -> Access:
    """An allowing decision."""
    return Access(True, rule, facts)


def deny(rule: str, *facts: tuple[str, str]) -> Access:
    """A refusing decision."""
    return Access(False, rule, facts)


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the rules need to know about a job."""

    id: str
    owner: str
    project: str
    requester: str | None
    site: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    """What the rules need to know about a project."""

    id: str
    pi: str
    partner: str
    members: frozenset[str] = field(default_factory=frozenset)
    granting: frozenset[str] = field(default_factory=frozenset)   # partners it holds allocations from


def token_scope(p: Principal, scope: TokenScope) -> Access | None:
    """A refusal when the caller's token lacks ``scope``, else None."""
    if p.allows(scope):
        return None
    return deny("the API token used lacks a scope", ("needs", scope.value),
                ("token_scopes", ",".join(sorted(s.value for s in p.scopes or ()))))


def _oversees(p: Principal, partners: Iterable[str | None]) -> bool:
    """A programme officer or auditor of one of ``partners``, or a global auditor."""
    return any(p.holds(Role.PROGRAMME_OFFICER, x) or p.holds(Role.AUDITOR, x) for x in partners if x)


def can_read_job(p: Principal, job: JobFacts) -> Access:
    """Owner, project member, operator of its site, overseer of either partner, admin."""
    if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
        return refusal
    if p.is_admin:
        return allow("admin")
    if job.owner == p.user:
        return allow("owner of the job")
    if job.project in p.member_of:
        return allow("member of the job's project", ("project", job.project))
    if job.site and p.holds(Role.SITE_OPERATOR, job.site):
        return allow("operator of the job's site", ("site", job.site))
    if _oversees(p, (job.requester, job.host)):
        return allow("programme officer or auditor of a partner the job involves")
    return deny("not the owner, a member of its project, its site's operator or an overseer")


def can_change_job(p: Principal, job: JobFacts) -> Access:
    """Cancel: the owner, the project's PI, the operator of its site, admin."""
    if (refusal := token_scope(p, TokenScope.JOBS_WRITE)) is not None:
        return refusal
    if p.is_admin:
        return allow("admin")
    if job.owner == p.user:
        return allow("owner of the job")
    if job.project in p.pi_of:
        return allow("PI of the job's project", ("project", job.project))
    if job.site and p.holds(Role.SITE_OPERATOR, job.site):
        return allow("operator of the job's site", ("site", job.site))
    return deny("only the owner, the project's PI, the site's operator or an admin may change a job")


def can_read_logs(p: Principal, job: JobFacts) -> Access:
    """A job's output: the owner, members of its project, admin (not operators or officers)."""
    if (refusal := token_scope(p, TokenScope.JOBS_READ)) is not None:
        return refusal
    if p.is_admin or job.owner == p.user:
        return allow("owner of the job or admin")
    if job.project in p.member_of:
        return allow("member of the job's project", ("project", job.project))
    return deny("a job's output is for its owner and its project's members")


def can_read_agreement(p: Principal, parties: Iterable[str], agreement: str) -> Access:
    """Ledger entries, balances and statements of an agreement: overseers of a party."""
    if (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
        return refusal
    if p.is_admin:
        return allow("admin")
    if _oversees(p, parties):
        return allow("programme officer or auditor of a party", ("agreement", agreement))
    return deny("only programme officers and auditors of its parties may read an agreement's books",
                ("agreement", agreement))


def can_correct(p: Principal, host: str) -> Access:
    """A correcting entry (refund, reversal, manual credit): admin, or an officer of the
    host partner, whose account the correction takes units from."""
    if (refusal := token_scope(p, TokenScope.LEDGER_WRITE)) is not None:
        return refusal
    if p.is_admin:
        return allow("admin")
    if p.holds(Role.PROGRAMME_OFFICER, host):
        return allow("programme officer of the host partner", ("host", host))
    return deny("only the operator or the host partner's programme officer may correct an entry")


def can_operate_ledger(p: Principal) -> Access:
    """Close a period (signs with the operator's key): admin only."""
    if (refusal := token_scope(p, TokenScope.LEDGER_WRITE)) is not None:
        return refusal
    return allow("admin") if p.is_admin else deny("only the operator (admin) closes periods")


def can_audit(p: Principal) -> Access:
    """The audit log: admin and auditors, with a token that holds ``audit:read`` (``ledger:read``
    is not enough: the log says who did what to anything, not only to the books)."""
    if (refusal := token_scope(p, TokenScope.AUDIT_READ)) is not None:
        return refusal
    return _admin_or_auditor(p)


def can_verify_ledger(p: Principal) -> Access:
    """Whole-ledger verification: admin and auditors, with ``ledger:read`` or ``audit:read``."""
    if (refusal := token_scope(p, TokenScope.AUDIT_READ)) is not None \
            and (refusal := token_scope(p, TokenScope.LEDGER_READ)) is not None:
        return refusal
    return _admin_or_auditor(p)


def _admin_or_auditor(p: Principal) -> Access:
    if p.is_admin or any(g.role is Role.AUDITOR for g in p.grants):
        return allow("admin or auditor")
    return deny("only auditors and the operator may do this")


def can_reconcile(p: Principal) -> Access:
    """Compare the ledger with sites' accounting: auditors, admin and site operators."""
    if any(g.role is Role.SITE_OPERATOR for g in p.grants) and p.allows(TokenScope.LEDGER_READ):
        return allow("site operator")
    return can_verify_ledger(p)


def can_read_project(p: Principal, project: ProjectFacts) -> Access:
    """Members, the PI, overseers of its home or granting partners, admin."""
    if (refusal := token_scope(p, TokenScope.PROJECTS_READ)) is not None:
        return refusal
    if p.is_admin:
        return allow("admin")
    if p.user == project.pi or p.user in project.members:
        return allow("member of the project")
    if _oversees(p, (project.partner, *project.granting)):
        return allow("programme officer or auditor of its home or granting partner")
    return deny("only its members and their partners' officers may see a project")


def can_manage_project(p: Principal, project: ProjectFacts) -> Access:
    """Add members, apply for allocations: the PI, admin."""
    if (refusal := token_scope(p, TokenScope.PROJECTS_WRITE)) is not None:
        return refusal
    if p.is_admin or p.user == project.pi:
        return allow("PI of the project or admin")
    return deny("only the project's PI may do this", ("project", project.id))


def can_create_project(p: Principal, partner: str, day: date) -> Access:
    """A researcher affiliated (now) with the project's home partner."""
    if (refusal := token_scope(p, TokenScope.PROJECTS_WRITE)) is not None:
        return refusal
    if p.is_admin or partner in p.partners(day):
        return allow("affiliated with the home partner", ("partner", partner))
    return deny("a project's home partner must be one you are affiliated with today",
                ("partner", partner), ("yours", ",".join(sorted(p.partners(day))) or "none"))


def can_decide_allocation(p: Principal, granting: str) -> Access:
    """Approve or refuse: a programme officer of the granting partner (not the operator:
    a partner's compute is granted by that partner)."""
    if (refusal := token_scope(p, TokenScope.PROJECTS_WRITE)) is not None:
        return refusal
    if p.holds(Role.PROGRAMME_OFFICER, granting):
        return allow("programme officer of the granting partner", ("partner", granting))
    return deny("only a programme officer of the granting partner decides", ("partner", granting))


def can_read_compliance(p: Principal) -> Access:
    """The compliance report: admin, auditors, site operators and programme officers (each
    sees the holds of their own sites / partners; the service filters)."""
    if (refusal := token_scope(p, TokenScope.COMPLIANCE)) is not None:
        return refusal
    roles = {g.role for g in p.grants}
    if roles & {Role.ADMIN, Role.AUDITOR, Role.SITE_OPERATOR, Role.PROGRAMME_OFFICER}:
        return allow("admin, auditor, site operator or programme officer")
    return deny("only operators, officers and auditors see the compliance report")


def can_decide_compliance(p: Principal, site: str) -> Access:
    """Approve or refuse a held run: an operator of the site it would run at."""
    if (refusal := token_scope(p, TokenScope.COMPLIANCE)) is not None:
        return refusal
    if p.holds(Role.SITE_OPERATOR, site):
        return allow("operator of the site", ("site", site))
    return deny("only an operator of the site the job would run at decides", ("site", site))


def can_manage_users(p: Principal) -> Access:
    """Enrol users, grant roles, record affiliations: admin."""
    if (refusal := token_scope(p, TokenScope.ADMIN)) is not None:
        return refusal
    return allow("admin") if p.is_admin else deny("only an admin manages users and roles")


def sees_audit_record(p: Principal, partners: Iterable[str]) -> bool:
    """An audit record touching ``partners``: admin and global auditors see all, partner
    auditors those touching their partner."""
    if p.is_admin or any(g.role is Role.AUDITOR and g.scope is ScopeKind.GLOBAL for g in p.grants):
        return True
    return any(p.holds(Role.AUDITOR, x) for x in partners)


def sees_usage(p: Principal, *, project: str, site: str, requester: str | None, host: str) -> bool:
    """A usage record (emissions, footprint totals): who may count it."""
    if p.is_admin or project in p.member_of:
        return True
    return p.holds(Role.SITE_OPERATOR, site) or _oversees(p, (requester, host))
