"""Users, roles, tokens, projects, allocations, compliance decisions and the audit log
in the SQL store (see :class:`accord.ports.AccessStore`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from accord.adapters.sql.schema import (
    affiliations,
    allocations,
    api_tokens,
    audit_log,
    compliance_decisions,
    project_members,
    projects,
    role_grants,
    users,
)
from accord.adapters.sql.store import SqlStore
from accord.domain.access.audit import AuditRecord, Outcome
from accord.domain.access.projects import Allocation, AllocationState, Project, User
from accord.domain.access.rules import Affiliation, AffiliationKind, Grant, Role, ScopeKind, TokenScope
from accord.domain.errors import Conflict, NotFound
from accord.ports import StoredToken


class SqlAccess:
    """The access tables of a :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # ------------------------------------------------------------ users
    def add_user(self, user: User, at: datetime) -> None:
        """Raises:
            Conflict: the id, or the OIDC identity, is taken."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(users), [{
                    "id": user.id, "name": user.name, "email": user.email,
                    "institution": user.institution, "oidc_issuer": user.oidc_issuer,
                    "oidc_subject": user.oidc_subject, "created_at": at}])
        except IntegrityError:
            raise Conflict(f"user {user.id} (or its OIDC identity) is already enrolled") from None

    def user(self, user_id: str) -> User:
        """Raises:
            NotFound: no such user."""
        with self.store.transaction() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            return self._user(conn, row._mapping)

    def user_by_oidc(self, issuer: str, subject: str) -> User | None:
        """The user enrolled with this OIDC identity, if any."""
        with self.store.transaction() as conn:
            row = conn.execute(select(users).where(and_(users.c.oidc_issuer == issuer,
                                                        users.c.oidc_subject == subject))).first()
            return None if row is None else self._user(conn, row._mapping)

    def users(self) -> list[User]:
        """Every enrolled user, by id."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(users).order_by(users.c.id)).all()
            return [self._user(conn, r._mapping) for r in rows]

    def _user(self, conn: Any, r: Any) -> User:
        affs = conn.execute(select(affiliations).where(affiliations.c.user_id == r["id"])
                            .order_by(affiliations.c.id)).all()
        grants = conn.execute(select(role_grants).where(role_grants.c.user_id == r["id"])).all()
        return User(r["id"], r["name"], r["email"], r["institution"], r["oidc_issuer"], r["oidc_subject"],
                    tuple(Affiliation(a.institution, "", AffiliationKind(a.kind),
                                      date.fromisoformat(a.start) if a.start else None,
                                      date.fromisoformat(a.end) if a.end else None) for a in affs),
                    tuple(sorted((Grant(Role(g.role), ScopeKind(g.scope), g.target) for g in grants),
                                 key=lambda g: (g.role.value, g.target))))

    def add_affiliation(self, user_id: str, a: Affiliation) -> None:
        """Record a secondment or placement (the partner is derived from the institution)."""
        with self.store.transaction() as conn:
            conn.execute(insert(affiliations), [{
                "user_id": user_id, "institution": a.institution, "kind": a.kind.value,
                "start": a.start.isoformat() if a.start else None,
                "end": a.end.isoformat() if a.end else None}])

    def grant(self, user_id: str, g: Grant) -> None:
        """Give a role (granting it twice is harmless)."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(role_grants), [{"user_id": user_id, "role": g.role.value,
                                                    "scope": g.scope.value, "target": g.target}])
        except IntegrityError:
            pass

    def revoke_grant(self, user_id: str, g: Grant) -> bool:
        """Take a role back; whether it was held."""
        with self.store.transaction() as conn:
            done = conn.execute(delete(role_grants).where(and_(
                role_grants.c.user_id == user_id, role_grants.c.role == g.role.value,
                role_grants.c.scope == g.scope.value, role_grants.c.target == g.target)))
            return bool(done.rowcount)

    # ------------------------------------------------------------ API tokens
    def add_token(self, t: StoredToken) -> None:
        """Store a token (its secret only as a hash)."""
        with self.store.transaction() as conn:
            conn.execute(insert(api_tokens), [{
                "id": t.id, "user_id": t.user, "name": t.name, "secret_hash": t.secret_hash,
                "scopes": json.dumps(sorted(s.value for s in t.scopes)), "created_at": t.created_at,
                "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": None}])

    def token(self, token_id: str) -> StoredToken | None:
        """The token with this id, if any."""
        with self.store.transaction() as conn:
            r = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return None if r is None else _token(r._mapping)

    def tokens(self, user_id: str) -> list[StoredToken]:
        """A user's tokens, newest first."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(api_tokens).where(api_tokens.c.user_id == user_id)
                                .order_by(api_tokens.c.created_at.desc())).all()
        return [_token(r._mapping) for r in rows]

    def revoke_token(self, token_id: str, at: datetime) -> None:
        """Mark a token revoked (a second revocation keeps the first time)."""
        with self.store.transaction() as conn:
            conn.execute(update(api_tokens).where(and_(api_tokens.c.id == token_id,
                                                       api_tokens.c.revoked_at.is_(None)))
                         .values(revoked_at=at))

    # ------------------------------------------------------------ projects
    def add_project(self, p: Project) -> None:
        """Raises:
            Conflict: the id is taken."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(projects), [{"id": p.id, "name": p.name, "pi": p.pi,
                                                 "partner": p.partner, "theme": p.theme,
                                                 "created_at": p.created_at}])
                conn.execute(insert(project_members), [{"project": p.id, "user_id": u}
                                                       for u in sorted(p.members | {p.pi})])
        except IntegrityError:
            raise Conflict(f"project {p.id} already exists") from None

    def project(self, project_id: str) -> Project | None:
        """The project, or None."""
        with self.store.transaction() as conn:
            r = conn.execute(select(projects).where(projects.c.id == project_id)).first()
            if r is None:
                return None
            members = conn.execute(select(project_members.c.user_id)
                                   .where(project_members.c.project == project_id)).scalars().all()
        m = r._mapping
        return Project(m["id"], m["name"], m["pi"], m["partner"], m["theme"], frozenset(members),
                       m["created_at"])

    def projects(self) -> list[Project]:
        """Every project, by id (two queries, however many projects)."""
        with self.store.transaction() as conn:
            rows = conn.execute(select(projects).order_by(projects.c.id)).all()
            members: dict[str, set[str]] = {}
            for project, user in conn.execute(select(project_members.c.project, project_members.c.user_id)):
                members.setdefault(project, set()).add(user)
        return [Project(m["id"], m["name"], m["pi"], m["partner"], m["theme"],
                        frozenset(members.get(m["id"], ())), m["created_at"])
                for m in (r._mapping for r in rows)]

    def add_member(self, project_id: str, user_id: str) -> None:
        """Add a member (adding one twice is harmless)."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(project_members), [{"project": project_id, "user_id": user_id}])
        except IntegrityError:
            pass

    def remove_member(self, project_id: str, user_id: str) -> bool:
        """Remove a member; False if the user was not one."""
        with self.store.transaction() as conn:
            gone = conn.execute(delete(project_members).where(project_members.c.project == project_id,
                                                              project_members.c.user_id == user_id))
        return bool(gone.rowcount)

    def memberships(self, user_id: str) -> tuple[frozenset[str], frozenset[str]]:
        """The projects the user belongs to, and those they lead."""
        with self.store.transaction() as conn:
            member = conn.execute(select(project_members.c.project)
                                  .where(project_members.c.user_id == user_id)).scalars().all()
            led = conn.execute(select(projects.c.id).where(projects.c.pi == user_id)).scalars().all()
        return frozenset(member) | frozenset(led), frozenset(led)

    # ------------------------------------------------------------ allocations
    def add_allocation(self, a: Allocation) -> None:
        """Store an application."""
        with self.store.transaction() as conn:
            conn.execute(insert(allocations), [_allocation_row(a)])

    def save_allocation(self, a: Allocation) -> None:
        """Store a decision (only an undecided application changes).

        Raises:
            Conflict: it was decided meanwhile."""
        with self.store.transaction() as conn:
            done = conn.execute(update(allocations).where(and_(
                allocations.c.id == a.id, allocations.c.state == AllocationState.REQUESTED.value))
                .values(state=a.state.value, decided_by=a.decided_by, decided_at=a.decided_at,
                        reason=a.reason))
            if not done.rowcount:
                raise Conflict(f"allocation {a.id} was decided already")

    def change_allocation(self, a: Allocation, was: Allocation) -> None:
        """Store a revocation or an increase of ``was`` (only if it is unchanged meanwhile).

        Raises:
            Conflict: it changed meanwhile."""
        with self.store.transaction() as conn:
            done = conn.execute(update(allocations).where(and_(
                allocations.c.id == a.id, allocations.c.state == was.state.value,
                allocations.c.units == was.units))
                .values(state=a.state.value, units=a.units, decided_by=a.decided_by,
                        decided_at=a.decided_at, reason=a.reason))
            if not done.rowcount:
                raise Conflict(f"allocation {a.id} changed meanwhile; look again")

    def allocation(self, allocation_id: str) -> Allocation | None:
        """The allocation, or None."""
        with self.store.transaction() as conn:
            r = conn.execute(select(allocations).where(allocations.c.id == allocation_id)).first()
        return None if r is None else _allocation(r._mapping)

    def allocations(self, *, project: str | None = None, state: AllocationState | None = None
                    ) -> list[Allocation]:
        """Allocations, optionally of a project and/or in a state, oldest first."""
        q = select(allocations).order_by(allocations.c.requested_at, allocations.c.id)
        if project is not None:
            q = q.where(allocations.c.project == project)
        if state is not None:
            q = q.where(allocations.c.state == state.value)
        with self.store.transaction() as conn:
            return [_allocation(r._mapping) for r in conn.execute(q).all()]

    # ------------------------------------------------------------ compliance
    def decide_compliance(self, job_id: str, site: str, rule: str, approved: bool, by: str,
                          at: datetime, reason: str) -> None:
        """Record an operator's decision on a held run.

        Raises:
            Conflict: it was decided already."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(compliance_decisions), [{
                    "job_id": job_id, "site": site, "rule": rule, "approved": int(approved),
                    "by": by, "at": at, "reason": reason}])
        except IntegrityError:
            raise Conflict(f"the run of job {job_id} at {site} was decided already") from None

    def compliance_decision(self, job_id: str, site: str) -> tuple[bool, str, str] | None:
        """(approved, by, reason) of the decision on this job at this site, if any."""
        with self.store.transaction() as conn:
            r = conn.execute(select(compliance_decisions).where(and_(
                compliance_decisions.c.job_id == job_id, compliance_decisions.c.site == site))).first()
        return None if r is None else (bool(r.approved), r.by, r.reason)

    # ------------------------------------------------------------ audit
    def audit(self, rec: AuditRecord) -> None:
        """Append a record."""
        self.audit_many([rec])

    def audit_many(self, recs: Sequence[AuditRecord]) -> None:
        """Append records, in order, in one transaction, each cleaned first
        (:meth:`AuditRecord.sanitised`: text any database stores, within the columns' sizes).

        Raises:
            Unavailable: the database cannot be reached.
            SQLAlchemyError: the database refused the batch (the writer retries each record).
        """
        rows = []
        for rec in recs:
            c = rec.sanitised()
            rows.append({"at": c.at, "actor": c.actor, "via": c.via, "action": c.action, "target": c.target,
                         "partners": f",{','.join(c.partners)},", "outcome": c.outcome.value,
                         "status": c.status, "source": c.source, "detail": c.detail})
        with self.store.transaction() as conn:
            conn.execute(insert(audit_log), rows)

    def audit_records(self, *, actor: str | None = None, action: str | None = None,
                      since: datetime | None = None, partners: Sequence[str] | None = None,
                      limit: int = 1000, after: int = 0) -> list[AuditRecord]:
        """Records matching the filters, oldest first (``partners``: touching any of them)."""
        q = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit)
        if actor is not None:
            q = q.where(audit_log.c.actor == actor)
        if action is not None:
            q = q.where(audit_log.c.action == action)
        if since is not None:
            q = q.where(audit_log.c.at >= since)
        if partners is not None:
            q = q.where(or_(*(audit_log.c.partners.contains(f",{p},") for p in partners))
                        if partners else audit_log.c.seq < 0)
        with self.store.transaction() as conn:
            rows = conn.execute(q).all()
        return [AuditRecord(r.at, r.actor, r.via, r.action, r.target,
                            tuple(x for x in r.partners.split(",") if x), Outcome(r.outcome), r.status,
                            r.source, r.detail, r.seq) for r in rows]


def _token(m: Any) -> StoredToken:
    return StoredToken(m["id"], m["user_id"], m["name"], m["secret_hash"],
                       frozenset(TokenScope(s) for s in json.loads(m["scopes"])), m["created_at"],
                       m["expires_at"], m["revoked_at"])


def _allocation_row(a: Allocation) -> dict[str, Any]:
    return {"id": a.id, "project": a.project, "agreement": a.agreement, "host": a.host, "units": a.units,
            "start": a.start, "end": a.end, "sites": json.dumps(list(a.sites)), "state": a.state.value,
            "requested_by": a.requested_by, "requested_at": a.requested_at, "decided_by": a.decided_by,
            "decided_at": a.decided_at, "reason": a.reason}


def _allocation(m: Any) -> Allocation:
    return Allocation(m["id"], m["project"], m["agreement"], m["host"], m["units"], m["start"], m["end"],
                      tuple(json.loads(m["sites"])), AllocationState(m["state"]), m["requested_by"],
                      m["requested_at"], m["decided_by"], m["decided_at"], m["reason"])
