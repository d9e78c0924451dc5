"""Identity and administration: who the caller is, their tokens, users, roles, projects,
allocations and the audit log, each action checked by :mod:`accord.domain.access.rules`.

Credentials, tried in order: the local admin token (the embedded demo's); an Accord API
token (``acc_<id>_<secret>``, stored only as a SHA-256 hash, scoped, expiring,
revocable); an OIDC bearer token (JWT) verified against the configured JWKS, whose
issuer and subject must belong to an enrolled user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from accord.domain.access.audit import AuditRecord
from accord.domain.access.projects import (
    Allocation,
    AllocationState,
    Project,
    User,
    check_ident,
    decide,
    increase,
    revoke,
    validate_application,
)
from accord.domain.access.rules import (
    GRANTABLE,
    ROLE_SCOPES,
    Affiliation,
    AffiliationKind,
    Grant,
    Principal,
    ProjectFacts,
    Role,
    ScopeKind,
    TokenScope,
    can_audit,
    can_create_project,
    can_decide_allocation,
    can_manage_project,
    can_manage_users,
    can_read_project,
    sees_audit_record,
)
from accord.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    RateLimited,
    Unauthenticated,
)
from accord.domain.federation.model import Federation
from accord.ports import AccessStore, Clock, StoredToken

ADMIN = Principal("admin", "local administrator", grants=(Grant(Role.ADMIN, ScopeKind.GLOBAL),),
                  via="admin-token")
TOKEN_PREFIX = "acc_"  # noqa: S105 (a prefix, not a secret)
MAX_TOKEN_DAYS = 366


class RateLimiter:
    """A token bucket per key: ``rate`` requests per ``per_s`` seconds, bursts up to ``rate``."""

    def __init__(self, rate: int, per_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.per_s, self.now = rate, per_s, now
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, what: str) -> None:
        """Spend one request of ``key``.

        Raises:
            RateLimited: the bucket is empty (with when to retry).
        """
        with self._lock:
            t = self.now()
            level, last = self._buckets.get(key, (float(self.rate), t))
            level = min(float(self.rate), level + (t - last) * self.rate / self.per_s)
            if level < 1.0:
                wait = (1.0 - level) * self.per_s / self.rate
                self._buckets[key] = (level, t)
                raise RateLimited(f"too many {what} requests: at most {self.rate} per "
                                  f"{self.per_s:g} s; retry in {wait:.0f} s", wait)
            self._buckets[key] = (level - 1.0, t)
            if len(self._buckets) > 100_000:   # bounded memory under a flood of keys
                self._buckets.clear()


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``secret`` is shown once and never stored."""

    secret: str
    token: StoredToken


class AccessService:
    """Authentication, tokens, users, projects, allocations and audit."""

    def __init__(self, federation: Federation, store: AccessStore, clock: Clock, admin_token: str,
                 verifier: Callable[[str], tuple[str, str]] | None = None,
                 token_limiter: RateLimiter | None = None) -> None:
        self.federation = federation
        self.store = store
        self.clock = clock
        self.admin_token = admin_token
        self.verifier = verifier
        self.token_limiter = token_limiter or RateLimiter(10, 60.0)

    # ------------------------------------------------------------ authentication
    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of an ``Authorization`` header.

        Raises:
            Unauthenticated: no bearer token, or one that is not valid (expired, forged,
                revoked, wrong audience...).
            Forbidden: a valid OIDC identity that is not enrolled.
        """
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        if hmac.compare_digest(given.encode(), self.admin_token.encode()):
            return ADMIN
        if given.startswith(TOKEN_PREFIX):
            return self._api_token(given)
        if self.verifier is None:
            raise Unauthenticated("the token is not an Accord token and no OIDC issuer is configured")
        issuer, subject = self.verifier(given)
        user = self.store.user_by_oidc(issuer, subject)
        if user is None:
            raise Forbidden(f"identity {subject} of {issuer} is not enrolled in Accord; "
                            "ask an administrator to enrol you")
        return self.principal(user, via="oidc")

    def _api_token(self, given: str) -> Principal:
        token_id, _, secret = given[len(TOKEN_PREFIX):].partition("_")
        stored = self.store.token(token_id) if token_id and secret else None
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if stored is None or not hmac.compare_digest(digest, stored.secret_hash):
            raise Unauthenticated("the API token is not valid")
        now = self.clock.now()
        if stored.revoked_at is not None:
            raise Unauthenticated("the API token was revoked")
        if stored.expires_at <= now:
            raise Unauthenticated("the API token has expired")
        return self.principal(self.store.user(stored.user), scopes=stored.scopes,
                              via=f"api-token:{stored.id}")

    def principal(self, user: User, *, scopes: frozenset[TokenScope] | None = None,
                  via: str = "oidc") -> Principal:
        """The principal of an enrolled user."""
        member, led = self.store.memberships(user.id)
        affs = (self._affiliation(user.institution, AffiliationKind.PRIMARY, None, None),
                *(self._affiliation(a.institution, a.kind, a.start, a.end) for a in user.affiliations))
        sector = next((i.sector.value for i in self.federation.institutions
                       if i.id == user.institution), None)
        return Principal(user.id, user.name, tuple(a for a in affs if a.partner), user.grants, member, led,
                         scopes, via, sector)

    def _resolved(self, user: User) -> User:
        """The user with each extra affiliation's partner filled in from the federation."""
        return replace(user, affiliations=tuple(self._affiliation(a.institution, a.kind, a.start, a.end)
                                                for a in user.affiliations))

    def _affiliation(self, institution: str, kind: AffiliationKind, start: date | None,
                     end: date | None) -> Affiliation:
        partner = next((i.partner for i in self.federation.institutions if i.id == institution), "")
        return Affiliation(institution, partner, kind, start, end)

    def sector_for(self, p: Principal, partner: str | None) -> str | None:
        """The sector the user acts in for ``partner``: their institution there (a
        secondment, say), else their primary one."""
        aff = p.institution_for(partner, self.clock.now().date()) if partner else None
        inst = aff.institution if aff else (p.affiliations[0].institution if p.affiliations else None)
        return next((i.sector.value for i in self.federation.institutions if i.id == inst), p.sector)

    # ------------------------------------------------------------ API tokens
    def create_token(self, p: Principal, name: str, scopes: list[str], days: int, source: str,
                     for_user: str | None = None) -> NewToken:
        """A new token for the caller (or, by an admin, for ``for_user``: how users of a
        deployment without OIDC get theirs), narrowed to ``scopes`` and never wider than
        the credential used to ask for it.

        Raises:
            RateLimited: too many token requests from this caller.
            InvalidInput: unknown scopes, a lifetime outside 1..366 days, no such user.
            Forbidden: asking for a scope the caller's own token lacks; for another user
                without being an admin; the local admin for itself (it has no user record).
        """
        self.token_limiter.take(f"{p.user}|{source}", "token")
        owner = for_user or p.user
        if for_user is not None and for_user != p.user:
            can_manage_users(p).require()
            try:
                self.store.user(for_user)
            except NotFound:
                raise InvalidInput([Problem("for_user", "is not an enrolled user", for_user,
                                            "an enrolled user id")]) from None
        elif p.user == ADMIN.user:
            raise Forbidden("the local admin token cannot mint API tokens for itself; enrol a user "
                            "(or name one with for_user)")
        allowed = [s.value for s in TokenScope]
        bad = [s for s in scopes if s not in allowed]
        problems = [Problem("scopes", "names an unknown scope", b, ", ".join(allowed)) for b in bad]
        if not scopes:
            problems.append(Problem("scopes", "must name at least one scope", "[]", ", ".join(allowed)))
        if not 1 <= days <= MAX_TOKEN_DAYS:
            problems.append(Problem("days", "is out of range", str(days), f"1..{MAX_TOKEN_DAYS}"))
        if problems:
            raise InvalidInput(problems)
        wanted = frozenset(TokenScope(s) for s in scopes)
        if p.scopes is not None and not all(p.allows(s) for s in wanted):
            raise Forbidden("a token cannot grant more than the token used to create it")
        now = self.clock.now()
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        stored = StoredToken(token_id, owner, name, hashlib.sha256(secret.encode()).hexdigest(), wanted,
                             now, now + timedelta(days=days))
        self.store.add_token(stored)
        return NewToken(f"{TOKEN_PREFIX}{token_id}_{secret}", stored)

    def tokens(self, p: Principal, source: str) -> list[StoredToken]:
        """The caller's tokens (rate-limited like creation)."""
        self.token_limiter.take(f"{p.user}|{source}", "token")
        return self.store.tokens(p.user)

    def revoke_token(self, p: Principal, token_id: str, source: str) -> StoredToken:
        """Revoke one of the caller's tokens (admins, with a token that may manage users: anyone's).

        Raises:
            Forbidden: not the caller's (also when it does not exist: no leak).
        """
        self.token_limiter.take(f"{p.user}|{source}", "token")
        stored = self.store.token(token_id)
        if stored is None or (stored.user != p.user and not can_manage_users(p).allowed):
            raise Forbidden(f"token {token_id} does not exist or is not yours")
        self.store.revoke_token(token_id, self.clock.now())
        return self.store.token(token_id) or stored

    # ------------------------------------------------------------ users and roles
    def enrol(self, p: Principal, user: User) -> User:
        """Enrol a user.

        Raises:
            Forbidden: not an admin. InvalidInput: bad id or institution. Conflict: taken.
        """
        can_manage_users(p).require()
        check_ident(user.id, "id")
        self._institution(user.institution, "institution")
        if (user.oidc_issuer is None) != (user.oidc_subject is None):
            raise InvalidInput([Problem("oidc_subject", "needs oidc_issuer too (or neither)",
                                        user.oidc_subject or "", "both or neither")])
        self.store.add_user(replace(user, affiliations=(), grants=()), self.clock.now())
        return self._resolved(self.store.user(user.id))

    def user(self, p: Principal, user_id: str) -> User:
        """A user's record: admins, or the user themselves.

        Raises:
            Forbidden: anyone else (also for ids that do not exist).
        """
        if p.user != user_id and not can_manage_users(p).allowed:
            raise Forbidden(f"user {user_id} does not exist or you may not see them")
        try:
            return self._resolved(self.store.user(user_id))
        except NotFound:
            raise Forbidden(f"user {user_id} does not exist or you may not see them") from None

    def add_affiliation(self, p: Principal, user_id: str, a: Affiliation) -> User:
        """Record a secondment or placement.

        Raises:
            Forbidden, InvalidInput (unknown institution, a primary kind, an end before the start).
        """
        can_manage_users(p).require()
        self.store.user(user_id)
        self._institution(a.institution, "institution")
        if a.kind is AffiliationKind.PRIMARY:
            raise InvalidInput([Problem("kind", "a user has one primary institution, set at enrolment",
                                        a.kind.value, "secondment, placement")])
        if a.start is None or a.end is None or a.end < a.start:
            raise InvalidInput([Problem("end", "a secondment or placement needs a start and an end after it",
                                        f"{a.start}..{a.end}", "start ≤ end (YYYY-MM-DD)")])
        self.store.add_affiliation(user_id, a)
        return self._resolved(self.store.user(user_id))

    def grant(self, p: Principal, user_id: str, g: Grant) -> User:
        """Give a role.

        Raises:
            Forbidden: not an admin. InvalidInput: a role that is not granted, a wrong
                scope for it, or a target that does not exist.
        """
        can_manage_users(p).require()
        self.store.user(user_id)
        if g.role not in GRANTABLE:
            raise InvalidInput([Problem("role", "is not granted explicitly (it follows from "
                                        "affiliations and projects)", g.role.value,
                                        ", ".join(r.value for r in GRANTABLE))])
        if g.scope not in ROLE_SCOPES[g.role]:
            raise InvalidInput([Problem("scope", f"does not fit role {g.role.value}", g.scope.value,
                                        ", ".join(s.value for s in ROLE_SCOPES[g.role]))])
        targets = {ScopeKind.PARTNER: [x.id for x in self.federation.partners],
                   ScopeKind.SITE: [x.id for x in self.federation.sites], ScopeKind.GLOBAL: [""]}[g.scope]
        if g.target not in targets:
            raise InvalidInput([Problem("target", f"is not a {g.scope.value}", g.target,
                                        ", ".join(targets) or '"" for global')])
        self.store.grant(user_id, g)
        return self._resolved(self.store.user(user_id))

    def _institution(self, institution: str, where: str) -> None:
        ids = [i.id for i in self.federation.institutions]
        if institution not in ids:
            raise InvalidInput([Problem(where, "names an unknown institution", institution, ", ".join(ids))])

    # ------------------------------------------------------------ projects
    def facts(self, project: Project) -> ProjectFacts:
        """What the access rules need to know about a project."""
        granting = frozenset(a.host for a in self.store.allocations(project=project.id)
                             if a.state is not AllocationState.REFUSED)
        return ProjectFacts(project.id, project.pi, project.partner, project.members, granting)

    def create_project(self, p: Principal, project_id: str, name: str, partner: str,
                       theme: str | None) -> Project:
        """A new project led by the caller.

        Raises:
            InvalidInput: bad id, unknown partner or theme. Forbidden: not affiliated
                with ``partner`` today. Conflict: the id is taken.
        """
        check_ident(project_id, "id")
        partners = [x.id for x in self.federation.partners]
        if partner not in partners:
            raise InvalidInput([Problem("partner", "names an unknown partner", partner, ", ".join(partners))])
        if theme is not None and self.federation.themes and theme not in self.federation.themes:
            raise InvalidInput([Problem("theme", "names an unknown theme", theme,
                                        ", ".join(self.federation.themes))])
        now = self.clock.now()
        can_create_project(p, partner, now.date()).require()
        project = Project(project_id, name, p.user, partner, theme, frozenset({p.user}), now)
        self.store.add_project(project)
        return project

    def project(self, p: Principal, project_id: str) -> Project:
        """A project the caller may see.

        Raises:
            Forbidden: it does not exist or the caller may not see it (same message).
        """
        project = self.store.project(project_id)
        hidden = f"project {project_id} does not exist or you may not see it"
        if project is None:
            raise Forbidden(hidden)
        can_read_project(p, self.facts(project)).require(hidden)
        return project

    def projects(self, p: Principal) -> list[Project]:
        """The projects the caller may see."""
        return [x for x in self.store.projects() if can_read_project(p, self.facts(x)).allowed]

    def add_member(self, p: Principal, project_id: str, user_id: str) -> Project:
        """Add a member (the PI or an admin).

        Raises:
            Forbidden, InvalidInput (no such user).
        """
        project = self.project(p, project_id)
        can_manage_project(p, self.facts(project)).require()
        try:
            self.store.user(user_id)
        except NotFound:
            raise InvalidInput([Problem("user", "is not an enrolled user", user_id, "an enrolled user id")]) \
                from None
        self.store.add_member(project_id, user_id)
        return self.project(p, project_id)

    def remove_member(self, p: Principal, project_id: str, user_id: str) -> Project:
        """Remove a member (the PI or an admin). The sites that enforce the project's
        allocations take the member's association out of its accounts at their next sync.

        Raises:
            Forbidden; NotFound: not a member; Conflict: the PI (who leads the project).
        """
        project = self.project(p, project_id)
        can_manage_project(p, self.facts(project)).require()
        if user_id == project.pi:
            raise Conflict(f"{user_id} leads project {project_id} and cannot be removed from it")
        if not self.store.remove_member(project_id, user_id):
            raise NotFound(f"{user_id!r} is not a member of project {project_id}")
        return self.project(p, project_id)

    # ------------------------------------------------------------ allocations
    def apply(self, p: Principal, project_id: str, agreement: str, host: str, units: float, start: str,
              end: str, sites: tuple[str, ...]) -> Allocation:
        """Apply for an allocation (the PI).

        Raises:
            Forbidden, InvalidInput (see :func:`validate_application`).
        """
        project = self.project(p, project_id)
        can_manage_project(p, self.facts(project)).require()
        validate_application(self.federation, project, agreement, host, units, start, end, sites)
        now = self.clock.now()
        a = Allocation(f"al{int(now.timestamp() * 1000):011x}{secrets.token_hex(3)}", project_id, agreement,
                       host, float(units), start, end, sites, AllocationState.REQUESTED, p.user, now)
        self.store.add_allocation(a)
        return a

    def decide(self, p: Principal, allocation_id: str, approve: bool, reason: str) -> Allocation:
        """Approve or refuse (a programme officer of the granting partner).

        Raises:
            Forbidden (also for an id that does not exist), Conflict (decided already),
            InvalidInput (a refusal without a reason).
        """
        a = self.store.allocation(allocation_id)
        if a is None:
            raise Forbidden(f"allocation {allocation_id} does not exist or is not yours to decide")
        can_decide_allocation(p, a.host).require(
            f"allocation {allocation_id} does not exist or is not yours to decide")
        decided = decide(a, approve, p.user, self.clock.now(), reason)
        self.store.save_allocation(decided)
        return decided

    def revoke(self, p: Principal, allocation_id: str, reason: str) -> Allocation:
        """Withdraw an approved allocation (a programme officer of the granting partner): its
        sites close its account to new jobs at their next sync.

        Raises:
            Forbidden (also for an id that does not exist), Conflict (not approved, or changed
            meanwhile), InvalidInput (no reason).
        """
        a = self._decidable(p, allocation_id)
        changed = revoke(a, p.user, self.clock.now(), reason)
        self.store.change_allocation(changed, a)
        return changed

    def increase(self, p: Principal, allocation_id: str, units: float, reason: str) -> Allocation:
        """Add units to an approved allocation (a programme officer of the granting partner).

        Raises:
            Forbidden (also for an id that does not exist), Conflict (not approved, or changed
            meanwhile), InvalidInput (units not positive).
        """
        a = self._decidable(p, allocation_id)
        changed = increase(a, units, p.user, self.clock.now(), reason)
        self.store.change_allocation(changed, a)
        return changed

    def _decidable(self, p: Principal, allocation_id: str) -> Allocation:
        hidden = f"allocation {allocation_id} does not exist or is not yours to decide"
        a = self.store.allocation(allocation_id)
        if a is None:
            raise Forbidden(hidden)
        can_decide_allocation(p, a.host).require(hidden)
        return a

    def allocations(self, p: Principal, project_id: str | None = None) -> list[Allocation]:
        """Allocations the caller may see: of projects they may see, or granted by (or to)
        a partner they oversee."""
        if project_id is not None:
            self.project(p, project_id)
        if not p.allows(TokenScope.PROJECTS_READ):
            return []     # a token without projects:read lists none (an officer's or the admin's neither)
        out = []
        for a in self.store.allocations(project=project_id):
            if p.is_admin or p.holds(Role.PROGRAMME_OFFICER, a.host) or p.holds(Role.AUDITOR, a.host):
                out.append(a)
                continue
            project = self.store.project(a.project)
            if project is not None and can_read_project(p, self.facts(project)).allowed:
                out.append(a)
        return out

    def held_allocations(self, day: date) -> Mapping[str, frozenset[tuple[str, str]]]:
        """Per registered project, the (agreement, site) pairs its approved allocations
        cover on ``day`` (for placement)."""
        held: dict[str, set[tuple[str, str]]] = {x.id: set() for x in self.store.projects()}
        for a in self.store.allocations(state=AllocationState.APPROVED):
            if a.covers(day) and a.project in held:
                sites = a.sites or tuple(s.id for s in self.federation.sites if s.partner == a.host)
                held[a.project].update((a.agreement, s) for s in sites)
        return {k: frozenset(v) for k, v in held.items()}

    def allocations_for(self, project: str, agreement: str, site: str, day: date) -> list[Allocation]:
        """The approved allocations of ``project`` that cover ``site`` under ``agreement`` on ``day``."""
        host = self.federation.site(site).partner
        return [a for a in self.store.allocations(project=project, state=AllocationState.APPROVED)
                if a.agreement == agreement and a.host == host and a.covers(day)
                and (not a.sites or site in a.sites)]

    # ------------------------------------------------------------ audit
    def record(self, rec: AuditRecord) -> None:
        """Append to the audit log."""
        self.store.audit(rec)

    def audit(self, p: Principal, *, actor: str | None = None, action: str | None = None,
              since: datetime | None = None, limit: int = 1000, after: int = 0) -> list[AuditRecord]:
        """Audit records the caller may read (admin, global auditors: all; partner
        auditors: those touching their partners).

        Raises:
            Forbidden: not an admin or auditor.
        """
        can_audit(p).require()
        scoped = None
        if not sees_audit_record(p, ()):
            scoped = sorted(p.scoped_targets(Role.AUDITOR))
        return self.store.audit_records(actor=actor, action=action, since=since, partners=scoped,
                                        limit=limit, after=after)

