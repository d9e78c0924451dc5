"""The ledger's pure core: pricing, double entry, month split, corrections, canonical bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput
from accord.domain.federation import Federation
from accord.domain.ledger import (
    Entry,
    EntryKind,
    balances,
    canonical,
    correction,
    parse_period,
    seal,
    usage_entries,
)
from accord.domain.usage import UsageRecord

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
    assert dec.units + jan.units == Decimal("1.200000")
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


def test_canonical_bytes_are_stable(small_federation: Federation) -> None:
    r = record(datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 11, tzinfo=UTC))
    [e] = usage_entries(r, small_federation, NOW)
    sealed, body = seal(e, 0, "00" * 32)
    assert body == canonical(sealed)
    assert len(sealed.hash) == 64
    assert body.startswith(b'{"agreement":"uk-fr","author":"","gpu_model":"A100",'
                           b'"gpu_seconds":"7200.0","host":"fr","id":"usage:paris:1"')


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
