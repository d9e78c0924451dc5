"""Ports of site enforcement (``docs/design/site-enforcement.md``): the hub's record of what
agents said, and the agent's reach into its site's Slurm accounts and local users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from accord.domain.enforcement.planner import Action, Assoc, Tree
from accord.domain.enforcement.usage import AccountUsage
from accord.domain.enforcement.wire import LinkRecord, SiteReport


class SiteLinkStore(Protocol):
    """The hub's record of each site's enforcement state."""

    def save_report(self, site: str, report: SiteReport, at: datetime) -> None:
        """Keep one sync's report (identities and grants upserted, sync and drift replaced)."""

    def site_links(self, site: str) -> list[LinkRecord]:
        """Everything the site's agent last said."""

    def user_links(self, user: str) -> list[LinkRecord]:
        """The user's local identities at every site."""

    def site_usage(self, site: str, period: str) -> list[AccountUsage]:
        """Slurm's per-account totals the site's agent last reported for ``period``."""


class SlurmAccounts(Protocol):
    """A cluster's associations, through ``sacctmgr``."""

    def associations(self) -> list[Assoc]:
        """Every association of the cluster (Accord's and others').

        Raises:
            Unavailable: sacctmgr failed or slurmdbd did not answer.
        """

    def carry_out(self, action: Action) -> None:
        """Run one action.

        Raises:
            Unavailable: sacctmgr failed (its message in the error).
        """

    def job_owner(self, local_id: str) -> tuple[str, str]:
        """The Slurm account and user of one job.

        Raises:
            Unavailable: sacct failed or does not know the job.
        """

    def usage(self, period: str, start: datetime, end: datetime) -> list[AccountUsage]:
        """Slurm's GPU-seconds per Accord account and user over [start, end) (``sacct``).

        Raises:
            Unavailable: sacct failed.
        """


@dataclass(frozen=True, slots=True)
class LocalAccount:
    """A local Unix user."""

    name: str
    uid: int
    gid: int
    comment: str   # the GECOS field: Accord marks the users it made


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who a job runs as at the site, and under which Slurm account."""

    account: str
    user: str
    uid: int
    gid: int


class LocalUsers(Protocol):
    """The site's local Unix users."""

    def lookup(self, name: str) -> LocalAccount | None:
        """The user, or None when there is no such user."""

    def create(self, name: str, comment: str) -> LocalAccount:
        """Create the user (with a group of its own, no password).

        Raises:
            Unavailable: useradd failed (its message in the error).
        """


class AppliedTree(Protocol):
    """Where the agent keeps the account tree it last applied in full, so that after a
    restart a hand-made change is still told apart from a change at the hub."""

    def load_tree(self) -> Tree | None:
        """The tree last saved (None: none yet, or unreadable)."""

    def save_tree(self, tree: Tree) -> None:
        """Keep ``tree`` (replacing the last)."""


class EnforcementLink(Protocol):
    """The agent's signed line to the hub, for enforcement."""

    def desired(self) -> object:
        """The site's desired state (``GET /api/agent/v1/enforcement``).

        Raises:
            Unavailable: the hub was not reached. AccordError: the hub refused.
        """

    def report_enforcement(self, doc: object) -> None:
        """One sync's outcome (``POST /api/agent/v1/enforcement``).

        Raises:
            Unavailable: the hub was not reached. AccordError: the hub refused.
        """
