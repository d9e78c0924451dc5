"""The hub's side of site enforcement (``docs/design/site-enforcement.md``): the desired
state each agent site must enforce in its own Slurm (its allocations as GPU-minutes, members,
end and open/closed), what the agents report of it (accounts made, local identities, drift),
and the view of it for the site's operator and for each user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accord.domain.access.rules import Principal, Role, TokenScope
from accord.domain.enforcement.grants import SiteGrant, Unexpressible, site_grants
from accord.domain.enforcement.identity import LinkState
from accord.domain.enforcement.planner import allocation_account
from accord.domain.enforcement.usage import compare_allocations
from accord.domain.enforcement.wire import LinkKind, LinkRecord, desired_doc, parse_report
from accord.domain.errors import Forbidden
from accord.domain.federation.model import BackendKind, Federation
from accord.domain.ledger.entries import Entry
from accord.domain.ledger.usage import UsageRecord
from accord.ports import AccessStore, Clock
from accord.ports.enforcement import SiteLinkStore


class EnforcementService:
    """Desired state for agents, their reports, and the views of both."""

    def __init__(self, federation: Federation, access: AccessStore, links: SiteLinkStore,
                 clock: Clock) -> None:
        self.federation = federation
        self.access = access
        self.links = links
        self.clock = clock

    def grants(self, site: str) -> tuple[list[SiteGrant], list[Unexpressible]]:
        """The site's allocations as it must enforce them today, and those it cannot express."""
        projects = {p.id: p for p in self.access.projects()}
        return site_grants(self.federation, site, self.access.allocations(), projects,
                           self.clock.now().date())

    def desired(self, site: str) -> dict[str, Any]:
        """The desired-state document an agent fetches."""
        return desired_doc(*self.grants(site))

    def report(self, site: str, doc: object) -> None:
        """Keep an agent's report of one sync.

        Raises:
            InvalidInput: a malformed report (every bad field named).
        """
        self.links.save_report(site, parse_report(doc), self.clock.now())

    def status(self, p: Principal, site: str) -> dict[str, Any]:
        """What the site enforces and how it stands (admins, the site's operators, the host
        partner's programme officers and auditors).

        Raises:
            Forbidden: anyone else, or a token without projects:read; NotFound: no such site.
        """
        partner = self.federation.site(site).partner
        if not p.allows(TokenScope.PROJECTS_READ):
            raise Forbidden("this token lacks the projects:read scope")
        if not (p.is_admin or p.holds(Role.SITE_OPERATOR, site) or p.holds(Role.PROGRAMME_OFFICER, partner)
                or p.holds(Role.AUDITOR, partner)):
            raise Forbidden(f"you may not see the enforcement state of site {site}")
        grants, bad = self.grants(site)
        rows = self.links.site_links(site)
        by = {(r.kind, r.subject): r for r in rows}
        sync, drift = by.get((LinkKind.SYNC, "")), by.get((LinkKind.DRIFT, ""))
        return {"site": site,
                "last_sync": None if sync is None else {"at": sync.updated_at.isoformat(),
                                                        "state": sync.state, "error": sync.reason},
                "drift": drift.reason.split("\n") if drift and drift.reason else [],
                "drift_at": drift.updated_at.isoformat() if drift else None,
                "allocations": [_grant_view(g, by.get((LinkKind.GRANT, g.allocation))) for g in grants]
                + [{"allocation": u.allocation, "status": "error", "reason": str(u.problem)} for u in bad],
                "identities": _identities(grants, [r for r in rows if r.kind is LinkKind.IDENTITY])}

    def account_checks(self, period: str, records: Iterable[UsageRecord],
                       entries: Iterable[Entry]) -> list[dict[str, Any]]:
        """Per agent site and allocation: Slurm's own GPU-seconds in the allocation's account
        (as the site's agent last reported them) against Accord's usage records naming that
        account and the ledger entries charging them, for ``period``; then the site's usage
        that names no allocation's account, per project and agreement."""
        records, entries = list(records), list(entries)
        out = []
        for site in (s.id for s in self.federation.sites if s.backend is BackendKind.AGENT):
            grants, _ = self.grants(site)
            slurm = self.links.site_usage(site, period)
            out += [{"site": c.site, "allocation": c.allocation, "project": c.project,
                     "agreement": c.agreement, "account": c.account or None, "users": list(c.users),
                     "slurm_gpu_seconds": round(c.slurm_gpu_seconds, 3),
                     "usage_gpu_seconds": round(c.usage_gpu_seconds, 3),
                     "ledger_gpu_seconds": round(c.ledger_gpu_seconds, 3), "ok": c.ok}
                    for c in compare_allocations(site, period, grants, slurm, records, entries)]
        return out

    def identities(self, user: str) -> list[dict[str, Any]]:
        """The user's local identities at every site."""
        return [_link_view(r) for r in self.links.user_links(user)]


def _grant_view(g: SiteGrant, row: LinkRecord | None) -> dict[str, Any]:
    return {"allocation": g.allocation, "project": g.project, "partner": g.partner,
            "gpu_minutes": g.gpu_minutes, "end": g.end.isoformat(), "state": g.state.value,
            "closed_because": g.reason, "account": row.value if row else allocation_account(g.allocation),
            "status": row.state if row else "pending", "reason": row.reason if row else "",
            "updated_at": row.updated_at.isoformat() if row else None}


def _identities(grants: list[SiteGrant], rows: list[LinkRecord]) -> list[dict[str, Any]]:
    members = {m for g in grants for m in g.members}
    seen = {r.subject: r for r in rows}
    out = [_link_view(seen[m]) if m in seen else
           {"user": m, "site": "", "local_user": "", "state": LinkState.REQUESTED.value, "reason": "",
            "updated_at": None} for m in sorted(members)]
    out += [{**_link_view(r), "state": LinkState.REMOVED.value} for r in rows if r.subject not in members]
    return out


def _link_view(r: LinkRecord) -> dict[str, Any]:
    return {"user": r.subject, "site": r.site, "local_user": r.value, "state": r.state, "reason": r.reason,
            "updated_at": r.updated_at.isoformat()}
