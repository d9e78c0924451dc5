"""Verify stored ledger rows in one streaming pass (pure; the rows come from anywhere).

For each row, in order: its position, its chain hash, that its body is canonical
and agrees with the indexed columns stored beside it, and that its legs balance.
It also collects the Merkle leaf hashes, so closures can be checked against them.
Built for speed (``verify`` of 1,000,000 entries is a benchmark target): ``orjson``
parses, and the canonical check compares against ``orjson``'s sorted output first,
falling back to the reference encoder on any difference, so it stays exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

Row = tuple[int, str, str, str, "str | None", "str | None", bytes, str]
"""(seq, id, agreement, period, job_id, usage_id, body, hash) as stored."""

_LEAF = b"\x00"


@dataclass
class ChainCheck:
    """The running state and result of a verification pass."""

    count: int = 0
    last_hash: str = "0" * 64
    total: Decimal = field(default_factory=lambda: Decimal(0))
    leaves: list[bytes] = field(default_factory=list)
    bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Whether every row so far was good."""
        return self.bad_seq is None


def verify_rows(rows: Iterable[Row], check: ChainCheck | None = None) -> ChainCheck:
    """Check rows in sequence order; stops at the first bad one and says why."""
    state = check or ChainCheck()
    sha256 = hashlib.sha256
    prev = bytes.fromhex(state.last_hash)
    for row in rows:
        seq, body, stored_hash = row[0], row[6], row[7]
        if seq != state.count:
            what = "missing" if seq > state.count else "duplicated or reordered"
            return _fail(state, seq, f"entry at position {state.count} is {what} "
                                     f"(found seq {seq})")
        digest = sha256(prev + body).hexdigest()
        if digest != stored_hash:
            return _fail(state, seq, f"entry {seq} ({row[1]}): its hash does not match its "
                                     "content and predecessor (edited, inserted or reordered)")
        problem = _check_body(row, state.last_hash)
        if problem:
            return _fail(state, seq, f"entry {seq}: {problem}")
        state.leaves.append(sha256(_LEAF + body).digest())
        state.last_hash, prev = stored_hash, bytes.fromhex(stored_hash)
        state.count += 1
    return state


def _check_body(row: Row, prev_hash: str) -> str:
    seq, entry_id, agreement, period, job_id, usage_id, body, _ = row
    try:
        doc: dict[str, Any] = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "its body is not JSON"
    if orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) != body and _reference(doc) != body:
        return "its body is not in canonical form"
    try:
        if doc["prev_hash"] != prev_hash or doc["seq"] != seq:
            return "its body names another position or predecessor (reordered)"
        if (doc["id"], doc["agreement"], doc["period"], doc["job_id"], doc["usage_id"]) != (
                entry_id, agreement, period, job_id, usage_id):
            return "its indexed columns disagree with its hashed body (edited)"
        legs = [Decimal(amount) for _, amount in doc["legs"]]
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return "its body is not a valid entry"
    if len(legs) < 2 or sum(legs, Decimal(0)) != 0:
        return "its legs do not balance"
    return ""


def _reference(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fail(state: ChainCheck, seq: int, problem: str) -> ChainCheck:
    state.bad_seq = seq
    state.problem = problem
    return state
