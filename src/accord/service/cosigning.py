"""Collecting the partners' witnesses' cosignatures of the ledger (``docs/design/witnesses.md``).

At every period close and every ``[witnessing] interval_s`` (in the dispatch lease holder),
:meth:`Cosigner.collect` sends each witness of the federation file the checkpoint of the
ledger's current tree (C2SP ``tlog-witness`` ``add-checkpoint``): ``old`` is the size the hub
last had that witness cosign, with the consistency proof from it. A 409 giving the witness's
size (the hub lost track: a crash after the witness stored, a second hub replica) is answered
once more from that size; any other failure is recorded with its reason, which a statement
then gives for being provisional. Witnesses are asked in parallel, each request bounded by
``timeout_s``.

:meth:`Cosigner.section` builds a statement's ``witnessing`` section from what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord.domain.errors import InvalidInput, Unavailable
from accord.domain.federation.model import PartnerWitness, Witnessing
from accord.domain.ledger.checkpoint import Checkpoint, sign_checkpoint, verify_cosignature
from accord.domain.ledger.cosigned import missing_for_policy, parse_cosignature, policy_doc, witness_doc
from accord.domain.ledger.merkle import EMPTY_ROOT, MerkleTree
from accord.domain.ledger.note import parse_verifier_key
from accord.domain.ledger.witness import SIZE_CONTENT_TYPE, encode_add_checkpoint
from accord.ports import Clock
from accord.ports.witnesses import CosignatureStore, StoredCosignature, WitnessClient, WitnessStatus

log = logging.getLogger(__name__)
NO_WITNESS = "it names no witness"
RESENDS = 3
"""``add-checkpoint`` requests to one witness per collection (each 409 gives a new size)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One witness's answer to a collection: ``error`` is empty when it cosigned."""

    witness: str
    size: int
    error: str = ""


class Cosigner:
    """Asks the federation's witnesses to cosign the ledger, and says what they cosigned."""

    def __init__(self, witnessing: Witnessing, store: CosignatureStore, client: WitnessClient,
                 clock: Clock, seed: bytes, origin: str) -> None:
        self.witnessing = witnessing
        self.store = store
        self.client = client
        self.clock = clock
        self.seed = seed
        self.origin = origin

    def collect(self, tree: MerkleTree) -> list[Outcome]:
        """Ask every witness to cosign ``tree`` (the ledger's current tree); the outcomes,
        also stored (a failure as the witness's last error).

        Raises:
            Unavailable: the database cannot be reached.
        """
        statuses = self.store.statuses()
        note = sign_checkpoint(self._checkpoint(tree), self.seed)
        witnesses = self.witnessing.witnesses
        with ThreadPoolExecutor(max_workers=max(len(witnesses), 1),
                                thread_name_prefix="accord-cosign") as pool:
            return list(pool.map(lambda w: self._ask(w, statuses.get(w.name), tree, note), witnesses))

    def up_to_date(self, size: int) -> bool:
        """Whether every witness's last attempt succeeded at a tree of ``size`` entries (then a
        collection has nothing to do, and the tree need not be built).

        Raises:
            Unavailable: the database cannot be reached.
        """
        statuses = self.store.statuses()
        return all((s := statuses.get(w.name)) is not None and s.size == size and s.error is None
                   for w in self.witnessing.witnesses)

    def _checkpoint(self, tree: MerkleTree) -> Checkpoint:
        return Checkpoint(self.origin, tree.size, tree.root() if tree.size else EMPTY_ROOT)

    def _ask(self, w: PartnerWitness, status: WitnessStatus | None, tree: MerkleTree,
             note: str) -> Outcome:
        root = tree.root() if tree.size else EMPTY_ROOT
        if status and (status.size, status.root, status.error) == (tree.size, root, None):
            return Outcome(w.name, tree.size)   # it cosigned this very tree already
        try:
            error = self._send(w, status.size if status else 0, tree, note)
        except Unavailable as exc:
            error = str(exc)
        now = self.clock.now()
        if error:
            error = f"witness {w.name} at {w.url}: {error}"
            log.warning("cosigning: %s", error)
            self.store.record_failure(w.name, error, now)
        return Outcome(w.name, tree.size, error)

    def _send(self, w: PartnerWitness, old: int, tree: MerkleTree, note: str) -> str:
        """One witness, up to :data:`RESENDS` requests; '' once cosigned, else why not.

        Raises:
            Unavailable: the witness cannot be reached, or the database cannot.
        """
        for _ in range(RESENDS):
            if old > tree.size:
                return (f"holds a tree of {old} entries, larger than this ledger's {tree.size}: "
                        "the ledger was truncated or forked")
            body = encode_add_checkpoint(old, tree.consistency_proof(old, tree.size), note)
            answer = self.client.add_checkpoint(w.url, body, self.witnessing.timeout_s)
            if answer.status == 200:
                return self._store(w, tree, answer.body)
            if answer.status == 409 and answer.content_type.startswith(SIZE_CONTENT_TYPE):
                old = _size_of(answer.body)
                continue
            return f"answered {answer.status}: {answer.body.strip()[:300]}"
        return f"kept answering 409 after {RESENDS} requests"

    def _store(self, w: PartnerWitness, tree: MerkleTree, answer: str) -> str:
        checkpoint = self._checkpoint(tree)
        try:
            signature = parse_cosignature(answer)
            key = parse_verifier_key(w.key)
        except InvalidInput as exc:
            return f"answered 200 with no usable cosignature: {exc}"
        if not verify_cosignature(checkpoint, key, signature):
            return "answered 200 with a cosignature that does not verify with its key in the federation file"
        timestamp = int.from_bytes(signature.signature[:8], "big")
        self.store.record_cosignature(StoredCosignature(
            w.name, tree.size, checkpoint.root, self.origin, signature.line(), timestamp), self.clock.now())
        return ""

    # ------------------------------------------------------------ statements
    def largest_needed(self, size: int) -> int:
        """The size of the largest tree a statement of a ``size``-entry head draws on.

        Raises:
            Unavailable: the database cannot be reached.
        """
        return max([size, *(c.size for c in self.store.covering(size).values())])

    def section(self, parties: Sequence[str], size: int,
                tree: MerkleTree) -> tuple[dict[str, Any], list[str]]:
        """The ``witnessing`` section of a statement proven against the head of ``size``
        entries (``tree`` holds at least :meth:`largest_needed` leaves), and the reasons it
        falls short of the policy (empty: it meets it).

        Raises:
            Unavailable: the database cannot be reached.
        """
        witnesses = self.witnessing.of_parties(tuple(parties))
        groups = self._groups(witnesses, size, tree)
        cosigners = {c.witness for cs in groups.values() for c in cs}
        short = missing_for_policy(self.witnessing.rule, self.witnessing.k, parties, witnesses, cosigners)
        statuses = self.store.statuses()
        missing = [{"name": w.name, "partner": w.partner, "reason": _why(w, statuses.get(w.name), size)}
                   for w in witnesses if w.name not in cosigners]
        section = {
            "origin": self.origin, "policy": policy_doc(self.witnessing.rule, self.witnessing.k),
            "witnesses": [witness_doc(w) for w in witnesses],
            "checkpoints": [self._checkpoint_doc(cs, size, tree) for _, cs in sorted(groups.items())],
            "cosigners": sorted(cosigners), "missing": missing,
        }
        if not short:
            return section, []
        return section, [m["reason"] for m in missing] + [x for x in short if x.endswith(NO_WITNESS)]

    def _groups(self, witnesses: Sequence[PartnerWitness], size: int,
                tree: MerkleTree) -> dict[int, list[StoredCosignature]]:
        """The witnesses' smallest cosignatures covering ``size``, grouped by tree size (only
        those of this origin whose root is this ledger's at that size)."""
        covering = self.store.covering(size)
        groups: dict[int, list[StoredCosignature]] = {}
        for w in witnesses:
            c = covering.get(w.name)
            if c and c.origin == self.origin and c.size <= tree.size and _root(tree, c.size) == c.root:
                groups.setdefault(c.size, []).append(c)
        return groups

    def _checkpoint_doc(self, cosignatures: Sequence[StoredCosignature], size: int,
                        tree: MerkleTree) -> dict[str, Any]:
        first = cosignatures[0]
        note = sign_checkpoint(Checkpoint(self.origin, first.size, first.root), self.seed)
        return {"note": note + "".join(c.signature for c in cosignatures),
                "consistency_proof": [h.hex() for h in tree.consistency_proof(size, first.size)]}

    def cosigners(self, parties: Sequence[str], heads: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """Per ``(period, tree size)`` of a closed head: which of the parties' witnesses cosigned
        a tree of at least that size (what the period's statement carries), and who is missing
        and why. Read from the hub's record (each cosignature was checked when collected).

        Raises:
            Unavailable: the database cannot be reached.
        """
        witnesses = self.witnessing.of_parties(tuple(parties))
        statuses = self.store.statuses()
        out = []
        for period, size in heads:
            covering = self.store.covering(size)
            cosigned = {w.name for w in witnesses if w.name in covering}
            short = missing_for_policy(self.witnessing.rule, self.witnessing.k, parties, witnesses, cosigned)
            out.append({"period": period, "tree_size": size, "complete": not short,
                        "cosigners": [{"name": w.name, "partner": w.partner,
                                       "size": covering[w.name].size, "time": covering[w.name].timestamp}
                                      for w in witnesses if w.name in cosigned],
                        "missing": [{"name": w.name, "partner": w.partner,
                                     "reason": _why(w, statuses.get(w.name), size)}
                                    for w in witnesses if w.name not in cosigned]})
        return out

    # ------------------------------------------------------------ verification
    def audit(self, tree: MerkleTree) -> tuple[list[str], list[str]]:
        """Ask every witness what it holds, by submitting ``tree``'s checkpoint (``old 0``,
        then from the size it answers): the contradictions (a witness holding a larger tree,
        or one this tree does not extend: a truncation, a rewrite or a fork shown to it), and
        notes (a witness that could not be asked). Nothing is stored (a consistent witness
        cosigns, as at any collection).

        Raises nothing: every failure is a note.
        """
        note = sign_checkpoint(self._checkpoint(tree), self.seed)
        witnesses = self.witnessing.witnesses
        with ThreadPoolExecutor(max_workers=max(len(witnesses), 1),
                                thread_name_prefix="accord-audit") as pool:
            answers = list(pool.map(lambda w: self._audit_one(w, tree, note), witnesses))
        problems = [text for bad, text in answers if bad and text]
        return problems, [text for bad, text in answers if not bad and text]

    def _audit_one(self, w: PartnerWitness, tree: MerkleTree, note: str) -> tuple[bool, str]:
        """(whether ``w`` contradicts ``tree``, what it said; '' when it agrees)."""
        who = f"witness {w.name} at {w.url}"
        try:
            first = self.client.add_checkpoint(w.url, encode_add_checkpoint(0, (), note),
                                               self.witnessing.timeout_s)
            if first.status == 200:
                return False, ""
            if first.status != 409 or not first.content_type.startswith(SIZE_CONTENT_TYPE):
                return False, f"{who} answered {first.status}: {first.body.strip()[:200]}"
            held = _size_of(first.body)
            if held > tree.size:
                return True, (f"{who} has cosigned a tree of {held} entries; the database holds "
                              f"{tree.size}: the log was truncated or rewritten")
            body = encode_add_checkpoint(held, tree.consistency_proof(held, tree.size), note)
            second = self.client.add_checkpoint(w.url, body, self.witnessing.timeout_s)
        except Unavailable as exc:
            return False, f"{who} could not be asked: {exc}"
        if second.status in (409, 422) and not second.content_type.startswith(SIZE_CONTENT_TYPE):
            return True, (f"{who} has cosigned a tree of {held} entries that the database's tree of "
                          f"{tree.size} does not extend ({second.body.strip()[:160]}): the log was "
                          "rewritten, or forked")
        if second.status != 200:
            return False, f"{who} answered {second.status}: {second.body.strip()[:200]}"
        return False, ""

    def last_cosigned_at(self) -> datetime | None:
        """When a witness last cosigned (None: never).

        Raises:
            Unavailable: the database cannot be reached.
        """
        times = [s.cosigned_at for s in self.store.statuses().values() if s.cosigned_at]
        return max(times, default=None)


def _root(tree: MerkleTree, size: int) -> bytes:
    return tree.root(size) if size else EMPTY_ROOT


def _why(w: PartnerWitness, status: WitnessStatus | None, size: int) -> str:
    if status is not None and status.error:
        return status.error
    if status is None:
        return f"witness {w.name} at {w.url}: has not been asked yet"
    return (f"witness {w.name} at {w.url}: has cosigned {status.size} entries, not yet a tree "
            f"of {size}")


def _size_of(body: str) -> int:
    """The size in a 409 ``text/x.tlog.size`` answer.

    Raises:
        Unavailable: it is not a decimal size.
    """
    text = body.strip()
    if not text.isdigit() or len(text) > 20:
        raise Unavailable(f"answered 409 with a size that is not a number: {text[:40]!r}")
    return int(text)


def statuses_doc(statuses: Mapping[str, WitnessStatus]) -> dict[str, Any]:
    """The witnesses' statuses as plain data (for the API and the dashboard)."""
    return {name: {"size": s.size, "error": s.error, "attempted_at": s.attempted_at.isoformat(),
                   "cosigned_at": s.cosigned_at.isoformat() if s.cosigned_at else None}
            for name, s in sorted(statuses.items())}
