"""The ledger service: posts usage, corrects, closes periods, issues and verifies statements.

Posting is a sweep: every pass takes the usage records not yet posted and posts
them, each with its "posted" mark in the same transaction, so a crash anywhere
leaves a record either fully posted or not at all, and it is never posted twice.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from decimal import Decimal
from typing import Any

from accord.domain.agent.protocol import SignedUsage
from accord.domain.errors import Conflict, InvalidInput, NotFound, Problem, Unavailable
from accord.domain.federation.model import Federation
from accord.domain.ledger import merkle, signing
from accord.domain.ledger.cosigned import WitnessedTree, contradictions, trees_in_statement
from accord.domain.ledger.entries import (
    Closure,
    Entry,
    EntryKind,
    balances,
    correction,
    next_period,
    parse_period,
    usage_entries,
)
from accord.domain.ledger.statement import build_statement, head_from_json, head_to_json, sign_statement
from accord.domain.ledger.verify import ChainCheck
from accord.ports import Clock, LedgerStore
from accord.service.cosigning import Cosigner, Outcome

Attestations = Callable[[str], tuple[str, SignedUsage] | None]
"""The host-signed usage with a digest, and its site (the agent store's ``signed_usage``)."""
GENESIS_HEX = "0" * 64
log = logging.getLogger(__name__)
MAX_CORRECTION_UNITS = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :meth:`LedgerService.verify`."""

    ok: bool
    entries: int
    closures: int
    first_bad_seq: int | None = None
    problem: str = ""
    cosigned: int = 0
    """Cosigned trees checked against the database (the hub's record, given statements)."""
    notes: tuple[str, ...] = ()
    """What could not be checked (a witness that could not be asked, a statement's
    cosignatures with no witness key to check them by)."""


class LedgerService:
    """Drives the ledger domain through its store and the operator's signing key."""

    def __init__(self, federation: Federation, ledger: LedgerStore, clock: Clock,
                 private_key: bytes, log_id: str, *, cosigner: Cosigner | None = None,
                 attestations: Attestations | None = None) -> None:
        self.federation = federation
        self.cosigner = cosigner
        """Collects the witnesses' cosignatures (None: the federation names no witness)."""
        self.attestations = attestations
        self.ledger = ledger
        self.clock = clock
        self.private_key = private_key
        self.public_key = signing.public_key(private_key)
        self.log_id = log_id
        self._lock = threading.Lock()
        self._seen = 0  # entries folded into the aggregates below
        self._used: dict[tuple[str, str, str, str], Decimal] = {}  # (agr, req, host, YYYY-MM)
        self._net: dict[str, dict[str, Decimal]] = {}  # agreement -> partner -> net units
        self._project: dict[tuple[str, str, str, str], Decimal] = {}  # (project, agr, host, YYYY-MM)

    # ------------------------------------------------------------ what placement needs
    def _refresh(self) -> None:
        size, _ = self.ledger.head()
        if size == self._seen:
            return
        for e in self.ledger.entries_since(self._seen):
            key = (e.agreement, e.requester, e.host, e.period)
            self._used[key] = self._used.get(key, Decimal(0)) + e.units
            net = self._net.setdefault(e.agreement, {})
            net[e.host] = net.get(e.host, Decimal(0)) + e.units
            net[e.requester] = net.get(e.requester, Decimal(0)) - e.units
            pkey = (e.project, e.agreement, e.host, e.period)
            self._project[pkey] = self._project.get(pkey, Decimal(0)) + e.units
            self._seen = max(self._seen, e.seq + 1)

    def quota_used(self, agreement: str, requester: str, host: str, period: str) -> Decimal:
        """Units ``requester`` used at ``host`` under ``agreement`` in a quota period:
        ``YYYY-MM`` (month), ``YYYY`` (year) or ``START/END`` (ISO dates, whole agreement)."""
        with self._lock:
            self._refresh()
            first, last = (period.split("/", 1) if "/" in period else (period, period + "~"))
            first, last = first[:7], last[:7] if "/" in period else last
            return sum((u for (a, r, h, month), u in self._used.items()
                        if a == agreement and r == requester and h == host
                        and first <= month <= last),
                       Decimal(0))

    def project_used(self, project: str, agreement: str, host: str, first: str, last: str) -> Decimal:
        """Units ``project`` used at ``host`` under ``agreement`` in months ``first``..``last``
        (YYYY-MM, inclusive; corrections count in the period they were entered in)."""
        with self._lock:
            self._refresh()
            return sum((u for (pr, a, h, month), u in self._project.items()
                        if pr == project and a == agreement and h == host and first <= month <= last),
                       Decimal(0))

    def net_balance(self, agreement: str) -> Mapping[str, Decimal]:
        """Provided − used per partner under ``agreement`` so far."""
        with self._lock:
            self._refresh()
            return dict(self._net.get(agreement, {}))

    # ------------------------------------------------------------ posting
    def post_pending(self, limit: int = 500) -> int:
        """Post usage records not yet posted; returns how many entries were appended."""
        records = self.ledger.unposted_usage(limit)
        if not records:
            return 0
        closed = {c.period for c in self.ledger.closures()}
        now = self.clock.now()
        groups = [(r.id, tuple(self._into_open_period(e, closed)
                               for e in usage_entries(r, self.federation, now))) for r in records]
        return len(self.ledger.append_many(groups))

    def _into_open_period(self, e: Entry, closed: set[str]) -> Entry:
        period = e.period
        while period in closed:
            period = next_period(period)
        if period == e.period:
            return e
        return replace(e, period=period, memo=(*e.memo, ("ran_in", e.period)))

    def correct(self, entry_id: str, kind: str, units: str, reason: str, author: str) -> Entry:
        """Append a correction of an entry (refund, reversal, manual credit).

        Raises:
            NotFound: no such entry.
            InvalidInput: a bad kind, amount, reason or author.
        """
        original = self.ledger.entry(entry_id)
        if original is None:
            raise NotFound(f"no ledger entry {entry_id!r}")
        try:
            entry_kind = EntryKind(kind)
            amount = Decimal(units)
        except (ValueError, ArithmeticError):
            raise InvalidInput([Problem("kind/units", "not a correction", f"{kind} {units}",
                                        "kind refund|reversal|manual_credit, units a number")]
                               ) from None
        if not amount.is_finite() or abs(amount) > MAX_CORRECTION_UNITS:
            # NaN cannot be compared and a huge amount cannot be quantised: both would be 500s
            raise InvalidInput([Problem("units", "is not a usable amount", units[:40],
                                        f"a finite number of at most {MAX_CORRECTION_UNITS} units")])
        closed = {c.period for c in self.ledger.closures()}
        period = original.period
        while period in closed:
            period = next_period(period)
        now = self.clock.now()
        fix = correction(original, entry_kind, amount, reason, author, period, now,
                         f"{entry_kind.value}:{secrets.token_hex(8)}")
        return self.ledger.append([fix])[0]

    # ------------------------------------------------------------ heads and closing
    def signed_head(self, period: str) -> signing.SignedHead:
        """A freshly signed head of the whole ledger as it stands."""
        size, _ = self.ledger.head()
        leaves = [merkle.leaf_hash(b) for b in self.ledger.leaf_bodies(size)]
        head = signing.TreeHead(tree_size=size, root=merkle.root(leaves),
                                timestamp_ms=int(self.clock.now().timestamp() * 1000),
                                period=period, log_id=self.log_id)
        return signing.sign_head(head, self.private_key)

    def close_period(self, period: str, *, early: bool = False) -> signing.SignedHead:
        """Lock a period: sign the ledger's head; later corrections go to the next period.
        A month closes once it has ended (UTC, by the service's clock); ``early`` closes the
        current month before its end — usage of the rest of the month is then booked to the
        next open period. A month that has not begun never closes.

        Raises:
            InvalidInput: not a YYYY-MM period; the current month without ``early``; a
                month after the current one.
            Conflict: already closed, or an earlier period with entries is still open.
        """
        period = parse_period(period)
        self._check_ended(period, early)
        closures = self.ledger.closures()
        if any(c.period == period for c in closures):
            raise Conflict(f"period {period} is already closed")
        signed = self.signed_head(period)
        self.ledger.close(Closure(period, signed.head.tree_size, signed.head.root.hex(),
                                  json.dumps(head_to_json(signed)), self.clock.now()))
        try:
            self.collect_cosignatures()
        except Unavailable as exc:   # the period is closed; the next interval collects
            log.warning("cosigning after closing %s: %s", period, exc)
        return signed

    def collect_cosignatures(self) -> list[Outcome]:
        """Ask every witness to cosign the ledger's current tree (nothing without witnesses, or
        when every witness has cosigned it already); the outcomes. A witness that fails is
        recorded with its reason, never raised.

        Raises:
            Unavailable: the database cannot be reached.
        """
        if self.cosigner is None:
            return []
        size, _ = self.ledger.head()
        if self.cosigner.up_to_date(size):
            return []
        outcomes = self.cosigner.collect(self._tree(size))
        self.cosigner.store.prune([c.tree_size for c in self.ledger.closures()])
        return outcomes

    def _tree(self, size: int) -> merkle.MerkleTree:
        return merkle.MerkleTree.build([merkle.leaf_hash(b) for b in self.ledger.leaf_bodies(size)])

    def _check_ended(self, period: str, early: bool) -> None:
        """Raises:
            InvalidInput: ``period`` is the current month (without ``early``) or later."""
        current = self.clock.now().astimezone(UTC).strftime("%Y-%m")
        if period > current:
            raise InvalidInput([Problem("period", "has not begun yet", period,
                                        f"a month that has ended (before {current})")])
        if period == current and not early:
            raise InvalidInput([Problem(
                "period", "has not ended yet", period,
                f"a month before {current}; to close {current} now, ask for an early close "
                "(accord ledger close --early; early=true): its later usage is then booked "
                "to the next open period")])

    # ------------------------------------------------------------ statements
    def statement(self, agreement_id: str, period: str) -> dict[str, Any]:
        """The signed statement of one agreement for one period.

        For a closed period it is proven against the closing head; for an open one,
        against a freshly signed provisional head. With witnesses, it carries their
        cosigned checkpoints and is provisional (saying why) until the policy is met; each
        host-attested entry carries the host's signed usage.

        Raises:
            NotFound: no such agreement.
            InvalidInput: not a YYYY-MM period.
        """
        agreement = self.federation.agreement(agreement_id)
        period = parse_period(period)
        closures = self.ledger.closures()
        closure = next((c for c in closures if c.period == period), None)
        signed = (head_from_json(json.loads(closure.signed_head)) if closure is not None
                  else self.signed_head(period))
        reasons = [] if closure else [f"period {period} is open: its head is signed now, not at a close"]
        size = signed.head.tree_size
        tree = self._tree(self.cosigner.largest_needed(size) if self.cosigner else size)
        mine = list(self.ledger.entries(agreement=agreement_id, period=period, upto=size))
        previous = [c for c in closures if c.tree_size <= size and c.period < period]
        prev_doc = None
        if previous:
            p = previous[-1]
            prev_doc = {"signed_head": json.loads(p.signed_head),
                        "consistency_proof": [h.hex() for h in
                                              tree.consistency_proof(p.tree_size, size)]}
        witnessing = None
        if self.cosigner is not None:
            witnessing, short = self.cosigner.section(agreement.parties, size, tree)
            reasons += short
        return sign_statement(build_statement(
            agreement=agreement, period=period, status="provisional" if reasons else "closed",
            reference_unit=self.federation.reference_unit, entries=mine,
            proofs={e.seq: tree.inclusion_proof(e.seq, size) for e in mine},
            signed_head=head_to_json(signed), previous=prev_doc,
            public_key=self.public_key, witnessing=witnessing, reasons=reasons,
            attestations=self._attestations(mine)), self.private_key)

    def cosigners(self, agreement_id: str, limit: int = 12) -> dict[str, Any]:
        """Who cosigned the ledger's tree behind each of the last ``limit`` closed periods'
        statements of an agreement (the dashboard's agreement page), and the policy.

        Raises:
            NotFound: no such agreement.
            Unavailable: the database cannot be reached.
        """
        agreement = self.federation.agreement(agreement_id)
        w = self.federation.witnessing
        if self.cosigner is None or w is None:
            return {"witnessing": False, "periods": []}
        heads = [(c.period, c.tree_size) for c in self.ledger.closures()][-limit:]
        mine = w.of_parties(agreement.parties)
        return {"witnessing": True, "policy": {"rule": w.rule.value, "k": w.k},
                "witnesses": [{"name": x.name, "partner": x.partner} for x in mine],
                "periods": self.cosigner.cosigners(agreement.parties, heads[::-1])}

    def _attestations(self, entries: list[Entry]) -> dict[int, dict[str, str]]:
        """The host-signed usage of each entry that names one and is stored, by seq."""
        out: dict[int, dict[str, str]] = {}
        for e in entries:
            digest = dict(e.memo).get("usage_attestation")
            found = self.attestations(digest) if digest and self.attestations else None
            if found is not None:
                site, u = found
                out[e.seq] = {"site": site, "body": u.body, "key_id": u.key_id, "signature": u.signature}
        return out

    # ------------------------------------------------------------ verification
    def verify(self, statements: Sequence[tuple[str, Mapping[str, Any]]] = (),
               ask_witnesses: bool = False) -> VerifyReport:
        """Re-derive the chain, the columns, the balances and every closure from the store,
        then check the trees the witnesses cosigned against it: those in the hub's record,
        in the given ``statements`` (source name, document), and, with ``ask_witnesses``,
        what each witness holds now.

        Names the first bad entry: a broken hash, a gap or duplicate in sequence, a
        body that disagrees with its indexed columns or does not balance, a head
        that does not match, or a closure whose root or signature does not hold; and
        every witness whose cosigned tree the database contradicts, with the sizes.
        A bad ledger is the report, not an exception.

        Raises:
            Unavailable: the database cannot be read.
        """
        report = self._verify_chain()
        if not report.ok:
            return report
        return self._verify_witnessed(report, statements, ask_witnesses)

    def _verify_chain(self) -> VerifyReport:
        size, head_hash = self.ledger.head()
        check = self.ledger.check_chain(max(size, self.ledger.size()))
        if not check.ok:
            return VerifyReport(False, check.count, 0, check.bad_seq, check.problem)
        count, prev = check.count, check.last_hash
        consistent = size == count and (not count or head_hash == prev)
        if not consistent and not self._appended_meanwhile(size, head_hash, count):
            return VerifyReport(False, count, 0, count,
                                f"the chain head says {size} entries ending {head_hash[:12]}…, "
                                f"the table has {count} ending {prev[:12]}… (entries removed "
                                "or appended behind Accord's back)")
        return self._verify_closures(check, count)

    def _verify_witnessed(self, report: VerifyReport, statements: Sequence[tuple[str, Mapping[str, Any]]],
                          ask_witnesses: bool) -> VerifyReport:
        """Raises:
            Unavailable: the database cannot be read."""
        trees, notes = self._witnessed_trees(statements)
        if not trees and not ask_witnesses:
            return replace(report, notes=tuple(notes))
        tree = self._tree(report.entries)
        problems = contradictions(trees, tree.size, lambda n: tree.root(n) if n else merkle.EMPTY_ROOT)
        if ask_witnesses and self.cosigner is not None:
            found, more = self.cosigner.audit(tree)
            problems, notes = problems + found, notes + more
        elif ask_witnesses:
            notes.append("no witness to ask: the federation file has no [witnessing] table")
        if problems:
            return replace(report, ok=False, cosigned=len(trees), notes=tuple(notes),
                           first_bad_seq=None, problem="; ".join(problems))
        return replace(report, cosigned=len(trees), notes=tuple(notes))

    def _witnessed_trees(self, statements: Sequence[tuple[str, Mapping[str, Any]]]
                         ) -> tuple[list[WitnessedTree], list[str]]:
        """Raises:
            Unavailable: the database cannot be read."""
        trees: list[WitnessedTree] = []
        notes: list[str] = []
        if self.cosigner is not None:
            trees += [WitnessedTree(c.witness, c.size, c.root, "the hub's record")
                      for c in self.cosigner.store.cosignatures() if c.origin == self.cosigner.origin]
        known = self.federation.witnessing.witnesses if self.federation.witnessing else ()
        for source, doc in statements:
            if not known and doc.get("witnessing"):
                notes.append(f"{source}: its cosignatures are not checked: the federation file "
                             "names no witness")
            found, bad = trees_in_statement(doc, self.public_key, known, source)
            trees, notes = trees + found, notes + bad
        return trees, notes

    def _appended_meanwhile(self, size: int, head_hash: str, count: int) -> bool:
        """Whether the table is longer than the head read at the start only because entries
        were posted while it was read: the verified chain passes through that head, and the
        head now covers every entry read. (Entries added behind Accord's back never move the
        head; removed ones make the table shorter.)"""
        if count <= size or (size and self.ledger.hash_at(size - 1) != head_hash):
            return False
        return self.ledger.head()[0] >= count

    def _verify_closures(self, check: ChainCheck, count: int) -> VerifyReport:
        closures = self.ledger.closures()
        tree = check.merkle_tree() if closures else None
        for c in closures:
            signed = head_from_json(json.loads(c.signed_head))
            if not signing.verify_head(signed, self.public_key):
                return VerifyReport(False, count, len(closures), None,
                                    f"closure of {c.period}: the signature does not verify")
            if c.tree_size > count:
                return VerifyReport(False, count, len(closures), count,
                                    f"closure of {c.period} covers {c.tree_size} entries; only "
                                    f"{count} remain (entries removed behind Accord's back)")
            root = tree.root(c.tree_size) if tree else merkle.EMPTY_ROOT
            if root.hex() != c.root or signed.head.root != root:
                return VerifyReport(False, count, len(closures), min(c.tree_size, count),
                                    f"closure of {c.period}: the entries no longer hash to "
                                    f"the signed root")
        return VerifyReport(True, count, len(closures))

    def balances(self, agreement: str | None = None, period: str | None = None) -> dict[str, Any]:
        """Balances as plain data."""
        b = balances(self.ledger.entries(agreement=agreement, period=period))
        return {
            "entries": b.entries, "total": str(b.total),
            "by_direction": {k: str(v) for k, v in sorted(b.by_direction.items())},
            "by_site": {k: str(v) for k, v in sorted(b.by_site.items())},
            "by_project": {k: str(v) for k, v in sorted(b.by_project.items())},
            "net_by_partner": {k: str(v) for k, v in sorted(b.net_by_partner.items())},
            "unit": self.federation.reference_unit,
        }

