"""Site enforcement's pure parts: GPU-minutes, what a site cannot express, identity policies,
the planner (never a half-built tree, always converging, drift told apart from hub changes),
the wire format, and the enforcer's sync over real in-memory fakes of Slurm and the users."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.slurm.accounts import parse_associations
from accord.domain.access.projects import (
    Allocation,
    AllocationState,
    Project,
    increase,
    revoke,
)
from accord.domain.enforcement.grants import GrantState, SiteGrant, gpu_minutes, site_grants
from accord.domain.enforcement.identity import LinkState, local_name, parse_policy
from accord.domain.enforcement.planner import (
    ActionKind,
    Assoc,
    Limits,
    Tree,
    actual_tree,
    allocation_account,
    apply,
    desired_tree,
    parse_tree,
    plan,
    tree_doc,
)
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.enforcement.wire import (
    GrantReport,
    GrantStatus,
    Link,
    SiteReport,
    desired_doc,
    parse_desired,
    parse_report,
    report_doc,
)
from accord.domain.errors import Busy, Conflict, InvalidInput, Unavailable
from accord.domain.federation.model import ExchangeRate, Federation
from accord.domain.jobs.model import Job, JobSpec, Placement, new_job
from accord.ports.enforcement import LocalAccount
from accord.service.site_enforcer import MARK, EnforcementSettings, SiteEnforcer
from tests.conftest import DEMO

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def grant(n: int = 1, members: tuple[str, ...] = ("ada",), minutes: int = 60, partner: str = "uk",
          state: GrantState = GrantState.OPEN) -> SiteGrant:
    return SiteGrant(f"al{n}", f"p{n % 3}", partner, "uk-fr", members, minutes, date(2026, 12, 31), state)


# ------------------------------------------------------------------ grants
def test_gpu_minutes_round_down_never_granting_more() -> None:
    assert gpu_minutes(1.0, 1.0) == 60
    assert gpu_minutes(0.1, 1.0) == 6
    assert gpu_minutes(0.016, 1.0) == 0
    assert gpu_minutes(10.0, 0.0) == 0


@pytest.fixture
def fed() -> Federation:
    from accord.adapters.federation_file import load_federation
    return load_federation(DEMO)


def _allocation(fed: Federation, units: float, site: str,
                state: AllocationState = AllocationState.APPROVED, end: str = "2026-12") -> Allocation:
    host = fed.site(site).partner
    return Allocation("al1", "evals", "x", host, units, "2026-01", end, (site,), state, "ada", NOW)


def _project(partner: str = "zz") -> Project:
    return Project("evals", "Evals", "ada", partner, None, frozenset({"ada", "bob"}), NOW)


def test_an_allocation_becomes_gpu_minutes_through_the_sites_rate(fed: Federation) -> None:
    site = fed.sites[0]
    rate = max(fed.rate(p.gpu_model, NOW).units_per_gpu_hour for p in site.pools)
    projects = {"evals": _project()}
    grants, bad = site_grants(fed, site.id, [_allocation(fed, 100, site.id)], projects, NOW.date())
    assert not bad and grants[0].gpu_minutes == gpu_minutes(100, rate)
    assert grants[0].members == ("ada", "bob") and grants[0].end == date(2026, 12, 31)
    assert grants[0].state is GrantState.OPEN


def test_an_allocation_over_several_sites_is_split_by_their_gpus(fed: Federation) -> None:
    """uk has isambard-ai (5,448 GPUs) and dawn (1,024): an allocation naming both (or none)
    gives each its GPUs' share, so the two limits together never buy more than the units."""
    projects = {"evals": _project()}
    for sites in (("isambard-ai", "dawn"), ()):
        a = replace(_allocation(fed, 1000, "dawn"), sites=sites)
        got = {}
        for s in ("isambard-ai", "dawn"):
            [g], bad = site_grants(fed, s, [a], projects, NOW.date())
            rate = max(fed.rate(p.gpu_model, NOW).units_per_gpu_hour for p in fed.site(s).pools)
            got[s] = (g.gpu_minutes, rate)
            assert not bad
        assert got["dawn"][0] == gpu_minutes(1000 * 1024 / 6472, got["dawn"][1])
        assert got["isambard-ai"][0] == gpu_minutes(1000 * 5448 / 6472, got["isambard-ai"][1])
        assert sum(m / 60 * r for m, r in got.values()) <= 1000
    alone = site_grants(fed, "dawn", [_allocation(fed, 1000, "dawn")], projects, NOW.date())[0][0]
    assert alone.gpu_minutes == gpu_minutes(1000, got["dawn"][1])


def test_what_the_site_cannot_express_is_named(fed: Federation) -> None:
    site = fed.sites[0]
    tiny = _allocation(fed, 1e-6, site.id)
    grants, bad = site_grants(fed, site.id, [tiny], {"evals": _project()}, NOW.date())
    assert not grants and bad[0].problem.where == "units"
    assert "less than one GPU-minute" in str(bad[0].problem)
    no_rate = replace(fed, exchange_rates=tuple(r for r in fed.exchange_rates
                                                 if r.gpu_model != site.pools[0].gpu_model))
    grants, bad = site_grants(no_rate, site.id, [_allocation(fed, 100, site.id)], {"evals": _project()},
                              NOW.date())
    assert not grants and bad[0].problem.where == "gpu_model"
    assert site.pools[0].gpu_model in str(bad[0].problem)
    later: tuple[ExchangeRate, ...] = tuple(replace(r, valid_from=date(2030, 1, 1))
                                            for r in fed.exchange_rates)
    future = replace(fed, exchange_rates=later)
    assert site_grants(future, site.id, [_allocation(fed, 100, site.id)], {"evals": _project()},
                       NOW.date())[1][0].problem.where == "gpu_model"


def test_revoked_ended_and_unstarted_allocations_are_closed(fed: Federation) -> None:
    site = fed.sites[0].id
    projects = {"evals": _project()}
    revoked = revoke(_allocation(fed, 100, site), "claire", NOW, "suspended")
    ended = _allocation(fed, 100, site, end="2026-05")
    refused = _allocation(fed, 100, site, AllocationState.REFUSED)
    grants, _ = site_grants(fed, site, [revoked, ended, refused], projects, NOW.date())
    assert [(g.state, g.reason) for g in grants] == [
        (GrantState.CLOSED, "revoked: suspended"), (GrantState.CLOSED, "ended on 2026-05-31")]


def test_revoke_and_increase_only_what_is_approved(fed: Federation) -> None:
    a = _allocation(fed, 100, fed.sites[0].id)
    assert increase(a, 50, "claire", NOW, "more").units == 150
    with pytest.raises(InvalidInput):
        increase(a, 0, "claire", NOW, "")
    with pytest.raises(InvalidInput):
        revoke(a, "claire", NOW, " ")
    gone = revoke(a, "claire", NOW, "stop")
    with pytest.raises(Conflict):
        revoke(gone, "c", NOW, "x")
    with pytest.raises(Conflict):
        increase(gone, 1, "c", NOW, "")


# ------------------------------------------------------------------ identities
def test_identity_policies() -> None:
    assert local_name(parse_policy("create:v-"), "ada", "uk") == "v-ada"
    assert local_name(parse_policy("map:{partner}_{user}"), "ada", "uk") == "uk_ada"
    with pytest.raises(InvalidInput, match="cannot produce a username"):
        local_name(parse_policy("create:v-"), "bad.user", "uk")
    with pytest.raises(InvalidInput, match="cannot produce"):
        local_name(parse_policy("map:{user}"), "x" * 40, "uk")
    for bad in ("create", "make:x", "create:1x", "map:fixed", "map:{who}", "create:" + "x" * 20):
        with pytest.raises(InvalidInput, match="--identity"):
            parse_policy(bad)


# ------------------------------------------------------------------ planner
def test_the_tree_is_built_top_down_with_limits_in_the_same_command() -> None:
    desired = desired_tree([grant(1, ("ada", "bob"))], {"ada": "v-ada", "bob": "v-bob"})
    actions = plan(desired, actual_tree([]), None)
    assert [(a.kind, a.account) for a in actions] == [
        (ActionKind.ADD_ACCOUNT, "acc-pt-uk"), (ActionKind.ADD_ACCOUNT, "acc-pj-p1"),
        (ActionKind.ADD_ACCOUNT, "acc-al1"), (ActionKind.ADD_USER, "acc-al1"),
        (ActionKind.ADD_USER, "acc-al1")]
    assert actions[2].limits == Limits(60) and not any(a.drift for a in actions)


def test_members_without_a_local_user_wait() -> None:
    desired = desired_tree([grant(1, ("ada", "bad.user"))], {"ada": "v-ada"})
    assert desired.users == frozenset({("acc-al1", "v-ada")})


def test_only_accords_accounts_are_touched() -> None:
    actual = actual_tree([Assoc("accord"), Assoc("accord", user="root"), Assoc("physics", user="bob")])
    assert plan(desired_tree([], {}), actual, None) == []


def test_drift_is_told_apart_from_a_change_at_the_hub() -> None:
    g = grant(1)
    desired = desired_tree([g], {"ada": "v-ada"})
    actual = Tree(desired.accounts, desired.users)
    hand = actual
    tampered = Tree({**actual.accounts, "acc-al1": replace(actual.accounts["acc-al1"], limits=Limits(9999))},
                    actual.users | {("acc-al1", "root")})
    drift = plan(desired, tampered, previous=desired)
    assert {(a.kind, a.drift) for a in drift} == {(ActionKind.SET_LIMITS, True),
                                                  (ActionKind.REMOVE_USER, True)}
    raised = desired_tree([replace(g, gpu_minutes=120)], {"ada": "v-ada"})
    change = plan(raised, hand, previous=desired)
    assert [(a.kind, a.drift, a.limits) for a in change] == [(ActionKind.SET_LIMITS, False, Limits(120))]


def test_an_account_the_hub_no_longer_lists_is_closed_not_deleted() -> None:
    actual = actual_tree([Assoc("acc-pt-uk"), Assoc("acc-pj-p1", "acc-pt-uk"),
                          Assoc("acc-al1", "acc-pj-p1", limits=Limits(60)),
                          Assoc("acc-al1", user="v-ada")])
    actions = plan(desired_tree([], {}), actual, None)
    closed = {a.account: a.limits for a in actions if a.kind is ActionKind.SET_LIMITS}
    assert closed["acc-al1"] == Limits(60, 0, 0)
    assert not any(a.kind is ActionKind.ADD_ACCOUNT for a in actions)


grants_st = st.lists(
    st.builds(grant, st.integers(1, 6), st.lists(st.sampled_from(["ada", "bob", "cy", "dee"]), max_size=3,
                                                  unique=True).map(tuple),
              st.integers(1, 10_000), st.sampled_from(["uk", "fr", "ca"]), st.sampled_from(list(GrantState))),
    max_size=5).map(lambda gs: list({g.allocation: g for g in gs}.values()))
local_st = st.dictionaries(st.sampled_from(["ada", "bob", "cy", "dee"]),
                           st.sampled_from(["v-a", "v-b", "v-c"]))


def _tree_st() -> st.SearchStrategy[Tree]:
    return st.builds(lambda gs, loc, extra: Tree(desired_tree(gs, loc).accounts,
                                                 desired_tree(gs, loc).users | frozenset(extra)),
                     grants_st, local_st,
                     st.lists(st.tuples(st.sampled_from(["acc-al1", "acc-al2", "accord"]),
                                        st.sampled_from(["root", "v-a"])), max_size=3))


def _half_built(t: Tree) -> bool:
    """A user in an Accord account that is missing, or an allocation account without its limit."""
    return any(acct not in t.accounts for acct, _ in t.users if acct.startswith("acc-")) or any(
        name.startswith("acc-al") and a.limits.gpu_minutes is None for name, a in t.accounts.items())


@settings(max_examples=300, deadline=None)
@given(grants_st, local_st, _tree_st(), st.integers(0, 20))
def test_the_plan_converges_and_no_prefix_is_half_built(grants: list[SiteGrant], local: dict[str, str],
                                                        actual: Tree, stop: int) -> None:
    desired = desired_tree(grants, local)
    start = Tree(dict(actual.accounts),
                 frozenset(u for u in actual.users if u[0] in actual.accounts or not u[0].startswith("acc-")))
    actions = plan(desired, start, None)
    t = start
    for a in actions[:stop]:           # a crash after any number of actions
        t = apply(t, a)
        assert not _half_built(t) or _half_built(start)
    for a in plan(desired, t, None):   # the next sync finishes the job
        t = apply(t, a)
    assert [a for a in plan(desired, t, None) if a.kind is not ActionKind.NOTE] == []
    for name, want in desired.accounts.items():
        assert t.accounts[name].limits == want.limits
    assert desired.users <= t.users


# ------------------------------------------------------------------ Slurm's listing and the wire
def test_sacctmgr_listing_is_parsed() -> None:
    rows = parse_associations("root|||||\nacc-al1||acc-pj-p1|cpu=10,gres/gpu=6|0|0\nacc-al1|v-ada||||\n")
    t = actual_tree(rows)
    assert t.accounts["acc-al1"] == Assoc("acc-al1", "acc-pj-p1", limits=Limits(6, 0, 0))
    assert t.users == frozenset({("acc-al1", "v-ada")})


def test_desired_state_and_reports_round_trip_and_bad_ones_are_named() -> None:
    gs = [grant(1, ("ada",)), grant(2, (), state=GrantState.CLOSED)]
    assert parse_desired(desired_doc(gs, [])) == gs
    with pytest.raises(InvalidInput) as e:
        parse_desired({"grants": [{"allocation": "a", "gpu_minutes": 0}]})
    assert {p.where for p in e.value.problems} >= {"grants[0].gpu_minutes", "grants[0].project"}
    evil = {**desired_doc(gs, [])["grants"][0], "project": "x cluster=other"}
    with pytest.raises(InvalidInput, match="cannot name a Slurm account"):
        parse_desired({"grants": [evil]})
    r = SiteReport((Link("ada", "v-ada", LinkState.OK),), (GrantReport("al1", GrantStatus.OK, "acc-al1"),),
                   ("x",), "")
    assert parse_report(report_doc(r)) == r
    with pytest.raises(InvalidInput, match="links"):
        parse_report({"links": [{"user": "ada", "state": "bogus"}]})
    with pytest.raises(InvalidInput, match="too many"):
        parse_report({"drift": ["x"] * 1000})


# ------------------------------------------------------------------ the enforcer over fakes
class FakeHub:
    def __init__(self, grants: list[SiteGrant]) -> None:
        self.grants = grants
        self.reports: list[object] = []

    def desired(self) -> object:
        return desired_doc(self.grants, [])

    def report_enforcement(self, doc: object) -> None:
        self.reports.append(doc)


class FakeSlurm:
    """Associations in memory, applied by :func:`apply`; ``fail_on`` makes one account's
    commands fail as sacctmgr would."""

    def __init__(self) -> None:
        self.tree = Tree()
        self.fail_on: str | None = None
        self.down = False

    def associations(self) -> list[Assoc]:
        if self.down:
            raise Unavailable("sacctmgr: error: Problem talking to the database: Connection refused")
        return [*self.tree.accounts.values(), *(Assoc(a, a, u) for a, u in self.tree.users)]

    def job_owner(self, local_id: str) -> tuple[str, str]:
        return "acc-al1", "v-ada"

    def usage(self, period: str, start: datetime, end: datetime) -> list[AccountUsage]:
        return [AccountUsage(period, a, u, 60.0, 1) for a, u in sorted(self.tree.users)]

    def carry_out(self, action: object) -> None:
        from accord.domain.enforcement.planner import Action
        assert isinstance(action, Action)
        if action.account == self.fail_on:
            raise Unavailable("sacctmgr failed (exit 1): refused")
        self.tree = apply(self.tree, action)


class FakeUsers:
    def __init__(self) -> None:
        self.users: dict[str, LocalAccount] = {"root": LocalAccount("root", 0, 0, "root"),
                                               "v-eve": LocalAccount("v-eve", 3000, 3000, "Eve, staff")}

    def lookup(self, name: str) -> LocalAccount | None:
        return self.users.get(name)

    def create(self, name: str, comment: str) -> LocalAccount:
        self.users[name] = LocalAccount(name, 2000 + len(self.users), 2000 + len(self.users), comment)
        return self.users[name]


class Clock:
    def now(self) -> datetime:
        return NOW


def _enforcer(grants: list[SiteGrant], policy: str = "create:v-") -> tuple[SiteEnforcer, FakeHub, FakeSlurm]:
    hub, slurm = FakeHub(grants), FakeSlurm()
    e = SiteEnforcer(hub, slurm, FakeUsers(), EnforcementSettings(parse_policy(policy)), Clock())
    return e, hub, slurm


def _job(owner: str, project: str) -> Job:
    spec = JobSpec(name="j", gpus=1, time_limit_s=60, command=("true",), project=project)
    return replace(new_job("j1", spec, NOW), owner=owner, placement=Placement("s", "p", "uk-fr"))


def test_a_sync_makes_users_accounts_and_jobs_run_as_the_visitor() -> None:
    e, hub, _ = _enforcer([grant(1, ("ada", "bad.user"))])
    with pytest.raises(Busy):
        e.run_as(_job("ada", "p1"))
    report = e.sync()
    assert {x.user: x.state for x in report.links} == {"ada": LinkState.OK, "bad.user": LinkState.ERROR}
    assert report.grants[0].status is GrantStatus.OK
    who = e.run_as(_job("ada", "p1"))
    assert (who.account, who.user) == ("acc-al1", "v-ada")
    with pytest.raises(Conflict, match="no open allocation"):
        e.run_as(_job("ada", "other"))
    hub.grants.append(replace(grant(4, ("ada",)), project="p4"))   # approved just now: synced again
    e._synced_at = float("-inf")
    assert e.run_as(_job("ada", "p1")).account == "acc-al1"
    assert e.run_as(replace(_job("ada", "p1"), spec=replace(_job("ada", "p1").spec, project="p4"))) \
        .account == "acc-al4"
    assert any(d["links"][0]["state"] == "creating"
               for d in hub.reports if isinstance(d, dict) and d["links"])


def test_a_failing_sacctmgr_leaves_no_half_tree_and_the_next_sync_finishes() -> None:
    e, _, slurm = _enforcer([grant(1, ("ada",))])
    slurm.fail_on = "acc-pj-p1"
    report = e.sync()
    assert report.grants[0].status is GrantStatus.ERROR and "refused" in report.grants[0].reason
    assert set(slurm.tree.accounts) == {"acc-pt-uk"} and not slurm.tree.users
    slurm.fail_on = None
    assert e.sync().grants[0].status is GrantStatus.OK
    slurm.down = True
    down = e.sync()
    assert down.error and "Connection refused" in down.grants[0].reason


def test_drift_is_put_back_or_only_reported() -> None:
    e, _, slurm = _enforcer([grant(1, ("ada",))])
    e.sync()
    slurm.tree = Tree({**slurm.tree.accounts, "acc-al1": Assoc("acc-al1", "acc-pj-p1", limits=Limits(5))},
                      slurm.tree.users)
    report = e.sync()
    assert report.drift and "put back" in report.drift[0]
    assert slurm.tree.accounts["acc-al1"].limits == Limits(60)
    e.settings = replace(e.settings, repair_drift=False)
    slurm.tree = Tree({**slurm.tree.accounts, "acc-al1": Assoc("acc-al1", "acc-pj-p1", limits=Limits(5))},
                      slurm.tree.users)
    report = e.sync()
    assert "reported only" in report.drift[0] and slurm.tree.accounts["acc-al1"].limits == Limits(5)


def test_after_a_restart_a_hand_made_change_is_still_drift(tmp_path: Path) -> None:
    """The tree last applied is kept in the agent's state file: a restarted agent that only
    reports drift leaves a change made by hand while it was down, and says so."""
    from accord.adapters.agent_state import SqliteAgentState
    hub, slurm = FakeHub([grant(1, ("ada",))]), FakeSlurm()
    settings = EnforcementSettings(parse_policy("create:v-"), repair_drift=False)
    state = SqliteAgentState(tmp_path / "agent.db")
    SiteEnforcer(hub, slurm, FakeUsers(), settings, Clock(), memory=state).sync()
    state.close()
    slurm.tree = Tree({**slurm.tree.accounts, "acc-al1": Assoc("acc-al1", "acc-pj-p1", limits=Limits(5))},
                      slurm.tree.users)
    again = SqliteAgentState(tmp_path / "agent.db")
    assert again.load_tree() is not None
    report = SiteEnforcer(hub, slurm, FakeUsers(), settings, Clock(), memory=again).sync()
    assert report.drift and "reported only" in report.drift[0], report.drift
    assert slurm.tree.accounts["acc-al1"].limits == Limits(5)
    without = SiteEnforcer(hub, slurm, FakeUsers(), settings, Clock()).sync()   # no memory: the hub's
    assert not without.drift and slurm.tree.accounts["acc-al1"].limits == Limits(60)


@given(st.lists(st.tuples(st.sampled_from(["acc-a", "acc-b"]), st.sampled_from(["", "u1"]),
                          st.none() | st.integers(0, 10**12)), max_size=6))
def test_the_kept_tree_round_trips(rows: list[tuple[str, str, int | None]]) -> None:
    tree = Tree({a: Assoc(a, "root", limits=Limits(g, g, None)) for a, _, g in rows},
                frozenset((a, u) for a, u, _ in rows if u))
    assert parse_tree(json.loads(json.dumps(tree_doc(tree)))) == tree


def test_the_policy_never_takes_a_system_or_foreign_user() -> None:
    e, _, _ = _enforcer([grant(1, ("root",))], policy="map:{user}")
    assert "system account" in e.sync().links[0].reason
    e, _, _ = _enforcer([grant(1, ("eve",))], policy="create:v-")
    assert "not made by Accord" in e.sync().links[0].reason
    e, _, _ = _enforcer([grant(1, ("ada", "bob"))], policy="map:{partner}")
    links = {x.user: x for x in e.sync().links}
    assert links["bob"].state is LinkState.ERROR and "same local user" in links["bob"].reason
    assert MARK == "accord visitor"


def test_an_ended_grant_is_closed_by_the_sites_own_clock() -> None:
    e, _, slurm = _enforcer([replace(grant(1, ("ada",)), end=date(2026, 6, 1))])
    e.sync()
    assert slurm.tree.accounts[allocation_account("al1")].limits == Limits(60, 0, 0)


def test_site_status_reads_for_people() -> None:
    from accord.cli.site import status_text
    sync = {"at": "2026-06-15T12:00:00", "state": "error", "error": "slurmdbd down"}
    doc = {"site": "jeanzay", "last_sync": sync, "drift_at": "2026-06-15T11:59:00",
           "drift": ["remove user root from acc-al1: added by hand (put back)"],
           "allocations": [{"allocation": "al1", "status": "ok", "account": "acc-al1", "gpu_minutes": 6,
                            "end": "2026-07-31", "state": "closed", "closed_because": "revoked: stop",
                            "reason": ""},
                           {"allocation": "al2", "status": "error",
                            "reason": "units: buy less than one GPU-minute"}],
           "identities": [{"user": "ada", "site": "", "local_user": "jz-ada", "state": "ok", "reason": ""}]}
    text = status_text(doc)
    assert "last sync 2026-06-15T12:00:00 error: slurmdbd down" in text
    assert "acc-al1 6 GPU-min to 2026-07-31 closed (revoked: stop)" in text
    assert "al2  error" in text and "less than one GPU-minute" in text
    assert "ada → jz-ada (ok)" in text and "added by hand" in text
