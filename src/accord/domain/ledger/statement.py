"""Settlement statements: build, render and verify (pure; no store, no clock).

A statement carries, for one agreement and one period: the totals, every entry
as its canonical bytes with an inclusion proof, the operator's signed tree head,
and (when an earlier period was closed) a consistency proof from that earlier
head. :func:`verify_statement` checks all of it with only the statement and the
operator's public key: see ``docs/design/ledger-format.md``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Agreement
from accord.domain.ledger import merkle, signing
from accord.domain.ledger.cosigned import HostKeys, WitnessTrust, check_attestation, check_witnessing
from accord.domain.ledger.entries import Entry, balances, canonical, chain_hash, from_document

FORMAT = "accord-statement/1"
DOC_CONTEXT = b"accord-statement/1\x00"


def head_to_json(signed: signing.SignedHead) -> dict[str, Any]:
    """A signed tree head as JSON-ready data."""
    h = signed.head
    return {"tree_size": h.tree_size, "root": h.root.hex(), "timestamp_ms": h.timestamp_ms,
            "period": h.period, "log_id": h.log_id, "signature": signed.signature.hex()}


def head_from_json(d: Mapping[str, Any]) -> signing.SignedHead:
    """Inverse of :func:`head_to_json`.

    Raises:
        InvalidInput: a field is missing or malformed.
    """
    try:
        head = signing.TreeHead(tree_size=int(d["tree_size"]), root=bytes.fromhex(d["root"]),
                                timestamp_ms=int(d["timestamp_ms"]), period=str(d["period"]),
                                log_id=str(d["log_id"]))
        return signing.SignedHead(head=head, signature=bytes.fromhex(d["signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput([Problem("tree_head", f"malformed signed tree head: {exc!r}")]) from exc


def public_pem_of(public_key: bytes) -> str:
    """The PEM text of a raw Ed25519 public key (what partners are given)."""
    return signing.public_key_to_pem(public_key)


def key_id(public_key: bytes) -> str:
    """The key's id (SHA-256 of the raw public key), hex."""
    return signing.key_id(public_key).hex()


def build_statement(
    *,
    agreement: Agreement,
    period: str,
    status: str,
    reference_unit: str,
    entries: Sequence[Entry],
    proofs: Mapping[int, Sequence[bytes]],
    signed_head: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    public_key: bytes,
    witnessing: Mapping[str, Any] | None = None,
    reasons: Sequence[str] = (),
    attestations: Mapping[int, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The statement document (JSON-ready): ``witnessing`` is the cosigned checkpoints'
    section (None: no witnesses), ``reasons`` why it is provisional, ``attestations`` the
    host-signed usage of entries by seq."""
    attested = attestations or {}
    return {
        "format": FORMAT,
        "agreement": {"id": agreement.id, "name": agreement.name, "parties": list(agreement.parties)},
        "period": period,
        "status": status,
        "provisional_reasons": list(reasons),
        "unit": reference_unit,
        "totals": _totals(entries),
        "memo": _memo(entries),
        "entries": [{"leaf_index": e.seq, "hash": e.hash,
                     "body": canonical(e).decode("utf-8"),
                     "inclusion_proof": [p.hex() for p in proofs[e.seq]],
                     "attestation": dict(attested[e.seq]) if e.seq in attested else None}
                    for e in entries],
        "tree_head": dict(signed_head),
        "previous": dict(previous) if previous else None,
        "witnessing": dict(witnessing) if witnessing is not None else None,
        "key_id": key_id(public_key),
    }


def _totals(entries: Sequence[Entry]) -> dict[str, Any]:
    b = balances(entries)
    return {
        "entries": b.entries,
        "by_direction": {k: str(v) for k, v in sorted(b.by_direction.items())},
        "by_site": {k: str(v) for k, v in sorted(b.by_site.items())},
        "by_project": {k: str(v) for k, v in sorted(b.by_project.items())},
        "net_by_partner": {k: str(v) for k, v in sorted(b.net_by_partner.items())},
    }


def _memo(entries: Sequence[Entry]) -> dict[str, str]:
    sums: dict[str, Decimal] = {}
    for e in entries:
        for k, v in e.memo:
            try:
                sums[k] = sums.get(k, Decimal(0)) + Decimal(v)
            except ArithmeticError:
                continue
    return {k: str(v) for k, v in sorted(sums.items())}


def _document_bytes(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_statement(doc: Mapping[str, Any], private_key: bytes) -> dict[str, Any]:
    """The statement with ``signature``: Ed25519 over its canonical JSON (all other fields)."""
    key = Ed25519PrivateKey.from_private_bytes(private_key)
    return {**doc, "signature": key.sign(DOC_CONTEXT + _document_bytes(doc)).hex()}


def _document_signature_ok(doc: Mapping[str, Any], public_key: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(doc["signature"]), DOC_CONTEXT + _document_bytes(doc))
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return False
    return True


def verify_statement(doc: Mapping[str, Any], public_key: bytes,
                     previous: Mapping[str, Any] | None = None, *,
                     witnesses: WitnessTrust | None = None,
                     hosts: HostKeys | None = None) -> list[str]:
    """Every reason the statement cannot be trusted; an empty list means it verifies.

    Checks: the format; the key id; the tree head's signature; each entry's chain
    hash, balance, agreement and period, and its inclusion in the signed tree; the
    totals against the entries; the consistency proof from the earlier head it
    names (and, given ``previous``, that this one extends that statement's head).
    Given ``witnesses``, the cosigned checkpoints and the policy (naming the witnesses
    missing); given ``hosts``, every entry's host attestation.
    Never raises on malformed input: malformations are reported.
    """
    for what, given in (("the statement", doc), ("the earlier statement", previous)):
        if given is not None and not isinstance(given, Mapping):
            return [f"{what} is not a statement: a JSON {_json_kind(given)}, not an object "
                    "(expected the JSON object 'accord statement --format json' writes)"]
    try:
        return _verify(doc, public_key, previous) + _verify_trust(doc, public_key, witnesses, hosts)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidInput, ArithmeticError) as exc:
        return [f"the statement is malformed: {type(exc).__name__}: {exc}"]


def _json_kind(value: object) -> str:
    """What kind of JSON value ``value`` is (``array``, ``string``...).

    >>> _json_kind([1]), _json_kind("x"), _json_kind(None), _json_kind(True)
    ('array', 'string', 'null', 'boolean')
    """
    kinds = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (list, "array"))
    return "null" if value is None else next((k for t, k in kinds if isinstance(value, t)),
                                             type(value).__name__)


def _verify(doc: Mapping[str, Any], public_key: bytes,
            previous: Mapping[str, Any] | None) -> list[str]:
    errors: list[str] = []
    if doc.get("format") != FORMAT:
        return [f"unknown format {doc.get('format')!r} (expected {FORMAT})"]
    if not _document_signature_ok(doc, public_key):
        errors.append("the statement's signature does not verify: its bytes were changed "
                      "after signing, or another key signed it (the checks below locate it)")
    if doc["key_id"] != key_id(public_key):
        errors.append("the statement was signed with another key than the one given")
    signed = head_from_json(doc["tree_head"])
    if not signing.verify_head(signed, public_key):
        errors.append("the tree head's signature does not verify with the given key")
    head = signed.head
    entries: list[Entry] = []
    bad_entries = 0
    for i, item in enumerate(doc["entries"]):
        problem = _check_entry(item, doc, head)
        if problem:
            bad_entries += 1
            errors.append(f"entry {i} (leaf {item.get('leaf_index')}): {problem}")
        else:
            entries.append(from_document(json.loads(item["body"]), item["hash"]))
    if not bad_entries and _totals(entries) != doc["totals"]:
        errors.append("the totals do not match the entries")
    errors += _check_previous(doc.get("previous"), head, public_key)
    if previous is not None:
        prev_head = head_from_json(previous["tree_head"]).head
        named = doc.get("previous") or {}
        if not named or head_from_json(named["signed_head"]).head != prev_head:
            errors.append("this statement does not name the given earlier statement's head")
    return errors


def _verify_trust(doc: Mapping[str, Any], public_key: bytes, witnesses: WitnessTrust | None,
                  hosts: HostKeys | None) -> list[str]:
    """The witnesses' cosignatures and the hosts' attestations (``cosigned.py``)."""
    head = head_from_json(doc["tree_head"]).head
    _, errors = check_witnessing(doc.get("witnessing"), head, public_key,
                                 list(doc["agreement"]["parties"]), witnesses)
    if hosts is None:
        return errors
    for i, item in enumerate(doc["entries"]):
        entry = from_document(json.loads(item["body"]), item["hash"])
        problem = check_attestation(entry, item.get("attestation"), hosts)
        if problem:
            errors.append(f"entry {i} (leaf {item.get('leaf_index')}, {entry.id}): {problem}")
    return errors


def _check_entry(item: Mapping[str, Any], doc: Mapping[str, Any], head: signing.TreeHead) -> str:
    body = item["body"].encode("utf-8")
    entry = from_document(json.loads(body), item["hash"])
    if canonical(entry) != body:
        return "its body is not in canonical form"
    if chain_hash(entry.prev_hash, body) != item["hash"]:
        return "its hash does not match its body"
    if sum((leg.amount for leg in entry.legs), Decimal(0)) != 0:
        return "its legs do not balance"
    if entry.agreement != doc["agreement"]["id"] or entry.period != doc["period"]:
        return "it belongs to another agreement or period"
    proof = tuple(bytes.fromhex(p) for p in item["inclusion_proof"])
    if item["leaf_index"] != entry.seq or not merkle.verify_inclusion(
            merkle.leaf_hash(body), entry.seq, head.tree_size, proof, head.root):
        return "it is not included in the signed tree"
    return ""


def _check_previous(prev: Mapping[str, Any] | None, head: signing.TreeHead,
                    public_key: bytes) -> list[str]:
    if not prev:
        return []
    old = head_from_json(prev["signed_head"])
    errors = []
    if not signing.verify_head(old, public_key):
        errors.append("the earlier tree head's signature does not verify")
    proof = tuple(bytes.fromhex(p) for p in prev["consistency_proof"])
    if not merkle.verify_consistency(old.head.tree_size, head.tree_size, old.head.root,
                                     head.root, proof):
        errors.append("the ledger was rewritten: this head does not extend the earlier one")
    return errors


def to_csv(doc: Mapping[str, Any]) -> str:
    """The statement for spreadsheets: one row per entry, then the totals."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["agreement", "period", "status", "unit"])
    w.writerow([doc["agreement"]["id"], doc["period"], doc["status"], doc["unit"]])
    w.writerow([])
    w.writerow(["seq", "id", "kind", "requester", "host", "site", "project", "job", "gpu_model",
                "gpu_seconds", "rate", "units", "reason"])
    for item in doc["entries"]:
        e = json.loads(item["body"])
        w.writerow([e["seq"], e["id"], e["kind"], e["requester"], e["host"], e["site"],
                    e["project"], e["job_id"], e["gpu_model"], e["gpu_seconds"], e["rate"],
                    e["units"], e["reason"]])
    w.writerow([])
    for group in ("by_direction", "by_site", "by_project", "net_by_partner"):
        for k, v in doc["totals"][group].items():
            w.writerow(["total", group, k, v])
    return out.getvalue()


def _witnessed_html(doc: Mapping[str, Any]) -> str:
    """The cosigners and the reasons a statement is provisional, as HTML (escaped)."""
    w = doc.get("witnessing")
    out = ""
    if w:
        out += f" Cosigned by: {escape(', '.join(w['cosigners']) or 'no witness yet')}."
    reasons = doc.get("provisional_reasons") or []
    if reasons:
        out += f" Provisional: {escape('; '.join(reasons))}."
    return out


def to_html(doc: Mapping[str, Any]) -> str:
    """The statement for people (every value escaped)."""
    t = doc["totals"]

    def table(title: str, rows: Mapping[str, str]) -> str:
        body = "".join(f"<tr><td>{escape(k)}</td><td class='n'>{escape(v)}</td></tr>"
                       for k, v in rows.items()) or "<tr><td colspan='2'>none</td></tr>"
        return (f"<h2>{escape(title)}</h2><table><thead><tr><th scope='col'>Key</th>"
                f"<th scope='col'>{escape(doc['unit'])}</th></tr></thead><tbody>{body}</tbody></table>")

    entries = "".join(
        "<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in (
            e["seq"], e["kind"], f"{e['requester']}→{e['host']}", e["site"], e["project"],
            e["job_id"] or "", e["units"], e["reason"])) + "</tr>"
        for e in (json.loads(i["body"]) for i in doc["entries"]))
    a = doc["agreement"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Statement {escape(a['id'])} {escape(doc['period'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
table{{border-collapse:collapse;margin-bottom:1rem}}td,th{{padding:.25rem .6rem;
border-bottom:1px solid #ccc;text-align:left}}.n{{text-align:right}}</style></head><body>
<h1>Statement — {escape(a['name'])} ({escape(a['id'])}), {escape(doc['period'])}</h1>
<p>Status: <strong>{escape(doc['status'])}</strong>. Parties: {escape(', '.join(a['parties']))}.
Signed tree head: size {doc['tree_head']['tree_size']}, root
<code>{escape(doc['tree_head']['root'])}</code>, key <code>{escape(doc['key_id'][:16])}…</code>.
Verify with <code>accord statement verify FILE.json --key PUBKEY</code>.{_witnessed_html(doc)}</p>
{table('Net balance per partner (provided − used)', t['net_by_partner'])}
{table('Per direction (requester→host)', t['by_direction'])}
{table('Per site', t['by_site'])}
{table('Per project', t['by_project'])}
{table('Memo', doc['memo'])}
<h2>Entries ({t['entries']})</h2><table><thead><tr><th scope="col">Seq</th><th scope="col">Kind</th>
<th scope="col">Direction</th><th scope="col">Site</th><th scope="col">Project</th>
<th scope="col">Job</th><th scope="col">Units</th><th scope="col">Reason</th></tr></thead>
<tbody>{entries}</tbody></table></body></html>"""
