"""Closed periods and balanced legs, through the ledger service over a real (SQLite) store.

Once a month is closed its books are signed and never change: usage of a job that ran in
it but arrives later is posted in the first open month after it, with a ``ran_in`` memo
naming where it ran; the closed month's statement stays byte for byte what was signed.
And no entry whose legs do not sum to zero is ever written.

Prices (the small test federation): A100 at 0.5 units per GPU-hour in 2026.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from accord.adapters.clock import FakeClock
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.ledger import signing
from accord.domain.ledger.entries import Entry, EntryKind, Leg
from accord.domain.ledger.statement import verify_statement
from accord.domain.ledger.usage import UsageRecord
from accord.service.ledger import LedgerService

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)   # the books' clock: October and November are over


@pytest.fixture
def books(tmp_path: Path, small_federation: Federation) -> Iterator[LedgerService]:
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield LedgerService(small_federation, SqlLedger(store), FakeClock(NOW),
                        signing.generate_private_key(), "test-log")
    store.close()


def ran(ref: int, start: datetime, end: datetime, gpus: int, **kw: float) -> UsageRecord:
    """A uk job on ``gpus`` A100s at fr's Paris site under uk-fr."""
    seconds = (end - start).total_seconds() * gpus
    r = UsageRecord(f"paris:{ref}", f"j{ref}", "paris", "a100", "A100", "fr", "uk", "uk-fr", "proj",
                    start, end, gpus, seconds, "completed", 0)
    return replace(r, **kw)  # type: ignore[arg-type]


def post(books: LedgerService, *records: UsageRecord) -> None:
    store = books.ledger.store  # type: ignore[attr-defined]
    for r in records:
        store.add_usage(r)
    books.post_pending()


def by_id(books: LedgerService) -> dict[str, Entry]:
    return {e.id: e for e in books.ledger.entries()}


def later(books: LedgerService, hours: float) -> None:
    books.clock.advance(hours * 3600)  # type: ignore[attr-defined]


def test_late_usage_of_a_closed_month_lands_in_the_next_open_month(books: LedgerService) -> None:
    # In October: 2 GPUs x 2 h = 4 GPU-h x 0.5 = 2.000000 units.
    post(books, ran(1, datetime(2026, 10, 5, 10, tzinfo=UTC), datetime(2026, 10, 5, 12, tzinfo=UTC), 2))
    books.close_period("2026-10")
    closed = books.statement("uk-fr", "2026-10")
    closures = books.ledger.closures()
    later(books, 5)
    # Then the accounting of another October job arrives: 1 GPU x 3 h = 1.500000 units,
    # 0.3 kWh.
    post(books, ran(2, datetime(2026, 10, 20, 8, tzinfo=UTC), datetime(2026, 10, 20, 11, tzinfo=UTC), 1,
                    energy_kwh=0.3))
    late = by_id(books)["usage:paris:2"]
    assert (late.period, str(late.units)) == ("2026-11", "1.500000")
    assert dict(late.memo) == {"energy_kwh": "0.300000", "ran_in": "2026-10"}
    assert [(leg.account, str(leg.amount)) for leg in late.legs] == [
        ("host:fr/site:paris", "1.500000"), ("requester:uk/project:proj", "-1.500000")]
    # October's books are what was signed at its close, whenever they are asked for
    later(books, 5)
    assert books.ledger.closures() == closures
    again = books.statement("uk-fr", "2026-10")
    assert (again["entries"], again["totals"], again["tree_head"]) == (
        closed["entries"], closed["totals"], closed["tree_head"])
    assert again == closed
    assert closed["totals"]["entries"] == 1
    assert closed["totals"]["by_direction"] == {"uk->fr": "2.000000"}
    assert books.balances("uk-fr", "2026-10")["by_direction"] == {"uk->fr": "2.000000"}
    # November (open) carries it, says where it ran, and verifies
    november = books.statement("uk-fr", "2026-11")
    assert november["status"] == "provisional"
    assert november["totals"]["by_direction"] == {"uk->fr": "1.500000"}
    assert '"memo":{"energy_kwh":"0.300000","ran_in":"2026-10"}' in november["entries"][0]["body"]
    assert verify_statement(november, books.public_key) == []
    assert books.verify().ok


def test_a_job_across_a_closed_and_an_open_month(books: LedgerService) -> None:
    books.close_period("2026-10")
    # 3 GPUs from 2026-10-31 23:00 to 2026-11-01 02:00: October 3 GPU-h = 1.500000 units,
    # November 6 GPU-h = 3.000000 units; both now count in November.
    post(books, ran(3, datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC), 3))
    entries = by_id(books)
    octo, nov = entries["usage:paris:3#2026-10"], entries["usage:paris:3#2026-11"]
    assert (octo.period, str(octo.units), dict(octo.memo)) == ("2026-11", "1.500000", {"ran_in": "2026-10"})
    assert (nov.period, str(nov.units), dict(nov.memo)) == ("2026-11", "3.000000", {})
    assert books.balances("uk-fr", "2026-10")["entries"] == 0
    assert books.balances("uk-fr", "2026-11")["by_direction"] == {"uk->fr": "4.500000"}


def test_two_closed_months_in_a_row_are_both_skipped(books: LedgerService) -> None:
    post(books, ran(4, datetime(2026, 10, 1, 0, tzinfo=UTC), datetime(2026, 10, 1, 1, tzinfo=UTC), 2))
    books.close_period("2026-10")
    books.close_period("2026-11")
    october, november = books.statement("uk-fr", "2026-10"), books.statement("uk-fr", "2026-11")
    # Late: an October job (2 GPU-h = 1.000000) and one across October and November
    # (3 GPUs, 1 h + 2 h: 1.500000 and 3.000000): all three entries go to December.
    post(books, ran(5, datetime(2026, 10, 9, 9, tzinfo=UTC), datetime(2026, 10, 9, 10, tzinfo=UTC), 2),
         ran(6, datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC), 3))
    entries = by_id(books)
    assert [(e.period, str(e.units), dict(e.memo)) for e in (
        entries["usage:paris:5"], entries["usage:paris:6#2026-10"], entries["usage:paris:6#2026-11"])] == [
        ("2026-12", "1.000000", {"ran_in": "2026-10"}),
        ("2026-12", "1.500000", {"ran_in": "2026-10"}),
        ("2026-12", "3.000000", {"ran_in": "2026-11"}),
    ]
    assert books.statement("uk-fr", "2026-10") == october
    assert books.statement("uk-fr", "2026-11") == november
    assert books.balances("uk-fr", "2026-12")["by_direction"] == {"uk->fr": "5.500000"}
    # and a correction of an October entry goes to December too
    fix = books.correct("usage:paris:4", "refund", "0.5", "node fault", "site-ops")
    assert (fix.period, str(fix.units), fix.references) == ("2026-12", "-0.500000", "usage:paris:4")
    assert books.verify().ok


# ─── balanced legs on write ──────────────────────────────────────────────────────────────

HOST, REQ = "host:fr/site:paris", "requester:uk/project:proj"


def entry(entry_id: str, *legs: tuple[str, str]) -> Entry:
    return Entry(entry_id, EntryKind.USAGE, "uk-fr", "2026-11", "uk", "fr", "paris", "proj",
                 Decimal("1.000000"), tuple(Leg(a, Decimal(x)) for a, x in legs), usage_id="paris:9")


@pytest.mark.parametrize("legs", [
    ((HOST, "1.000000"), (REQ, "-0.999999")),    # sums to 0.000001
    ((HOST, "0.999999"), (REQ, "-1.000000")),    # sums to -0.000001
    ((HOST, "1.000000"), (REQ, "1.000000")),     # sums to 2
    ((HOST, "1.000000"),),                       # one leg only
    ((HOST, "0"),),                              # one leg only, of nothing
])
def test_an_unbalanced_entry_is_never_written(
    books: LedgerService, legs: tuple[tuple[str, str], ...],
) -> None:
    good = entry("usage:paris:8", (HOST, "1.000000"), (REQ, "-1.000000"))
    bad = entry("usage:paris:9", *legs)
    writes: list[Callable[[], object]] = [
        lambda: books.ledger.append([bad]),
        lambda: books.ledger.append([good, bad], usage_id="paris:9"),
        lambda: books.ledger.append_many([("paris:8", [good]), ("paris:9", [bad])]),
    ]
    for write in writes:
        with pytest.raises(InvalidInput) as refused:
            write()
        assert [p.where for p in refused.value.problems] == ["legs"]
        assert "legs: an entry's legs must sum to zero" in str(refused.value)
    # nothing was written, not even the balanced entry sent with it, nor a "posted" mark
    assert books.ledger.head() == (0, "0" * 64)
    assert books.ledger.entries() == []
    assert not books.ledger.is_posted("paris:9")  # type: ignore[attr-defined]
    assert books.verify().ok
    [written] = books.ledger.append([good])   # the balanced one alone is fine
    assert (written.seq, [str(leg.amount) for leg in written.legs]) == (0, ["1.000000", "-1.000000"])


# ── a month closes once it has ended; closing the current one early is asked for ─────
def test_the_current_month_closes_only_early_and_a_later_month_never(books: LedgerService) -> None:
    with pytest.raises(InvalidInput) as refused:
        books.close_period("2026-12")                      # the clock's month (3 December)
    [p] = refused.value.problems
    assert (p.where, p.message, p.got) == ("period", "has not ended yet", "2026-12")
    assert p.allowed is not None and "a month before 2026-12" in p.allowed and "--early" in p.allowed
    assert "booked to the next open period" in p.allowed
    for future in ("2027-01", "2031-06"):
        for early in (False, True):
            with pytest.raises(InvalidInput, match="has not begun yet"):
                books.close_period(future, early=early)
    assert books.ledger.closures() == []
    books.close_period("2026-11")                          # ended: no flag needed
    books.close_period("2026-12", early=True)
    # usage of the rest of December is booked to January, the next open period
    post(books, ran(9, datetime(2026, 12, 20, 10, tzinfo=UTC), datetime(2026, 12, 20, 12, tzinfo=UTC), 2))
    moved = by_id(books)["usage:paris:9"]
    assert (moved.period, dict(moved.memo)) == ("2027-01", {"ran_in": "2026-12"})
    assert [c.period for c in books.ledger.closures()] == ["2026-11", "2026-12"]
