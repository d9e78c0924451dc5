"""Visitors' local usernames, chosen by the site (pure).

The site's agent is given a policy (``accord site run --identity POLICY``):

``create:PREFIX``
    the agent creates a local user ``PREFIX`` + the hub user id for each visitor
    (``create:v-`` makes ``v-ada`` for ``ada``);
``map:TEMPLATE``
    each visitor maps to an existing local user named by ``TEMPLATE``, in which ``{user}``
    is the hub user id and ``{partner}`` the visitor's project's partner
    (``map:{partner}_{user}`` maps ``ada`` of ``uk`` to ``uk_ada``); the agent never creates one.

Either way the result must be a portable POSIX username (``[a-z_][a-z0-9_-]*``, at most 32
characters); a visitor for whom the policy cannot produce one is linked in state ``error``
with the reason, and retried at every sync.

>>> p = parse_policy("create:v-")
>>> local_name(p, "ada", "uk")
'v-ada'
>>> local_name(parse_policy("map:{partner}_{user}"), "ada", "uk")
'uk_ada'
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from accord.domain.errors import InvalidInput, Problem

USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
USERNAME_ALLOWED = "a POSIX username: [a-z_][a-z0-9_-]*, at most 32 characters"
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = ("user", "partner")
POLICY_ALLOWED = ("create:PREFIX (e.g. create:v-) or map:TEMPLATE with {user} and/or {partner} "
                  "(e.g. map:{user})")


class PolicyKind(enum.Enum):
    """How the site finds a visitor's local user."""

    CREATE = "create"   # the agent creates PREFIX+user with useradd
    MAP = "map"         # an existing local user named by a template


class LinkState(enum.Enum):
    """Where a visitor's local identity at a site stands."""

    REQUESTED = "requested"   # the hub wants it; the agent has not said yet
    CREATING = "creating"     # the agent is making it
    OK = "ok"                 # it exists; jobs run as it
    ERROR = "error"           # it could not be made (the reason says why); retried each sync
    REMOVED = "removed"       # no longer a member of any allocation here


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """A parsed ``--identity`` value."""

    kind: PolicyKind
    value: str   # the prefix or the template


def parse_policy(text: str) -> IdentityPolicy:
    """``create:PREFIX`` or ``map:TEMPLATE``.

    Raises:
        InvalidInput: any other form, a prefix that cannot start a username, a template
            with unknown placeholders or none.
    """
    kind, sep, value = text.partition(":")
    if not sep or kind not in [k.value for k in PolicyKind]:
        raise InvalidInput([Problem("--identity", "is not a policy", text[:80], POLICY_ALLOWED)])
    policy = IdentityPolicy(PolicyKind(kind), value)
    if policy.kind is PolicyKind.CREATE:
        if len(value) > 16 or not USERNAME.match(value + "x"):
            raise InvalidInput([Problem("--identity", "the prefix cannot start a username", value[:80],
                                        "up to 16 of [a-z0-9_-], not starting with a digit or '-'")])
        return policy
    names = PLACEHOLDER.findall(value)
    bad = [n for n in names if n not in PLACEHOLDERS]
    if bad or not names or len(value) > 64:
        raise InvalidInput([Problem("--identity", "the template must use {user} and/or {partner} only",
                                    value[:80], POLICY_ALLOWED)])
    return policy


def local_name(policy: IdentityPolicy, user: str, partner: str) -> str:
    """The local username the policy gives the visitor ``user`` of ``partner``.

    Raises:
        InvalidInput: the policy cannot produce a valid username for them (names the user,
            what it produced and what is allowed).
    """
    if policy.kind is PolicyKind.CREATE:
        name = policy.value + user
    else:
        name = policy.value.replace("{user}", user).replace("{partner}", partner)
    if not USERNAME.match(name):
        raise InvalidInput([Problem(f"users[{user}]", f"the site's policy {policy.kind.value}:"
                                    f"{policy.value} cannot produce a username for them", name[:80],
                                    USERNAME_ALLOWED)])
    return name
