"""Cosigned checkpoints in statements, the witnessing policy, and host attestations (pure).

A statement of a witnessed ledger carries a ``witnessing`` section (``docs/design/witnesses.md``):
the log's origin, the policy, the witnesses of the agreement's parties with their keys, and
one or more cosigned checkpoints — each a C2SP signed note (the log's signature, then one
cosignature line per witness that cosigned exactly that tree) with an RFC 9162 consistency
proof from the statement's tree head to it. A witness that cosigned a larger tree than the
head (it was down at the close and cosigned at the next collection) still vouches for the
head: the proof shows the larger tree extends it.

:func:`check_witnessing` verifies a section against trusted witness keys and a policy;
:func:`check_attestation` a statement entry's host-signed usage against the site's keys.
Neither raises on what it is given: each returns the problems as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accord.domain.agent import attest
from accord.domain.agent.protocol import SignedUsage
from accord.domain.errors import Forbidden, InvalidInput
from accord.domain.federation.model import PartnerWitness, WitnessRule
from accord.domain.ledger.checkpoint import Checkpoint, log_key, open_checkpoint, verify_cosignature
from accord.domain.ledger.entries import Entry, EntryKind
from accord.domain.ledger.merkle import verify_consistency
from accord.domain.ledger.note import (
    NoteSignature,
    VerifierKey,
    parse_note,
    parse_signature_lines,
    parse_verifier_key,
)
from accord.domain.ledger.signing import TreeHead

MAX_CHECKPOINTS = 100
"""Cosigned checkpoints a statement may carry (at most one per witness)."""


@dataclass(frozen=True, slots=True)
class WitnessTrust:
    """What a verifier trusts: the witnesses (with their keys) and the policy to enforce."""

    witnesses: tuple[PartnerWitness, ...]
    rule: WitnessRule
    k: int
    origin: str | None = None
    """The log's name the witnesses follow (None: the statement's, unchecked)."""


@dataclass(frozen=True, slots=True)
class HostKeys:
    """The sites' agent keys a verifier trusts (``[sites.agent] keys``), and which sites
    report through an agent (their usage entries must be host-attested)."""

    keys: Mapping[str, tuple[bytes, ...]]
    agent_sites: frozenset[str]


@dataclass(frozen=True, slots=True)
class OpenedCheckpoint:
    """A checkpoint whose log signature verified, and the witnesses whose cosignature did."""

    checkpoint: Checkpoint
    cosigners: tuple[str, ...]
    problems: tuple[str, ...]


def policy_doc(rule: WitnessRule, k: int) -> dict[str, Any]:
    """The policy as a statement names it: ``{"rule": "every-party", "k": 1}``."""
    return {"rule": rule.value, "k": k}


def witness_doc(w: PartnerWitness) -> dict[str, str]:
    """A witness as a statement lists it (name, partner, URL, verifier key)."""
    return {"name": w.name, "partner": w.partner, "url": w.url, "key": w.key}


def parse_cosignature(answer: str) -> NoteSignature:
    """The cosignature line a witness answered ``add-checkpoint`` with.

    Raises:
        InvalidInput: the answer is not one signature line.
    """
    lines = answer.splitlines()
    if len(lines) != 1:
        raise InvalidInput.single("cosignature", "a witness answers one signature line",
                                  got=answer[:120], allowed="'— <name> <base64>'")
    return parse_signature_lines(lines)[0]


def missing_for_policy(rule: WitnessRule, k: int, parties: Sequence[str],
                       witnesses: Sequence[PartnerWitness], cosigners: set[str]) -> list[str]:
    """Why ``cosigners`` do not meet the policy for an agreement of ``parties`` (empty: they do).

    >>> w = [PartnerWitness("uk-w", "uk", "http://a", "k1"), PartnerWitness("fr-w", "fr", "http://b", "k2")]
    >>> missing_for_policy(WitnessRule.EVERY_PARTY, 1, ["uk", "fr"], w, {"uk-w"})
    ['party fr: 0 of the 1 cosignature(s) required; missing fr-w']
    >>> missing_for_policy(WitnessRule.K_OF_N, 1, ["uk", "fr"], w, {"uk-w"})
    []
    """
    mine = [w for w in witnesses if w.partner in parties]
    if rule is WitnessRule.K_OF_N:
        got = [w for w in mine if w.name in cosigners]
        if len(got) >= k:
            return []
        return [f"{len(got)} of the {k} cosignature(s) required of the parties' {len(mine)} "
                f"witnesses; missing {_names([w for w in mine if w.name not in cosigners])}"]
    out = []
    for party in parties:
        theirs = [w for w in mine if w.partner == party]
        got = [w for w in theirs if w.name in cosigners]
        if len(got) < k:
            absent = _names([w for w in theirs if w.name not in cosigners]) or "none: it names no witness"
            out.append(f"party {party}: {len(got)} of the {k} cosignature(s) required; missing {absent}")
    return out


def _names(ws: Sequence[PartnerWitness]) -> str:
    return ", ".join(w.name for w in ws)


def open_cosigned(note_text: str, origin: str, log_public_key: bytes,
                  witnesses: Sequence[PartnerWitness]) -> OpenedCheckpoint:
    """Open one cosigned checkpoint: the log's signature must verify (raises otherwise), and
    each trusted witness's cosignature is verified (a failed one is a problem).

    Raises:
        InvalidInput: the note or its checkpoint is malformed.
        Forbidden: the log's signature does not verify with ``log_public_key``.
    """
    checkpoint = open_checkpoint(note_text, [log_key(origin, log_public_key)])
    if checkpoint.origin != origin:
        raise Forbidden(f"the checkpoint names the log {checkpoint.origin!r}, not {origin!r}")
    signatures = parse_note(note_text).signatures
    cosigners, problems = [], []
    for w in witnesses:
        key = _key(w)
        mine = [s for s in signatures if key and (s.name, s.key_id) == (key.name, key.key_id)]
        if not mine or key is None:
            continue
        if any(verify_cosignature(checkpoint, key, s) for s in mine):
            cosigners.append(w.name)
        else:
            problems.append(f"the cosignature of witness {w.name} (partner {w.partner}) on the "
                            f"checkpoint of size {checkpoint.size} does not verify")
    return OpenedCheckpoint(checkpoint, tuple(cosigners), tuple(problems))


def _key(w: PartnerWitness) -> VerifierKey | None:
    try:
        return parse_verifier_key(w.key)
    except InvalidInput:
        return None


def check_witnessing(section: Mapping[str, Any] | None, head: TreeHead, log_public_key: bytes,
                     parties: Sequence[str], trust: WitnessTrust | None) -> tuple[set[str], list[str]]:
    """The witnesses whose cosignatures of the statement's tree verify, and every problem:
    a checkpoint not signed by the log or not extending the head, a bad cosignature, the
    statement naming another policy than ``trust``'s, the policy not met (naming who is
    missing). ``trust`` None: nothing to enforce (no federation, no pinned key).

    Raises:
        KeyError, TypeError, ValueError: the section is malformed (the caller reports it).
    """
    if section is None:
        if trust is not None and trust.witnesses:
            return set(), ["the statement carries no cosigned checkpoint, but the federation "
                           "file names witnesses: " + _policy_text(trust)]
        return set(), []
    if trust is None:
        return set(), []
    problems = _policy_mismatch(section, trust)
    if trust.origin is not None and section["origin"] != trust.origin:
        problems.append(f"the statement's checkpoints are of the log {section['origin']!r}; the "
                        f"federation file's witnesses follow {trust.origin!r}")
    if len(section["checkpoints"]) > MAX_CHECKPOINTS:
        return set(), [f"the statement carries {len(section['checkpoints'])} checkpoints "
                       f"(at most {MAX_CHECKPOINTS})"]
    cosigners: set[str] = set()
    for i, item in enumerate(section["checkpoints"]):
        found, more = _one_checkpoint(i, item, section["origin"], head, log_public_key, trust)
        cosigners |= found
        problems += more
    missing = missing_for_policy(trust.rule, trust.k, parties, trust.witnesses, cosigners)
    if missing:
        problems.append(f"not cosigned as the policy requires ({_policy_text(trust)}): "
                        + "; ".join(missing))
    return cosigners, problems


def _one_checkpoint(i: int, item: Mapping[str, Any], origin: str, head: TreeHead,
                    log_public_key: bytes, trust: WitnessTrust) -> tuple[set[str], list[str]]:
    where = f"checkpoint {i}"
    try:
        opened = open_cosigned(str(item["note"]), str(origin), log_public_key, trust.witnesses)
    except (InvalidInput, Forbidden) as exc:
        return set(), [f"{where}: {exc}"]
    cp = opened.checkpoint
    proof = tuple(bytes.fromhex(h) for h in item["consistency_proof"])
    if cp.size < head.tree_size or not verify_consistency(head.tree_size, cp.size, head.root,
                                                          cp.root, proof):
        return set(), [f"{where} (size {cp.size}) does not extend the statement's tree of size "
                       f"{head.tree_size}: its cosignatures do not vouch for this statement"]
    return set(opened.cosigners), [f"{where}: {p}" for p in opened.problems]


def _policy_mismatch(section: Mapping[str, Any], trust: WitnessTrust) -> list[str]:
    named = section.get("policy")
    if named != policy_doc(trust.rule, trust.k):
        return [f"the statement names the policy {json.dumps(named)}; the verifier's is "
                f"{json.dumps(policy_doc(trust.rule, trust.k))}"]
    return []


def _policy_text(trust: WitnessTrust) -> str:
    if trust.rule is WitnessRule.K_OF_N:
        return f"k-of-n, {trust.k} of the parties' witnesses"
    return f"every-party, {trust.k} witness(es) of each party"


def trust_from_statement(section: Mapping[str, Any], pinned: Sequence[str]) -> WitnessTrust:
    """The trust of a verifier with no federation file: the statement's policy, and those of
    its witnesses whose key is among the ``pinned`` verifier keys (the others cannot count).

    Raises:
        InvalidInput: the statement's policy is not one this verifier knows.
        KeyError, TypeError: the section is malformed.
    """
    try:
        rule, k = WitnessRule(section["policy"]["rule"]), int(section["policy"]["k"])
    except ValueError as exc:
        raise InvalidInput.single("witnessing.policy", "is not a known policy",
                                  got=section.get("policy"), allowed="every-party or k-of-n, k >= 1"
                                  ) from exc
    keys = {p.strip() for p in pinned}
    # a witness whose key is not pinned stays in the list (so it is named when missing), keyless
    witnesses = tuple(PartnerWitness(str(w["name"]), str(w["partner"]), str(w["url"]),
                                     str(w["key"]) if str(w["key"]) in keys else "")
                      for w in section["witnesses"])
    return WitnessTrust(witnesses, rule, max(k, 1))


def check_attestation(entry: Entry, attestation: Mapping[str, Any] | None, hosts: HostKeys) -> str:
    """What is wrong with a statement entry's host attestation ('' when nothing is).

    A usage entry whose memo names a ``usage_attestation``, or one at an agent site, must
    carry the host site's signed usage: its body's SHA-256 is the memo's digest, its
    signature verifies with a key of the site in ``hosts``, and it is the entry's site
    and job.
    """
    digest = dict(entry.memo).get("usage_attestation")
    site_keys = hosts.keys
    if entry.kind is not EntryKind.USAGE or (digest is None and entry.site not in hosts.agent_sites):
        return ""
    if digest is None:
        return f"site {entry.site} reports through its agent, but the entry names no host attestation"
    if attestation is None:
        return f"its host attestation {digest[:16]}… is missing from the statement"
    signed = SignedUsage(str(attestation["body"]), str(attestation["key_id"]), str(attestation["signature"]))
    if attest.digest(signed.body) != digest:
        return "the attested usage is not the one the entry names (its SHA-256 differs)"
    if entry.site not in site_keys:
        return f"site {entry.site} has no [sites.agent] keys in the federation file to check its attestation"
    try:
        usage = attest.verify(signed, site_keys[entry.site])
    except (Forbidden, InvalidInput) as exc:
        return f"its host attestation does not verify: {exc}"
    if usage.site != entry.site or usage.job_id != entry.job_id:
        return (f"its host attestation is of site {usage.site}, job {usage.job_id}; the entry "
                f"is site {entry.site}, job {entry.job_id}")
    return ""


@dataclass(frozen=True, slots=True)
class WitnessedTree:
    """A tree a witness vouched for: its size and root, and where the cosignature was found."""

    witness: str
    size: int
    root: bytes
    source: str


def trees_in_statement(doc: Mapping[str, Any], log_public_key: bytes, witnesses: Sequence[PartnerWitness],
                       source: str) -> tuple[list[WitnessedTree], list[str]]:
    """The trees the trusted ``witnesses`` cosigned in a statement's checkpoints, and the
    problems met opening them (a checkpoint the log did not sign, a bad cosignature).
    Never raises: a malformed statement is a problem."""
    try:
        section = doc.get("witnessing")
        if not section:
            return [], []
        trees, problems = [], []
        for i, item in enumerate(section["checkpoints"][:MAX_CHECKPOINTS]):
            try:
                opened = open_cosigned(str(item["note"]), str(section["origin"]), log_public_key, witnesses)
            except (InvalidInput, Forbidden) as exc:
                problems.append(f"{source}: checkpoint {i}: {exc}")
                continue
            cp = opened.checkpoint
            trees += [WitnessedTree(name, cp.size, cp.root, source) for name in opened.cosigners]
            problems += [f"{source}: {p}" for p in opened.problems]
        return trees, problems
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return [], [f"{source}: malformed witnessing section: {type(exc).__name__}: {exc}"]


def contradictions(trees: Sequence[WitnessedTree], size: int,
                   root_at: Callable[[int], bytes]) -> list[str]:
    """Every cosigned tree this ledger of ``size`` entries (whose root at each size
    ``root_at`` gives) contradicts: one larger than it (a truncation) or whose root differs
    from its own at that size (a rewrite, or a fork shown to that witness), and two witnesses
    cosigning different trees of one size (a split view). Each names the witness and sizes."""
    out = []
    for t in trees:
        if t.size > size:
            out.append(f"witness {t.witness} cosigned a tree of {t.size} entries ({t.source}); the "
                       f"database holds {size}: the log was truncated or rewritten")
        elif (ours := root_at(t.size)) != t.root:
            out.append(f"witness {t.witness} cosigned a tree of {t.size} entries with root "
                       f"{t.root.hex()[:16]}… ({t.source}); the database's first {t.size} entries "
                       f"hash to {ours.hex()[:16]}…: the log was rewritten, or forked")
    roots: dict[int, dict[bytes, set[str]]] = {}
    for t in trees:
        roots.setdefault(t.size, {}).setdefault(t.root, set()).add(t.witness)
    for n, seen in sorted(roots.items()):
        if len(seen) > 1:
            views = "; ".join(f"{', '.join(sorted(ws))} cosigned root {r.hex()[:16]}…"
                              for r, ws in sorted(seen.items()))
            out.append(f"split view: different trees of {n} entries were cosigned: {views}")
    return out
