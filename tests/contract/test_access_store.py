"""The access tables over a real store (SQLite and PostgreSQL): users, roles, tokens,
projects, allocations, compliance decisions, and an audit log nobody can rewrite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from accord.adapters.sql.access_store import SqlAccess
from accord.adapters.sql.store import SqlStore
from accord.domain.access.audit import AuditRecord, Outcome
from accord.domain.access.projects import Allocation, AllocationState, Project, User, decide
from accord.domain.access.rules import Affiliation, AffiliationKind, Grant, Role, ScopeKind, TokenScope
from accord.domain.errors import Conflict, NotFound
from accord.ports import StoredToken

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
def access(db_url: str) -> Iterator[SqlAccess]:
    store = SqlStore(db_url)
    yield SqlAccess(store)
    store.close()


def test_users_affiliations_and_grants(access: SqlAccess) -> None:
    access.add_user(User("ana", "Ana", "ana@example.org", "bristol", "https://idp", "sub-1"), T0)
    with pytest.raises(Conflict):
        access.add_user(User("ana", "Ana again", None, "bristol"), T0)
    with pytest.raises(Conflict):   # the same OIDC identity twice
        access.add_user(User("ana2", "Ana", None, "bristol", "https://idp", "sub-1"), T0)
    access.add_affiliation("ana", Affiliation("kaist", "", AffiliationKind.SECONDMENT,
                                              date(2026, 10, 1), date(2026, 12, 31)))
    access.grant("ana", Grant(Role.AUDITOR, ScopeKind.PARTNER, "uk"))
    access.grant("ana", Grant(Role.AUDITOR, ScopeKind.PARTNER, "uk"))      # idempotent
    u = access.user("ana")
    assert u.affiliations[0].kind is AffiliationKind.SECONDMENT and u.affiliations[0].end == date(2026, 12,
                                                                                                  31)
    assert u.grants == (Grant(Role.AUDITOR, ScopeKind.PARTNER, "uk"),)
    assert access.user_by_oidc("https://idp", "sub-1") == u
    assert access.user_by_oidc("https://other", "sub-1") is None
    assert access.revoke_grant("ana", Grant(Role.AUDITOR, ScopeKind.PARTNER, "uk"))
    assert access.user("ana").grants == ()
    with pytest.raises(NotFound):
        access.user("nobody")


def test_tokens_are_stored_by_hash_and_revoked_once(access: SqlAccess) -> None:
    t = StoredToken("abc", "ana", "ci", "0" * 64, frozenset({TokenScope.JOBS_READ}), T0,
                    T0 + timedelta(days=1))
    access.add_token(t)
    assert access.token("abc") == t
    access.revoke_token("abc", T0 + timedelta(hours=1))
    access.revoke_token("abc", T0 + timedelta(hours=2))
    got = access.token("abc")
    assert got is not None and got.revoked_at == T0 + timedelta(hours=1)
    assert [x.id for x in access.tokens("ana")] == ["abc"] and access.tokens("bob") == []


def test_projects_members_and_allocations(access: SqlAccess) -> None:
    access.add_project(Project("p1", "Climate", "ana", "uk", "climate", frozenset({"bob"}), T0))
    with pytest.raises(Conflict):
        access.add_project(Project("p1", "Again", "bob", "uk", None, frozenset(), T0))
    access.add_member("p1", "cai")
    access.add_member("p1", "cai")
    p = access.project("p1")
    assert p is not None and p.members == {"ana", "bob", "cai"} and p.pi == "ana"
    assert access.memberships("ana") == (frozenset({"p1"}), frozenset({"p1"}))
    assert access.memberships("cai") == (frozenset({"p1"}), frozenset())
    a = Allocation("al1", "p1", "uk-fr", "fr", 100.0, "2026-11", "2027-01", ("paris",),
                   AllocationState.REQUESTED, "ana", T0)
    access.add_allocation(a)
    approved = decide(a, True, "olivier", T0, "")
    access.save_allocation(approved)
    with pytest.raises(Conflict):        # decided already: a second decision cannot overwrite it
        access.save_allocation(decide(a, False, "eve", T0, "changed my mind"))
    assert access.allocation("al1") == approved
    assert access.allocations(project="p1", state=AllocationState.APPROVED) == [approved]
    assert access.allocations(state=AllocationState.REFUSED) == []


def test_compliance_decisions_are_final(access: SqlAccess) -> None:
    access.decide_compliance("j1", "paris", "big", True, "op", T0, "checked")
    with pytest.raises(Conflict):
        access.decide_compliance("j1", "paris", "big", False, "op2", T0, "no")
    assert access.compliance_decision("j1", "paris") == (True, "op", "checked")
    assert access.compliance_decision("j1", "bristol") is None


def record(i: int, partners: tuple[str, ...]) -> AuditRecord:
    return AuditRecord(T0 + timedelta(seconds=i), f"user{i % 2}", "oidc", "job.submit", f"job j{i}",
                       partners, Outcome.OK, 201, "127.0.0.1", "")


def test_audit_log_is_append_only_and_filtered_by_partner(access: SqlAccess) -> None:
    access.audit_many([record(0, ("uk", "fr")), record(1, ("us",)), record(2, ("uk",))])
    assert [r.target for r in access.audit_records()] == ["job j0", "job j1", "job j2"]
    assert [r.target for r in access.audit_records(partners=["fr"])] == ["job j0"]
    assert [r.target for r in access.audit_records(partners=["u"])] == []      # no substring matches
    assert [r.target for r in access.audit_records(partners=[])] == []
    assert [r.target for r in access.audit_records(actor="user1")] == ["job j1"]
    assert [r.seq for r in access.audit_records(after=1)] == [2, 3]
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), access.store.transaction() as conn:
            conn.execute(text(statement))
    assert [r.actor for r in access.audit_records()] == ["user0", "user1", "user0"]


def test_audit_records_of_any_text_are_stored_cleaned(access: SqlAccess) -> None:
    """What an attacker puts in a path or a body (NUL, which PostgreSQL refuses; other
    controls; lone surrogates, which no UTF-8 database stores; far too much) is stored, as
    printable text within each column's size (the same on SQLite and PostgreSQL)."""
    hostile = AuditRecord(T0, "a\x00" * 40, "api-token:\x1b[31m", "POST /api/v1/jobs/x\x00y/cancel",
                          "/api/v1/jobs/x\x00y/cancel\r\n" + "\ud800" * 500, ("uk", "f\x00r", "x" * 400),
                          Outcome.INVALID, 422, "\x7f" * 200, "\x00" * 5000)
    access.audit_many([record(0, ("uk",)), hostile, record(2, ("fr",))])
    first, got, last = access.audit_records()
    assert (first.target, last.target) == ("job j0", "job j2")
    assert got.actor == ("a\\x00" * 40)[:63] + "…" and got.via == "api-token:\\x1b[31m"
    assert got.action == "POST /api/v1/jobs/x\\x00y/cancel"
    assert got.target.startswith("/api/v1/jobs/x\\x00y/cancel\\x0d\\x0a\ufffd\ufffd")
    assert len(got.target) == 300
    assert got.partners == ("uk", "f\\x00r", "x" * 63 + "…")   # each id within 64 characters
    assert len(got.source) == 100 and len(got.detail) == 4000 and got.detail.startswith("\\x00\\x00")
