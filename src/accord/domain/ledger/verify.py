"""Verify stored ledger rows in one streaming pass (pure; the rows come from anywhere).

For each row, in order: its position, its chain hash, that its body is canonical
and agrees with the indexed columns stored beside it, and that its legs balance.
It also collects the Merkle leaf hashes (one ``bytearray``, 32 bytes a leaf, no
object per leaf), so closures can be checked against the tree they build.

Built for speed (``verify`` of 1,000,000 entries is a benchmark target), without
skipping a check: ``orjson`` parses, and the canonical check compares the body
with ``orjson``'s sorted re-encoding first, falling back to the reference
encoder (Python's ``json``, which defines the format) on any difference. The two
write every JSON value alike (tested for every character) except some numbers
with a fraction or an exponent (``0.00001`` and ``1e-05``), which entries never
hold: their decimals are strings. A pair of legs whose amounts are the same
plain decimal with opposite signs balances by inspection; any other legs are
summed as ``Decimal``, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from accord.domain.ledger.merkle import MerkleTree

Row = tuple[int, str, str, str, "str | None", "str | None", bytes, str]
"""(seq, id, agreement, period, job_id, usage_id, body, hash) as stored."""

GENESIS_HASH = "0" * 64
_LEAF = b"\x00"
_HEX = frozenset("0123456789abcdef")
_PLAIN_DIGITS = 20
"""Longest amount checked by inspection: far inside ``Decimal``'s 28 digits, so the
shortcut and the ``Decimal`` sum can never disagree."""


@dataclass
class ChainCheck:
    """The running state and result of a verification pass.

    ``leaves`` holds the leaf hashes of the rows checked so far, concatenated;
    ``tree`` is the Merkle tree over them once it is built (:meth:`merkle_tree`),
    or once a caller that checked slices in parallel has joined theirs.
    """

    count: int = 0
    last_hash: str = GENESIS_HASH
    leaves: bytearray = field(default_factory=bytearray)
    bad_seq: int | None = None
    problem: str = ""
    tree: MerkleTree | None = None

    @property
    def ok(self) -> bool:
        """Whether every row so far was good."""
        return self.bad_seq is None

    def merkle_tree(self) -> MerkleTree:
        """The Merkle tree over every leaf checked (built from ``leaves`` on first use).

        Raises:
            InvalidInput: ``leaves`` is not a whole number of 32-byte hashes.
        """
        if self.tree is None:
            self.tree = MerkleTree.from_leaf_level(bytes(self.leaves))
        return self.tree


def verify_rows(rows: Iterable[Row], check: ChainCheck | None = None) -> ChainCheck:
    """Check rows in sequence order, continuing ``check`` (or from the genesis).

    Stops at the first bad row and records its position and why in the returned
    state (``bad_seq``, ``problem``); a bad row is data, so nothing is raised.
    ``check.last_hash`` must be a SHA-256 hex digest (the caller read it from the
    store: see :func:`is_digest`).

    Raises:
        ValueError: ``check.last_hash`` is not hex.
    """
    state = check or ChainCheck()
    sha256, leaves = hashlib.sha256, state.leaves
    count, last = state.count, state.last_hash
    prev = bytes.fromhex(last)
    try:
        for row in rows:
            seq, body, stored_hash = row[0], row[6], row[7]
            if seq != count:
                return _out_of_place(state, count, seq)
            digest = sha256(prev + body).digest()
            if digest.hex() != stored_hash:
                return _fail(state, seq, f"entry {seq} ({row[1]}): its hash does not match "
                                         "its content and predecessor (edited, inserted or "
                                         "reordered)")
            problem = _check_body(row, last)
            if problem:
                return _fail(state, seq, f"entry {seq}: {problem}")
            leaves += sha256(_LEAF + body).digest()
            last, prev = stored_hash, digest
            count += 1
        return state
    finally:
        state.count, state.last_hash = count, last


def _out_of_place(state: ChainCheck, count: int, seq: object) -> ChainCheck:
    """The row at position ``count`` has ``seq``: a gap, or a row that does not belong.

    A gap names the first missing position; a stray row (a ``seq`` already passed,
    or not a whole number at all) is named by its own ``seq`` when it has one.
    """
    if type(seq) is int and seq > count:
        return _fail(state, count, f"entry at position {count} is missing (found seq {seq})")
    return _fail(state, seq if type(seq) is int else count,
                 f"entry at position {count} is duplicated or reordered (found seq {seq!r})")


def _check_body(row: Row, prev_hash: str) -> str:
    seq, entry_id, agreement, period, job_id, usage_id, body, _ = row
    try:
        doc: dict[str, Any] = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "its body is not JSON"
    try:
        canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == body
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: the reference decides
        canonical = False
    if not canonical and not _is_reference_encoding(doc, body):
        return "its body is not in canonical form"
    try:
        if doc["prev_hash"] != prev_hash or doc["seq"] != seq:
            return "its body names another position or predecessor (reordered)"
        if (doc["id"], doc["agreement"], doc["period"], doc["job_id"], doc["usage_id"]) != (
                entry_id, agreement, period, job_id, usage_id):
            return "its indexed columns disagree with its hashed body (edited)"
        legs = doc["legs"]
        if _opposite_pair(legs):
            return ""
        amounts = [Decimal(amount) for _, amount in legs]
        balanced = len(amounts) >= 2 and sum(amounts, Decimal(0)) == 0
    except (KeyError, TypeError, ValueError, ArithmeticError):  # e.g. "Infinity" - "Infinity"
        return "its body is not a valid entry"
    return "" if balanced else "its legs do not balance"


def _opposite_pair(legs: Any) -> bool:
    """Whether ``legs`` is ``[[_, x], [_, -x]]`` (either order) for a plain decimal ``x``.

    Such legs sum to exactly zero; ``False`` only means "not shown by inspection".

    >>> _opposite_pair([["host:fr/site:paris", "-1.500000"], ["requester:uk/p", "1.500000"]])
    True
    >>> _opposite_pair([["a", "1E+2"], ["b", "-1E+2"]]), _opposite_pair([["a", "1"], ["b", "1"]])
    (False, False)
    """
    if type(legs) is not list or len(legs) != 2:
        return False
    first, second = legs
    if type(first) is not list or type(second) is not list or len(first) != 2 or len(second) != 2:
        return False
    a, b = first[1], second[1]
    if type(a) is not str or type(b) is not str:
        return False
    x = a if b == "-" + a else b if a == "-" + b else ""
    return len(x) <= _PLAIN_DIGITS and x.isascii() and x.replace(".", "", 1).isdigit()


def _is_reference_encoding(doc: Any, body: bytes) -> bool:
    """Whether ``body`` is ``doc`` as the format defines it (Python's ``json``, exactly)."""
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode() == body
    except RecursionError:  # too deeply nested to encode: not an entry's canonical bytes
        return False


def is_digest(value: object) -> bool:
    """Whether ``value`` is a SHA-256 digest in lower-case hex, as the store keeps them.

    >>> is_digest("ab" * 32), is_digest("AB" * 32), is_digest(None)
    (True, False, False)
    """
    return isinstance(value, str) and len(value) == 64 and all(c in _HEX for c in value)


def _fail(state: ChainCheck, seq: int, problem: str) -> ChainCheck:
    state.bad_seq = seq
    state.problem = problem
    return state
