"""The agent's side of site enforcement (``docs/design/site-enforcement.md``): each sync
fetches the hub's desired state for this site, gives every visitor a local user by the site's
policy, compares Slurm's associations with the desired account tree, carries out the plan
(drift put back, or only reported, by the site's setting), and reports the outcome to the hub.

It keeps nothing on disk: every sync starts from what the hub and Slurm say, so an agent
killed in the middle of one converges at the next. Jobs are submitted under their
allocation's account as the visitor's local user (:meth:`SiteEnforcer.run_as`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from accord.domain.enforcement.grants import GrantState, SiteGrant
from accord.domain.enforcement.identity import IdentityPolicy, LinkState, PolicyKind, local_name
from accord.domain.enforcement.planner import (
    Action,
    ActionKind,
    Tree,
    actual_tree,
    allocation_account,
    desired_tree,
    plan,
)
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.enforcement.wire import (
    GrantReport,
    GrantStatus,
    Link,
    SiteReport,
    parse_desired,
    report_doc,
)
from accord.domain.errors import Busy, Conflict, InvalidInput, Unavailable
from accord.domain.jobs.model import Job
from accord.ports import Clock
from accord.ports.enforcement import (
    AppliedTree,
    EnforcementLink,
    LocalAccount,
    LocalUsers,
    RunAs,
    SlurmAccounts,
)

log = logging.getLogger("accord.agent")
MARK = "accord visitor"   # the GECOS of users the agent made
RESYNC_ON_MISS_S = 5.0    # a job no allocation covers: sync again first, at most this often


@dataclass(frozen=True, slots=True)
class EnforcementSettings:
    """The site's choices: the identity policy, whether drift is put back, how often to sync."""

    policy: IdentityPolicy
    repair_drift: bool = True
    sync_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one round of actions did: the failures, by account."""

    failed: dict[str, str]
    done: list[Action]


class SiteEnforcer:
    """Keeps one site's Slurm associations and local users as the hub's allocations say."""

    def __init__(self, hub: EnforcementLink, accounts: SlurmAccounts, users: LocalUsers,
                 settings: EnforcementSettings, clock: Clock,
                 monotonic: Callable[[], float] = time.monotonic, memory: AppliedTree | None = None) -> None:
        self.hub = hub
        self.accounts = accounts
        self.users = users
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self._synced_at = float("-inf")
        self.memory = memory
        self._previous: Tree | None = memory.load_tree() if memory is not None else None
        self._grants: list[SiteGrant] = []
        self._links: dict[str, tuple[Link, LocalAccount | None]] = {}
        self._ready: set[str] = set()     # allocation accounts made with their limits
        self.synced = False

    # ------------------------------------------------------------ one sync
    def step(self) -> SiteReport | None:
        """A sync when one is due.

        Raises:
            Unavailable: the hub was not reached (Slurm's failures are reported, not raised).
        """
        if self.monotonic() - self._synced_at < self.settings.sync_s:
            return None
        return self.sync()

    def sync(self) -> SiteReport:
        """Fetch, plan, carry out, report.

        Raises:
            Unavailable: the hub was not reached.
            InvalidInput: the hub's desired state is malformed.
        """
        today = self.clock.now().date()
        grants = [_ended(g, today) for g in parse_desired(self.hub.desired())]
        links = self._identities(grants)
        local = {u: acct.name for u, (link, acct) in links.items() if acct is not None}
        try:
            report = self._converge(grants, desired_tree(grants, local), links)
        except Unavailable as exc:
            log.warning("site accounts not synced: %s", exc)
            report = self._unreached(grants, links, exc)
        self._grants, self._links, self.synced = grants, links, True
        report = replace(report, usage=tuple(self._usage()))
        self.hub.report_enforcement(report_doc(report))
        self._synced_at = self.monotonic()
        return report

    def _unreached(self, grants: list[SiteGrant], links: dict[str, tuple[Link, LocalAccount | None]],
                   exc: Unavailable) -> SiteReport:
        errors = tuple(GrantReport(g.allocation, GrantStatus.ERROR, allocation_account(g.allocation),
                                   f"Slurm not reached: {exc}") for g in grants)
        return SiteReport(tuple(x for x, _ in links.values()), errors, (), str(exc))

    def _converge(self, grants: list[SiteGrant], desired: Tree,
                  links: dict[str, tuple[Link, LocalAccount | None]]) -> SiteReport:
        actions = plan(desired, actual_tree(self.accounts.associations()), self._previous)
        todo = [a for a in actions
                if a.kind is not ActionKind.NOTE and (self.settings.repair_drift or not a.drift)]
        outcome = self._carry_out(todo)
        after = actual_tree(self.accounts.associations())
        if not outcome.failed and desired != self._previous:
            self._previous = desired
            if self.memory is not None:
                self.memory.save_tree(desired)
        drift = [_drift_line(a, a in outcome.done) for a in actions if a.drift]
        self._ready = {n for n, have in after.accounts.items()
                       if n in desired.accounts and have.limits == desired.accounts[n].limits}
        return SiteReport(tuple(x for x, _ in links.values()),
                          tuple(self._grant_report(g, outcome.failed) for g in grants), tuple(drift))

    def _carry_out(self, actions: Sequence[Action]) -> Outcome:
        """Every action in order; after a failure, nothing more but independent removals
        (so a tree is never built below an account that failed)."""
        failed: dict[str, str] = {}
        done: list[Action] = []
        for a in actions:
            if failed and a.kind is not ActionKind.REMOVE_USER:
                continue
            try:
                self.accounts.carry_out(a)
                done.append(a)
                log.info("site accounts: %s", a.describe())
            except Unavailable as exc:
                failed[a.account] = f"{a.describe()} failed: {exc}"
                log.warning("site accounts: %s failed: %s", a.describe(), exc)
        return Outcome(failed, done)

    def _grant_report(self, g: SiteGrant, failed: dict[str, str]) -> GrantReport:
        name = allocation_account(g.allocation)
        if name in self._ready:
            return GrantReport(g.allocation, GrantStatus.OK, name)
        reason = failed.get(name) or next(iter(failed.values()), "not made yet (the next sync makes it)")
        return GrantReport(g.allocation, GrantStatus.ERROR if failed else GrantStatus.PENDING, name, reason)

    def _usage(self) -> list[AccountUsage]:
        """Slurm's per-account totals for this month and the last (none if sacct fails)."""
        now = self.clock.now().astimezone(UTC)
        first = datetime(now.year, now.month, 1, tzinfo=UTC)
        last = datetime(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1, tzinfo=UTC)
        try:
            return [*self.accounts.usage(f"{last:%Y-%m}", last, first),
                    *self.accounts.usage(f"{first:%Y-%m}", first, now)]
        except Unavailable as exc:
            log.warning("Slurm's per-account usage not read: %s", exc)
            return []

    # ------------------------------------------------------------ identities
    def _identities(self, grants: list[SiteGrant]) -> dict[str, tuple[Link, LocalAccount | None]]:
        partner_of = {m: g.partner for g in reversed(grants) for m in g.members}
        links: dict[str, tuple[Link, LocalAccount | None]] = {}
        taken: dict[str, str] = {}
        for user in sorted(partner_of):
            links[user] = self._identity(user, partner_of[user], taken)
        return links

    def _identity(self, user: str, partner: str,
                  taken: dict[str, str]) -> tuple[Link, LocalAccount | None]:
        try:
            name = local_name(self.settings.policy, user, partner)
        except InvalidInput as exc:
            return Link(user, "", LinkState.ERROR, str(exc)), None
        if taken.setdefault(name, user) != user:
            return Link(user, name, LinkState.ERROR, f"the site's policy gives {taken[name]} the same "
                        f"local user {name}; each visitor needs their own"), None
        found = self.users.lookup(name)
        problem = self._unusable(user, name, found)
        if problem:
            return Link(user, name, LinkState.ERROR, problem), None
        if found is None:
            return self._create(user, name)
        return Link(user, name, LinkState.OK), found

    def _unusable(self, user: str, name: str, found: LocalAccount | None) -> str:
        """Why the local user cannot be the visitor's ("" when it can)."""
        if found is None:
            return "" if self.settings.policy.kind is PolicyKind.CREATE else \
                f"no local user {name} exists (the map policy never creates one; ask the site's admins)"
        if found.uid < 1000:
            return f"local user {name} is a system account (uid {found.uid}): never a visitor's"
        if self.settings.policy.kind is PolicyKind.CREATE and found.comment != f"{MARK} {user}":
            return f"local user {name} exists and was not made by Accord for {user}"
        return ""

    def _create(self, user: str, name: str) -> tuple[Link, LocalAccount | None]:
        try:
            self.hub.report_enforcement(report_doc(SiteReport((Link(user, name, LinkState.CREATING),))))
            made = self.users.create(name, f"{MARK} {user}")
        except Unavailable as exc:
            return Link(user, name, LinkState.ERROR, f"could not create it: {exc}"), None
        log.info("created local user %s for visitor %s", name, user)
        return Link(user, name, LinkState.OK), made

    # ------------------------------------------------------------ jobs
    def job_owner(self, local_id: str) -> tuple[str, str]:
        """The Slurm account and local user a job ran as (for its signed usage).

        Raises:
            Unavailable: Slurm does not say.
        """
        return self.accounts.job_owner(local_id)

    def run_as(self, job: Job) -> RunAs:
        """The account and local user the job runs under.

        A job no allocation covers may come just after its allocation was approved: the agent
        syncs once more (at most every few seconds) before it refuses it.

        Raises:
            Busy: not synced yet, or the visitor's user or the account is not ready (wait).
            Conflict: no open allocation here covers the job's project and owner (it fails).
            Unavailable: the hub was not reached for that sync (the job waits).
        """
        if not self.synced:
            raise Busy("waiting for the first sync of the site's accounts")
        grant = self._grant_for(job)
        if grant is None and self.monotonic() - self._synced_at >= RESYNC_ON_MISS_S:
            self.sync()
            grant = self._grant_for(job)
        if grant is None:
            raise Conflict(f"no open allocation at this site covers project {job.spec.project} for "
                           f"user {job.owner or '(none)'}; Slurm would refuse the job")
        link, acct = self._links.get(job.owner, (None, None))
        if link is None or acct is None:
            raise Busy(f"waiting for the local user of {job.owner}: "
                       f"{link.reason if link else 'not linked yet'}")
        name = allocation_account(grant.allocation)
        if name not in self._ready:
            raise Busy(f"waiting for Slurm account {name} of allocation {grant.allocation}")
        return RunAs(name, acct.name, acct.uid, acct.gid)

    def _grant_for(self, job: Job) -> SiteGrant | None:
        agreement = job.placement.agreement if job.placement else None
        return next((g for g in self._grants
                     if g.project == job.spec.project and job.owner in g.members
                     and g.state is GrantState.OPEN and (agreement is None or g.agreement == agreement)),
                    None)


def _ended(g: SiteGrant, today: date) -> SiteGrant:
    """The grant closed if its last day has passed by the site's own clock too."""
    if g.state is GrantState.OPEN and today > g.end:
        return replace(g, state=GrantState.CLOSED, reason=f"ended on {g.end.isoformat()}")
    return g


def _drift_line(a: Action, repaired: bool) -> str:
    return f"{a.describe()} ({'put back' if repaired else 'reported only'})"

