"""The Slurm account tree Accord wants at a site, and the actions that make Slurm's
associations so (pure).

The tree: ``root`` → ``acc-pt-PARTNER`` (the visiting partner) → ``acc-pj-PROJECT`` →
``acc-ALLOCATION`` (the allocation's account, with ``GrpTRESMins=gres/gpu=N``; when closed
also ``GrpSubmitJobs=0`` and ``GrpJobs=0``), and under it one user association per member
whose local identity is ready. Only accounts named ``acc-...`` are Accord's; nothing else at
the site is ever touched.

Never a half-built tree: an allocation's account is created in one command *with* its limits,
so no association under Accord ever exists without them; users are added only after their
account; nothing is deleted but user associations of people no longer members (Slurm refuses
that while they have jobs, and it is retried). An account the hub no longer wants is closed,
not deleted.

>>> grant_tree = desired_tree([], {})
>>> plan(grant_tree, actual_tree([]), None)
[]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.domain.enforcement.grants import GrantState, SiteGrant

ROOT = "root"
PREFIX = "acc-"


def partner_account(partner: str) -> str:
    """The visiting partner's account (``acc-pt-uk``)."""
    return f"{PREFIX}pt-{partner}"


def project_account(project: str) -> str:
    """The project's account."""
    return f"{PREFIX}pj-{project}"


def allocation_account(allocation: str) -> str:
    """The allocation's account: the one jobs are submitted under."""
    return f"{PREFIX}{allocation}"


def managed(account: str) -> bool:
    """Whether the account is Accord's to manage."""
    return account.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Limits:
    """An association's limits as Accord sets them (None: no limit)."""

    gpu_minutes: int | None = None   # GrpTRESMins=gres/gpu=N
    submit_jobs: int | None = None   # GrpSubmitJobs
    jobs: int | None = None          # GrpJobs

    @property
    def accepts_jobs(self) -> bool:
        """Whether the association takes new jobs."""
        return self.submit_jobs != 0 and self.jobs != 0


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Assoc:
    """One association: an account's own (``user`` empty) or a user's in an account."""

    account: str
    parent: str = ROOT
    user: str = ""
    limits: Limits = NO_LIMITS


@dataclass(frozen=True, slots=True)
class Tree:
    """Accord's part of a cluster's associations."""

    accounts: Mapping[str, Assoc] = field(default_factory=dict)   # name → its own association
    users: frozenset[tuple[str, str]] = frozenset()               # (account, local user)


class ActionKind(enum.Enum):
    """What one ``sacctmgr`` command does."""

    ADD_ACCOUNT = "add-account"     # with its parent and limits, in one command
    SET_LIMITS = "set-limits"
    ADD_USER = "add-user"
    REMOVE_USER = "remove-user"
    NOTE = "note"                   # a difference Accord reports but does not change


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan; ``drift``: Slurm differs from what Accord last made it (a change
    by hand), not from a change at the hub."""

    kind: ActionKind
    account: str
    parent: str = ""
    user: str = ""
    limits: Limits | None = None
    drift: bool = False
    why: str = ""

    def describe(self) -> str:
        """One line for people."""
        what = {ActionKind.ADD_ACCOUNT: f"add account {self.account} under {self.parent}",
                ActionKind.SET_LIMITS: f"set limits of {self.account}",
                ActionKind.ADD_USER: f"add user {self.user} to {self.account}",
                ActionKind.REMOVE_USER: f"remove user {self.user} from {self.account}",
                ActionKind.NOTE: f"account {self.account}"}[self.kind]
        return f"{what}: {self.why}" if self.why else what


def grant_limits(g: SiteGrant) -> Limits:
    """The allocation account's limits."""
    if g.state is GrantState.OPEN:
        return Limits(g.gpu_minutes)
    return Limits(g.gpu_minutes, 0, 0)


def desired_tree(grants: Sequence[SiteGrant], local: Mapping[str, str]) -> Tree:
    """The tree for ``grants``; ``local`` maps hub user ids to local users that are ready
    (members without one are left out until they are)."""
    accounts: dict[str, Assoc] = {}
    users: set[tuple[str, str]] = set()
    for g in grants:
        pt, pj, al = partner_account(g.partner), project_account(g.project), allocation_account(g.allocation)
        accounts.setdefault(pt, Assoc(pt, ROOT))
        accounts.setdefault(pj, Assoc(pj, pt))
        accounts[al] = Assoc(al, pj, limits=grant_limits(g))
        users.update((al, local[m]) for m in g.members if m in local)
    return Tree(accounts, frozenset(users))


def actual_tree(assocs: Iterable[Assoc]) -> Tree:
    """Accord's part of the associations Slurm lists."""
    accounts: dict[str, Assoc] = {}
    users: set[tuple[str, str]] = set()
    for a in assocs:
        if not managed(a.account):
            continue
        if a.user:
            users.add((a.account, a.user))
        else:
            accounts[a.account] = a
    return Tree(accounts, frozenset(users))


def depth(tree: Tree, account: str) -> int:
    """How far below ``root`` the account sits in ``tree`` (bounded against cycles)."""
    n = 0
    while account in tree.accounts and n < 10:
        account, n = tree.accounts[account].parent, n + 1
    return n


def plan(desired: Tree, actual: Tree, previous: Tree | None) -> list[Action]:
    """The actions that turn ``actual`` into ``desired``, in a safe order: closings first,
    then new accounts top-down (each with its limits), other limits, new users, and
    removals of users last. ``previous`` is the tree last applied in full (None after a
    restart): a difference where the hub asked for nothing new is drift."""
    closing = [a for a in _limits(desired, actual, previous) if a.limits and not a.limits.accepts_jobs]
    opening = [a for a in _limits(desired, actual, previous) if a not in closing]
    adds = sorted(_adds(desired, actual, previous), key=lambda a: depth(desired, a.account))
    return [*closing, *adds, *opening, *_users(desired, actual, previous), *_notes(desired, actual)]


def _changed(previous: Tree | None, name: str, desired: Tree) -> bool:
    return previous is None or previous.accounts.get(name) != desired.accounts.get(name)


def _adds(desired: Tree, actual: Tree, previous: Tree | None) -> list[Action]:
    return [Action(ActionKind.ADD_ACCOUNT, name, want.parent, limits=want.limits,
                   drift=not _changed(previous, name, desired),
                   why="missing" if not _changed(previous, name, desired) else "new at the hub")
            for name, want in desired.accounts.items() if name not in actual.accounts]


def _limits(desired: Tree, actual: Tree, previous: Tree | None) -> list[Action]:
    out = []
    for name, have in sorted(actual.accounts.items()):
        want = desired.accounts.get(name)
        target = want.limits if want is not None else _closed(have.limits)
        if have.limits != target:
            drift = want is not None and not _changed(previous, name, desired)
            out.append(Action(ActionKind.SET_LIMITS, name, limits=target, drift=drift,
                              why=_limits_why(have.limits, target, want is None)))
    return out


def _closed(have: Limits) -> Limits:
    """An Accord account the hub no longer lists: closed, its limit kept."""
    return Limits(have.gpu_minutes, 0, 0)


def _limits_why(have: Limits, want: Limits, unlisted: bool) -> str:
    if unlisted:
        return "no longer listed by the hub: closed to new jobs"
    return (f"GrpTRESMins gres/gpu {have.gpu_minutes} → {want.gpu_minutes}, "
            f"{'open' if have.accepts_jobs else 'closed'} → {'open' if want.accepts_jobs else 'closed'}")


def _users(desired: Tree, actual: Tree, previous: Tree | None) -> list[Action]:
    def drift(pair: tuple[str, str]) -> bool:
        return previous is not None and (pair in previous.users) == (pair in desired.users)
    adds = [Action(ActionKind.ADD_USER, acct, user=user, drift=drift((acct, user)), why="member")
            for acct, user in sorted(desired.users - actual.users) if acct in desired.accounts]
    gone = [Action(ActionKind.REMOVE_USER, acct, user=user, drift=drift((acct, user)),
                   why="not a member" if not drift((acct, user)) else "added by hand")
            for acct, user in sorted(actual.users - desired.users)]
    return [*adds, *gone]


def _notes(desired: Tree, actual: Tree) -> list[Action]:
    return [Action(ActionKind.NOTE, name, parent=have.parent, drift=True,
                   why=f"moved by hand under {have.parent}, Accord put it under "
                       f"{desired.accounts[name].parent}: move it back with sacctmgr")
            for name, have in sorted(actual.accounts.items())
            if name in desired.accounts and have.parent != desired.accounts[name].parent]


def apply(tree: Tree, action: Action) -> Tree:
    """``tree`` after ``action`` (the model of what each command does, for checks)."""
    accounts, users = dict(tree.accounts), set(tree.users)
    if action.kind is ActionKind.ADD_ACCOUNT:
        accounts[action.account] = Assoc(action.account, action.parent, limits=action.limits or NO_LIMITS)
    elif action.kind is ActionKind.SET_LIMITS and action.account in accounts:
        accounts[action.account] = Assoc(action.account, accounts[action.account].parent,
                                         limits=action.limits or NO_LIMITS)
    elif action.kind is ActionKind.ADD_USER and action.account in accounts:
        users.add((action.account, action.user))
    elif action.kind is ActionKind.REMOVE_USER:
        users.discard((action.account, action.user))
    return Tree(accounts, frozenset(users))


def tree_doc(t: Tree) -> dict[str, Any]:
    """A tree as JSON-ready data (the agent keeps the tree it last applied across restarts)."""
    return {"accounts": [[a.account, a.parent, a.user, a.limits.gpu_minutes, a.limits.submit_jobs,
                          a.limits.jobs] for a in sorted(t.accounts.values(), key=lambda a: a.account)],
            "users": sorted([list(u) for u in t.users])}


def parse_tree(d: Any) -> Tree:
    """Inverse of :func:`tree_doc`.

    Raises:
        ValueError: not a tree document.
    """
    try:
        accounts = {str(a): Assoc(str(a), str(p), str(u), Limits(_limit(g), _limit(s), _limit(j)))
                    for a, p, u, g, s, j in d["accounts"]}
        users = frozenset((str(a), str(u)) for a, u in d["users"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a tree document: {exc}") from None
    return Tree(accounts, users)


def _limit(v: Any) -> int | None:
    """Raises ValueError: not an integer or null."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"limit {v!r} is not an integer")
    return v
