"""The hub's side of the site-agent protocol: who a request is from, the orders for its site,
and what its agent reports (``docs/design/site-agent.md``).

An agent is known only by its site's keys in the federation file; it may read only its own
site's orders and report only on jobs dispatched to its own site. Usage it reports for a job
that ran must be signed by the site (:mod:`accord.domain.agent.attest`), and is kept with
that signature. Nothing here reaches a site: agents call in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from accord.domain.agent import attest
from accord.domain.agent.protocol import (
    MAX_ORDERS,
    Ack,
    CheckedReport,
    Order,
    Report,
    Resync,
    SignedRequest,
    SiteView,
    parse_acks,
    parse_exchange,
    parse_held,
    parse_log_chunk,
    parse_reports,
)
from accord.domain.errors import Forbidden, InvalidInput, NotFound, Problem, Unauthenticated
from accord.domain.federation.model import BackendKind, Federation, Site
from accord.ports import AgentStore, Clock, RequestVerifier
from accord.service.enforcement import EnforcementService


class AgentService:
    """Authenticates agents and takes their acknowledgements, reports, heartbeats and logs."""

    def __init__(
        self,
        federation: Federation,
        store: AgentStore,
        clock: Clock,
        verifier: RequestVerifier,
        nudge: Callable[[], None] = lambda: None,
        enforcement: EnforcementService | None = None,
    ) -> None:
        self.enforcement = enforcement  # the desired state agents enforce in their Slurm, and their reports
        self.federation = federation
        self.store = store
        self.clock = clock
        self.verifier = verifier
        self.nudge = nudge  # a report changed a job: the dispatcher's next pass need not wait

    def _agent_site(self, site_id: str) -> Site:
        try:
            site = self.federation.site(site_id)
        except NotFound:
            raise Unauthenticated(f"no site {site_id!r} in the federation") from None
        if site.backend is not BackendKind.AGENT or site.agent is None:
            raise Unauthenticated(f"site {site_id!r} is not an agent site (backend = {site.backend.value!r})")
        return site

    def _site_key(self, site_id: str, kid: str) -> bytes | None:
        try:
            site = self._agent_site(site_id)
        except Unauthenticated:
            return None
        assert site.agent is not None
        return next((k for k in site.agent.keys if attest.key_id(k) == kid), None)

    def authenticate(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> SignedRequest:
        """The checked request: a current key of an agent site signed it, and its nonce is new.

        Raises:
            Unauthenticated: unsigned, an unknown or revoked key, a bad or expired signature,
                or a replay (a nonce seen before).
        """
        now = self.clock.now()
        signed = self.verifier(method, url, headers, body, now, self._site_key)
        if self._site_key(signed.site, signed.key_id) is None:
            raise Unauthenticated(f"key {signed.key_id} is not a current key of site {signed.site!r}")
        if not self.store.accept(signed.site, signed.nonce, signed.expires, now, signed.key_id):
            raise Unauthenticated("request refused: replayed (its nonce was seen before)")
        return signed

    def site_view(self, site_id: str) -> SiteView:
        """What the agent is told of its own site. Raises Unauthenticated: not an agent site."""
        site = self._agent_site(site_id)
        return SiteView(site.id, site.partner, tuple((p.id, p.gpu_model, p.gpus) for p in site.pools))

    def generation(self, site_id: str) -> int:
        """Changes when this process writes an order for the site (a long poll's cue)."""
        return self.store.generation(site_id)

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(site)`` when an order for a site is committed here (a long poll's
        bell; from the committing thread). Raises nothing."""
        self.store.listen(listener)

    def orders(self, site_id: str) -> list[Order]:
        """The site's orders not yet acknowledged, oldest first (at most :data:`MAX_ORDERS`)."""
        return self.store.pending(site_id, MAX_ORDERS)

    def ack(self, site_id: str, doc: object) -> int:
        """Take acknowledgements; how many were new.

        Raises:
            InvalidInput: a bad field. NotFound: an unknown order. Forbidden: another site's.
        """
        return self.store.ack(site_id, parse_acks(doc), self.clock.now())

    def report(self, site_id: str, doc: object) -> int:
        """Take reports; how many said something new. A final report of a job that ran must
        carry usage signed by a current key of the site, matching the report.

        Raises:
            InvalidInput: a bad field, or a final report of a run without its signed usage.
            Forbidden: a bad usage signature, or another site's job or usage.
            NotFound: a job never dispatched to the site. Conflict: an end reported twice, differently.
        """
        return self._take(site_id, [], parse_reports(doc))[1]

    def exchange(self, site_id: str, doc: object) -> tuple[int, int]:
        """Take one exchange's acknowledgements and reports, all or none: how many
        acknowledgements were new and how many reports said something new.

        Raises:
            InvalidInput, Forbidden, NotFound, Conflict: as :meth:`ack` and :meth:`report`
                (nothing is stored).
        """
        return self._take(site_id, *parse_exchange(doc))

    def _take(self, site_id: str, acks: list[Ack], reports: list[Report]) -> tuple[int, int]:
        site = self._agent_site(site_id)
        checked = [self._usage(site, rep) for rep in reports]
        new, changed = self.store.exchange(site.id, acks, checked, self.clock.now())
        if changed:
            self.nudge()
        return new, changed

    def _usage(self, site: Site, rep: Report) -> CheckedReport:
        assert site.agent is not None
        ran = rep.state.is_final and rep.started_at is not None
        if rep.usage is None:
            if ran:
                raise InvalidInput(
                    [
                        Problem(
                            f"reports[{rep.ref}].usage",
                            "is required: the job ran",
                            None,
                            "the usage signed by the site's key",
                        )
                    ]
                )
            return CheckedReport(rep)
        usage = attest.verify(rep.usage, site.agent.keys)
        attest.check_report(usage, rep, site.id)
        return CheckedReport(rep, attest.digest(rep.usage.body), usage.account, usage.user)

    def heartbeat(self, signed: SignedRequest, doc: object) -> Resync:
        """Note the agent's loads; on a resynchronisation (``held`` given), mark lost every
        acknowledged job it no longer holds and say what the hub expects.

        Raises:
            InvalidInput: a bad field.
        """
        loads, held = parse_held(doc)
        now = self.clock.now()
        self.store.seen(signed.site, now, signed.key_id, loads, synced=held is not None)
        if held is None:
            return Resync([], [])
        expected = self.store.expected(signed.site)
        lost = sorted(set(expected) - set(held))
        if lost:
            self.store.mark_lost(signed.site, lost, now)
        return Resync(sorted(set(expected) - set(lost)), lost)

    def log(self, site_id: str, header: Mapping[str, Any], data: bytes) -> int:
        """Append a log chunk; the stream's size at the hub after it (the next offset to send).

        Raises:
            InvalidInput: a bad field or an oversized chunk. NotFound/Forbidden: not this
                site's job. Conflict: a gap (the answer names the offset to send from).
        """
        return self.store.append_log(site_id, parse_log_chunk(header, data))

    def signed_usage(self, digest: str) -> dict[str, Any]:
        """A signed usage by its digest, with the site and key to check it by.

        Raises:
            NotFound: no such usage.
        """
        found = self.store.signed_usage(digest)
        if found is None:
            raise NotFound(f"no signed usage {digest!r}")
        site, u = found
        return {"digest": digest, "site": site, "body": u.body, "key_id": u.key_id, "signature": u.signature}


def refuse_foreign(signed: SignedRequest, site_id: str) -> None:
    """Refuse an agent acting for another site than its key's.

    Raises:
        Forbidden: it is.
    """
    if signed.site != site_id:
        raise Forbidden(f"the agent of site {signed.site!r} may not act for site {site_id!r}")
