"""The ledger's pure core: pricing, double entry, month split, corrections, canonical bytes."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.ledger.entries import (
    Entry,
    EntryKind,
    Leg,
    balances,
    check_balanced,
    correction,
    from_document,
    parse_period,
    seal,
    usage_entries,
)
from accord.domain.ledger.usage import UsageRecord

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def record(start: datetime, end: datetime, gpus: int = 2, model: str = "A100",
           requester: str | None = "uk", host: str = "fr", agreement: str | None = "uk-fr",
           rid: str = "paris:1") -> UsageRecord:
    seconds = (end - start).total_seconds() * gpus
    return UsageRecord(rid, "j1", "paris", "a100", model, host, requester, agreement, "proj",
                       start, end, gpus, seconds, "completed", 0)


def test_a_cross_border_job_posts_one_balanced_entry_priced_at_its_start(
    small_federation: Federation,
) -> None:
    r = record(datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 13, tzinfo=UTC))
    [e] = usage_entries(r, small_federation, NOW)
    assert e.units == Decimal("3.000000")  # 2 GPUs x 3 h x 0.5 units per A100-hour (2026 rate)
    assert (e.rate, e.rate_valid_from, e.period, e.direction) == (
        Decimal("0.5"), "2026-01-01", "2026-10", "uk->fr")
    assert [leg.amount for leg in e.legs] == [Decimal("3.000000"), Decimal("-3.000000")]
    assert e.legs[0].account == "host:fr/site:paris"
    assert e.legs[1].account == "requester:uk/project:proj"


def test_domestic_and_unaffiliated_jobs_post_nothing(small_federation: Federation) -> None:
    t0, t1 = datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 11, tzinfo=UTC)
    assert usage_entries(record(t0, t1, requester="fr", agreement=None), small_federation, NOW) == ()
    assert usage_entries(record(t0, t1, requester=None, agreement=None), small_federation, NOW) == ()


def test_a_job_across_new_year_splits_by_month_at_the_start_rate(
    small_federation: Federation,
) -> None:
    r = record(datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), gpus=1)
    dec, jan = usage_entries(r, small_federation, NOW)
    assert (dec.period, jan.period) == ("2025-12", "2026-01")
    assert dec.rate == jan.rate == Decimal("0.6")  # the rate in force when the job started
    # 1 GPU-h in each year, both at 0.6 (the 2026 rate, 0.5, would make January 0.500000)
    assert (dec.units, jan.units) == (Decimal("0.600000"), Decimal("0.600000"))
    assert (dec.id, jan.id) == ("usage:paris:1#2025-12", "usage:paris:1#2026-01")


def test_corrections_reference_and_reverse(small_federation: Federation) -> None:
    r = record(datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 12, tzinfo=UTC))
    [e] = usage_entries(r, small_federation, NOW)
    refund = correction(e, EntryKind.REFUND, Decimal("1"), "site fault", "ops", "2026-11", NOW, "r1")
    assert (refund.units, refund.references, refund.period) == (Decimal("-1.000000"), e.id, "2026-11")
    assert balances([e, refund]).by_direction == {"uk->fr": Decimal("1.000000")}
    with pytest.raises(InvalidInput, match="reason: a correction needs a reason"):
        correction(e, EntryKind.REFUND, Decimal("1"), " ", "ops", "2026-11", NOW, "r2")
    with pytest.raises(InvalidInput, match="exceeds the original entry"):
        correction(e, EntryKind.REVERSAL, Decimal("5"), "x", "ops", "2026-11", NOW, "r3")


# ─── known-answer vectors (docs/design/ledger-format.md, "Known-answer vectors") ────────────
# The bytes and hashes are literals: the encoding is checked against them, never against itself.

USAGE_BYTES = (
    b'{"agreement":"uk-fr","author":"","gpu_model":"A100","gpu_seconds":"7200.0","host":"fr",'
    b'"id":"usage:paris:1001","job_id":"j1","kind":"usage",'
    b'"legs":[["host:fr/site:paris","1.000000"],["requester:uk/project:proj","-1.000000"]],'
    b'"memo":{"emissions_kg":"0.120000","energy_kwh":"1.500000"},"period":"2026-10",'
    b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"project":"proj","rate":"0.5","rate_valid_from":"2026-01-01","reason":"",'
    b'"recorded_at":"2026-11-22T00:00:00.000000Z","references":null,"requester":"uk","seq":0,'
    b'"site":"paris","units":"1.000000","usage_id":"paris:1001","v":1}'
)
USAGE_HASH = "e3146197ae64910b0b7133b4a4886290050b51db3d4278180097ce35a4dc2eef"
REFUND_BYTES = (
    b'{"agreement":"uk-fr","author":"site-ops","gpu_model":"A100","gpu_seconds":"7200.0",'
    b'"host":"fr","id":"refund:0123456789abcdef","job_id":"j1","kind":"refund",'
    b'"legs":[["host:fr/site:paris","-0.250000"],["requester:uk/project:proj","0.250000"]],'
    b'"memo":{},"period":"2026-11",'
    b'"prev_hash":"e3146197ae64910b0b7133b4a4886290050b51db3d4278180097ce35a4dc2eef",'
    b'"project":"proj","rate":"0.5","rate_valid_from":"2026-01-01",'
    b'"reason":"n\xc5\x93ud d\xc3\xa9faillant paris-n3",'   # "nœud défaillant", UTF-8, not \u-escaped
    b'"recorded_at":"2026-11-23T09:30:00.000000Z","references":"usage:paris:1001",'
    b'"requester":"uk","seq":1,"site":"paris","units":"-0.250000","usage_id":"paris:1001","v":1}'
)
REFUND_HASH = "21b047321b225c398c7d5d47037b9c799bed5d597e3465fc38527698cc77fe57"
FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "design" / "ledger-format.md"


def vector_usage(fed: Federation) -> Entry:
    """Vector 1: 2 A100s for 1 h at Paris for uk under uk-fr on 2026-10-05, 1.5 kWh, 120 g."""
    r = replace(record(datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 11, tzinfo=UTC),
                       rid="paris:1001"), energy_kwh=1.5, emissions_g=120.0)
    [e] = usage_entries(r, fed, datetime(2026, 11, 22, tzinfo=UTC))
    return e


def vector_refund(original: Entry) -> Entry:
    """Vector 2: 0.25 units of vector 1 refunded in 2026-11."""
    return correction(original, EntryKind.REFUND, Decimal("0.25"), "nœud défaillant paris-n3",
                      "site-ops", "2026-11", datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
                      "refund:0123456789abcdef")


def test_a_usage_entry_encodes_and_hashes_to_its_known_answer(small_federation: Federation) -> None:
    sealed, body = seal(vector_usage(small_federation), 0, "0" * 64)
    assert body == USAGE_BYTES
    assert sealed.hash == USAGE_HASH
    assert hashlib.sha256(bytes(32) + USAGE_BYTES).hexdigest() == USAGE_HASH   # the chain rule, by hand
    assert from_document(json.loads(USAGE_BYTES), USAGE_HASH) == sealed        # and back


def test_a_refund_encodes_and_hashes_to_its_known_answer(small_federation: Federation) -> None:
    first, _ = seal(vector_usage(small_federation), 0, "0" * 64)
    sealed, body = seal(vector_refund(first), 1, first.hash)
    assert body == REFUND_BYTES
    assert sealed.hash == REFUND_HASH
    assert hashlib.sha256(bytes.fromhex(USAGE_HASH) + REFUND_BYTES).hexdigest() == REFUND_HASH
    assert from_document(json.loads(REFUND_BYTES), REFUND_HASH) == sealed


def test_the_format_document_gives_the_same_vectors() -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Known-answer vectors\n", 1)[1].split("\n## ", 1)[0]
    vectors = re.findall(r"^### Vector \d+.*?^```json\n(.*?)\n```.*?Hash, [^`]*`([0-9a-f]{64})`",
                         section, re.S | re.M)
    assert [(b.encode("utf-8"), h) for b, h in vectors] == [
        (USAGE_BYTES, USAGE_HASH), (REFUND_BYTES, REFUND_HASH)]


# ─── balanced legs ───────────────────────────────────────────────────────────────────────

HOST, REQ = "host:fr/site:paris", "requester:uk/project:proj"


def entry_with(*legs: tuple[str, str]) -> Entry:
    return Entry("x", EntryKind.MANUAL_CREDIT, "uk-fr", "2026-10", "uk", "fr", "paris", "proj",
                 Decimal("1"), tuple(Leg(a, Decimal(x)) for a, x in legs))


@pytest.mark.parametrize("legs", [
    ((HOST, "1.000000"), (REQ, "-0.999999")),     # one millionth short: sums to 0.000001
    ((HOST, "0.999999"), (REQ, "-1.000000")),     # one millionth over: sums to -0.000001
    ((HOST, "1"), (REQ, "1")),                    # both credited: sums to 2
    ((HOST, "1.000000"),),                        # one leg only
    ((HOST, "0"),),                               # one leg only, even of nothing
    (),                                           # no legs
])
def test_an_entry_whose_legs_do_not_balance_is_refused_naming_its_legs(
    legs: tuple[tuple[str, str], ...],
) -> None:
    e = entry_with(*legs)
    for check in (lambda: check_balanced(e), lambda: seal(e, 0, "0" * 64)):
        with pytest.raises(InvalidInput) as info:
            check()
        assert [p.where for p in info.value.problems] == ["legs"]


def test_balanced_legs_pass() -> None:
    check_balanced(entry_with((HOST, "1.000000"), (REQ, "-1.000000")))
    check_balanced(entry_with((HOST, "-0.250000"), (REQ, "0.250000")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 86400 * 40), st.integers(1, 86400 * 3),
                          st.integers(1, 8)), min_size=1, max_size=20))
def test_any_postings_balance_to_zero(small_federation: Federation,
                                      jobs: list[tuple[int, int, int]]) -> None:
    base = datetime(2026, 9, 20, tzinfo=UTC).timestamp()
    entries: list[Entry] = []
    for i, (offset, length, gpus) in enumerate(jobs):
        start = datetime.fromtimestamp(base + offset, UTC)
        end = datetime.fromtimestamp(base + offset + length, UTC)
        entries += usage_entries(record(start, end, gpus, rid=f"p:{i}"), small_federation, NOW)
    b = balances(entries)
    assert b.total == 0
    assert sum(b.net_by_partner.values()) == 0
    assert b.by_direction["uk->fr"] == sum(e.units for e in entries)


def test_periods_are_validated() -> None:
    assert parse_period("2026-10") == "2026-10"
    with pytest.raises(InvalidInput, match="period: is not a month"):
        parse_period("October")
