"""The fast row check against a plain reference, and the Merkle tree joined from slices.

``verify_rows`` takes shortcuts for speed (``orjson`` first, legs balanced by
inspection, leaves in one buffer). Here a reference verifier written as plainly
as the format document states the checks (``json``, ``Decimal``, one leaf at a
time) judges the same rows, after random edits: of a body's fields, its legs and
its encoding, of a column or a position, with or without every later hash and
``prev_hash`` recomputed by the editor. Both must name the same first bad entry
for the same reason.
"""

from __future__ import annotations

import doctest
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.federation_file import parse_federation_text
from accord.domain.errors import InvalidInput
from accord.domain.ledger import merkle
from accord.domain.ledger import verify as ledger_verify
from accord.domain.ledger.entries import EntryKind, correction, seal, usage_entries
from accord.domain.ledger.merkle import MerkleTree, leaf_hash, lower_levels
from accord.domain.ledger.usage import UsageRecord
from accord.domain.ledger.verify import ChainCheck, Row, verify_rows
from tests.conftest import SMALL_FEDERATION

START = datetime(2026, 10, 3, 8, tzinfo=UTC)
COLUMNS = ("id", "agreement", "period", "job_id", "usage_id")
GENESIS = "0" * 64


def test_the_doctests_hold() -> None:
    assert doctest.testmod(ledger_verify).failed == 0
    assert doctest.testmod(merkle).failed == 0


@cache
def chain(n: int = 4) -> tuple[Row, ...]:
    """n good rows as the store holds them, the last one a refund (legs "-x", "x")."""
    fed = parse_federation_text(SMALL_FEDERATION)
    rows: list[Row] = []
    prev = GENESIS
    for i in range(n):
        start = START + timedelta(hours=i)
        record = UsageRecord(f"paris:{i}", f"j{i}", "paris", "a100", "A100", "fr", "uk", "uk-fr",
                             "pröj", start, start + timedelta(hours=1), 2, 7200.0, "completed", 0)
        [entry] = usage_entries(record, fed, START)
        if i == n - 1:
            entry = correction(entry, EntryKind.REFUND, Decimal("0.25"), "fault", "ops", "2026-10",
                               START, "refund:1")
        sealed, body = seal(entry, i, prev)
        rows.append((i, entry.id, entry.agreement, entry.period, entry.job_id, entry.usage_id,
                     body, sealed.hash))
        prev = sealed.hash
    return tuple(rows)


# ------------------------------------------------------------------ the reference

def reference(rows: list[Row]) -> tuple[object, str]:
    """(first bad seq, what is wrong), or (None, "") — the checks, written plainly."""
    prev = GENESIS
    for position, (seq, *columns, body, stored) in enumerate(rows):
        if seq != position:
            if type(seq) is int and seq > position:
                return position, "missing"
            return (seq if type(seq) is int else position), "reordered"
        if hashlib.sha256(bytes.fromhex(prev) + body).hexdigest() != stored:
            return seq, "hash"
        try:
            doc = json.loads(body)
        except ValueError:
            return seq, "json"
        if canonical(doc) != body:
            return seq, "canonical"
        try:
            if doc["prev_hash"] != prev or doc["seq"] != seq:
                return seq, "position"
            if [doc[k] for k in COLUMNS] != columns:
                return seq, "columns"
            amounts = [Decimal(amount) for _, amount in doc["legs"]]
            balanced = len(amounts) >= 2 and sum(amounts, Decimal(0)) == 0
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return seq, "invalid"
        if not balanced:
            return seq, "balance"
        prev = stored
    return None, ""


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


KINDS = {"is missing": "missing", "duplicated or reordered": "reordered",
         "hash does not match": "hash", "not JSON": "json", "canonical form": "canonical",
         "names another position": "position", "indexed columns": "columns",
         "not a valid entry": "invalid", "do not balance": "balance"}


def fast(rows: list[Row], split: int) -> tuple[object, str]:
    """verify_rows over two batches (as the store hands them out), as (bad seq, kind)."""
    check = verify_rows(rows[:split])
    if check.ok:
        verify_rows(rows[split:], check)
    if check.ok:
        assert check.count == len(rows) and check.last_hash == (rows[-1][7] if rows else GENESIS)
        assert check.merkle_tree().root() == merkle.root([leaf_hash(r[6]) for r in rows])
        return None, ""
    [kind] = [k for phrase, k in KINDS.items() if phrase in check.problem]
    return check.bad_seq, kind


# ------------------------------------------------------------------ edits

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)
plain_amounts = st.decimals(allow_nan=False, allow_infinity=False, places=6,
                            min_value=-(10**12), max_value=10**12).map(str)
odd_amounts = st.sampled_from([
    "1E+2", "-1E+2", "0", "-0", "0.0", ".5", "5.", "", ".", "-", "abc", "NaN", "-NaN", "sNaN",
    "Infinity", "-Infinity", "\u0663", "\u00b2", "1_000", " 1", "+1", "--1", "1" * 20, "1" * 21,
    "9" * 30 + ".5", "1e999999999", "0x10", "١.٥"])
amounts = plain_amounts | odd_amounts | st.text(max_size=4) | scalars


@st.composite
def legs(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["opposite", "any", "value"]))
    if shape == "opposite":  # the shape the shortcut takes: [_, x], [_, "-" + x]
        x = draw(plain_amounts | odd_amounts)
        pair = [["host:fr/site:paris", x], ["requester:uk/project:p", "-" + x]]
        return pair[::-1] if draw(st.booleans()) else pair
    if shape == "any":
        return draw(st.lists(st.lists(st.text(max_size=3) | amounts, min_size=1, max_size=3)
                             | amounts, max_size=4))
    return draw(json_values)


@st.composite
def edited_doc(draw: st.DrawFn, doc: dict[str, Any]) -> Any:
    doc = dict(doc)
    how = draw(st.sampled_from(["legs", "field", "drop", "replace"]))
    keys = [*doc, "zz_extra"]
    if how == "legs":
        doc["legs"] = draw(legs())
    elif how == "field":
        key = draw(st.sampled_from(keys))
        doc[key] = draw(json_values | st.just(str(doc.get(key)) + "x") | st.just(doc.get(key)))
    elif how == "drop":
        doc.pop(draw(st.sampled_from(list(doc))))
    else:
        return draw(json_values)
    return doc


def encodings(doc: Any) -> st.SearchStrategy[bytes]:
    body = canonical(doc)
    options = [body, json.dumps(doc, sort_keys=True, ensure_ascii=False).encode(),
               json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), body[:-1],
               b" " + body]
    if isinstance(doc, dict):
        options.append(json.dumps(dict(reversed(doc.items())), separators=(",", ":"),
                                  ensure_ascii=False).encode())
    return st.sampled_from(options)


@st.composite
def tampered(draw: st.DrawFn) -> list[Row]:
    rows = list(chain())
    k = draw(st.integers(0, len(rows) - 1))
    seq: object
    seq, *columns, body, stored = rows[k]
    what = draw(st.sampled_from(["doc", "doc", "doc", "column", "seq", "drop", "swap"]))
    if what == "doc":
        body = draw(encodings(draw(edited_doc(json.loads(body)))))
    elif what == "column":
        i = draw(st.integers(0, 4))
        columns[i] = draw(st.none() | st.text(max_size=4) | st.just(f"{columns[i]}x"))
    elif what == "seq":
        seq = draw(st.integers(-2, 6) | st.just("x"))
    rows[k] = (seq, *columns, body, stored)  # type: ignore[assignment]
    if what == "drop":
        del rows[k]
    elif what == "swap" and k + 1 < len(rows):
        rows[k], rows[k + 1] = rows[k + 1], rows[k]
    if draw(st.booleans()):
        rows = rechained(rows, k)
    return rows


def rechained(rows: list[Row], k: int) -> list[Row]:
    """What an editor who also recomputes hashes leaves: every hash from row k on, and
    every later body's ``prev_hash``, made to fit (so only row k itself can be wrong)."""
    out = list(rows[:k])
    prev = rows[k - 1][7] if k else GENESIS
    for j, (seq, *columns, body, _) in enumerate(rows[k:], start=k):
        if j > k:
            doc = json.loads(body)
            doc["prev_hash"] = prev
            body = canonical(doc)
        stored = hashlib.sha256(bytes.fromhex(prev) + body).hexdigest()
        out.append((seq, *columns, body, stored))  # type: ignore[arg-type]
        prev = stored
    return out


@settings(max_examples=600, deadline=None)
@given(tampered(), st.integers(0, 4))
def test_the_fast_check_names_what_the_reference_names(rows: list[Row], split: int) -> None:
    assert fast(rows, split) == reference(rows)


def test_the_good_chain_passes_both() -> None:
    rows = list(chain())
    assert fast(rows, 2) == reference(rows) == (None, "")


@pytest.mark.parametrize("k", [0, 3])
@pytest.mark.parametrize(("key", "value", "kind"), [
    ("seq", 7, "position"), ("prev_hash", "1" * 64, "position"), ("id", "other", "columns"),
    ("agreement", "uk-kr", "columns"), ("period", "2030-01", "columns"),
    ("job_id", None, "columns"), ("usage_id", "other", "columns"),
    ("legs", [["a", "1.000000"], ["b", "-2.000000"]], "balance"), ("legs", [["a", "1"]], "balance"),
    ("legs", "12", "invalid")])
def test_each_checked_field_edited_under_recomputed_hashes_is_named(
        k: int, key: str, value: Any, kind: str) -> None:
    rows = list(chain())
    doc = json.loads(rows[k][6])
    doc[key] = value
    seq, *columns, _, stored = rows[k]
    rows[k] = (seq, *columns, canonical(doc), stored)  # type: ignore[assignment]
    rows = rechained(rows, k)
    assert fast(rows, 2) == reference(rows) == (k, kind)


@pytest.mark.parametrize(("amount", "kind"), [
    ("Infinity", "invalid"), ("sNaN", "invalid"), ("NaN", "balance"), ("1E+2", None),
    ("9" * 30 + ".5", "balance"), ("1" * 21, None), ("\u0663", None)])
def test_odd_amounts_are_judged_as_decimal_would(amount: str, kind: str | None) -> None:
    """Edits the shortcut must leave to ``Decimal``: the verdict is the reference's."""
    rows = list(chain())
    doc = json.loads(rows[1][6])
    doc["legs"] = [["a", amount], ["b", "-" + amount]]
    seq, *columns, _, stored = rows[1]
    rows = rechained([*rows[:1], (seq, *columns, canonical(doc), stored), *rows[2:]], 1)  # type: ignore[list-item]
    assert fast(rows, 1) == reference(rows) == ((1, kind) if kind else (None, ""))


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_body_nested_deeper_than_orjson_writes_is_judged_without_a_crash(depth: int) -> None:
    """orjson reads 1,024 levels but writes 254; Python's encoder decides, or gives up."""
    rows = list(chain())
    doc = json.loads(rows[0][6])
    doc["zz"] = "<deep>"
    body = canonical(doc).replace(b'"<deep>"', b"[" * depth + b"]" * depth)
    seq, *columns, _, stored = rows[0]
    rows = [(seq, *columns, body, stored), *rows[1:]]  # type: ignore[list-item]
    rows = rechained(rows, 0)
    if depth == 300:  # canonical, as Python's json writes it: the entry is good
        assert fast(rows, 0) == reference(rows) == (None, "")
    else:  # too deep for any encoder here: not the canonical bytes of an entry
        assert fast(rows, 0) == (0, "canonical")


@settings(max_examples=300, deadline=None)
@given(legs())
def test_legs_balanced_by_inspection_balance_as_decimals(value: Any) -> None:
    if ledger_verify._opposite_pair(value):
        amounts = [Decimal(amount) for _, amount in value]
        assert len(amounts) == 2 and sum(amounts, Decimal(0)) == 0


def test_the_shortcut_is_taken_for_the_legs_accord_writes() -> None:
    for *_, body, _ in chain():
        assert ledger_verify._opposite_pair(json.loads(body)["legs"])


# ------------------------------------------------------------------ orjson and json agree

def test_orjson_writes_every_character_as_the_reference_encoder_does() -> None:
    """The canonical check's shortcut rests on this (surrogates are not valid UTF-8)."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for i in range(0, len(chars), 4096):
        block = "".join(chars[i:i + 4096])
        assert orjson.dumps(block) == canonical(block), hex(ord(chars[i]))
        keys = dict.fromkeys(chars[i:i + 4096:7], 0)
        assert orjson.dumps(keys, option=orjson.OPT_SORT_KEYS) == canonical(keys)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_orjson_writes_any_value_without_fractions_as_the_reference_does(value: Any) -> None:
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical(value)


# ------------------------------------------------------------------ Merkle levels

def hashes(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 5), st.lists(st.integers(1, 5), max_size=6))
def test_a_tree_joined_from_aligned_runs_is_the_tree(n: int, depth: int, blocks: list[int]) -> None:
    leaves = hashes(n)
    cuts, pos = [], 0
    for b in blocks:
        pos += b << depth
        if pos >= n:
            break
        cuts.append(pos)
    bounds = [0, *cuts, n]
    parts = [lower_levels(b"".join(leaves[a:b]), depth) for a, b in itertools.pairwise(bounds)]
    joined = MerkleTree.join(parts)
    assert joined.levels == MerkleTree.build(leaves).levels
    assert joined.levels == MerkleTree.from_leaf_level(b"".join(leaves)).levels


def test_runs_that_split_a_subtree_are_refused() -> None:
    leaves = hashes(8)
    parts = [lower_levels(b"".join(leaves[:3]), 2), lower_levels(b"".join(leaves[3:]), 2)]
    with pytest.raises(InvalidInput, match="multiple of 4"):
        MerkleTree.join(parts)
    with pytest.raises(InvalidInput, match="same number of levels"):
        MerkleTree.join([lower_levels(b"".join(leaves[:4]), 2), lower_levels(b"", 1)])
    with pytest.raises(InvalidInput):
        MerkleTree.join([])


def test_levels_need_whole_hashes() -> None:
    with pytest.raises(InvalidInput):
        lower_levels(b"x" * 33, 1)
    with pytest.raises(InvalidInput):
        lower_levels(b"", -1)
    with pytest.raises(InvalidInput):
        MerkleTree.from_leaf_level(b"x" * 31)


def test_an_empty_check_has_the_empty_tree() -> None:
    assert ChainCheck().merkle_tree().root() == merkle.EMPTY_ROOT
