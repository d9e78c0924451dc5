"""How usage becomes money, on expectations worked out by hand.

Every expected figure below is a literal with the arithmetic beside it; none is computed
by the code under test. The rules (``docs/design/usage-accounting.md``,
``docs/design/ledger-format.md``):

- a job's GPU-seconds are attributed to each UTC month in proportion to the time it ran
  in that month, and the month shares add up exactly to the record's GPU-seconds;
- each month share is priced at the exchange rate of the job's GPU model in force on the
  day the job *started* (stored on the entry, so a later rate never changes it), to 6
  decimal places with banker's rounding;
- a rate applies on ``[valid_from, valid_until)``.

The federation is the small test one (``tests/conftest.py``): A100 at 0.6 units per
GPU-hour from 2024-01-01 until 2026-01-01, then 0.5; H100 at 1.0 from 2024-01-01.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput, NotFound
from accord.domain.federation.model import ExchangeRate, Federation
from accord.domain.ledger.entries import Entry, usage_entries
from accord.domain.ledger.usage import MonthShare, UsageRecord, split_by_month

NOW = datetime(2028, 4, 1, tzinfo=UTC)   # when the entries are recorded: after every job here


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def record(start: datetime, end: datetime, gpu_seconds: float, gpus: int = 1,
           model: str = "A100", rid: str = "paris:1") -> UsageRecord:
    """A uk job run at fr's Paris site under uk-fr (so it crosses a border and is charged)."""
    return UsageRecord(rid, "j1", "paris", "a100", model, "fr", "uk", "uk-fr", "proj",
                       start, end, gpus, gpu_seconds, "completed", 0)


def months(r: UsageRecord) -> list[tuple[str, float, float]]:
    return [(s.period, s.seconds, s.gpu_seconds) for s in split_by_month(r)]


def priced(entries: tuple[Entry, ...]) -> list[tuple[str, str, str, str]]:
    """(period, GPU-seconds, rate, units) of each entry, as the ledger stores them."""
    return [(e.period, str(e.gpu_seconds), str(e.rate), str(e.units)) for e in entries]


# ─── the month split, by hand ────────────────────────────────────────────────────────────

def test_one_hour_in_october_and_two_in_november_is_a_third_and_two_thirds() -> None:
    # 3 GPUs from 2026-10-31 23:00 to 2026-11-01 02:00 UTC: 3 GPUs x 3 h x 3600 = 32,400 GPU-s.
    r = record(utc(2026, 10, 31, 23), utc(2026, 11, 1, 2), 32_400.0, gpus=3)
    assert months(r) == [
        ("2026-10", 3_600.0, 10_800.0),    # 1 h of 3 h: 32,400 x 1/3
        ("2026-11", 7_200.0, 21_600.0),    # 2 h of 3 h: 32,400 x 2/3
    ]


def test_shares_follow_the_records_gpu_seconds_not_a_recount() -> None:
    # Same 3 h, but the site reported 9,000 GPU-s (what was allocated is the site's word).
    r = record(utc(2026, 10, 31, 23), utc(2026, 11, 1, 2), 9_000.0, gpus=1)
    assert months(r) == [("2026-10", 3_600.0, 3_000.0),    # 9,000 x 1/3
                         ("2026-11", 7_200.0, 6_000.0)]    # 9,000 x 2/3


def test_a_job_over_three_months() -> None:
    # 4 GPUs from 2026-09-30 12:00 to 2026-11-01 06:00 UTC:
    #   September 12 h, October 31 d = 744 h, November 6 h; 762 h in all.
    #   4 x 762 h x 3600 = 10,972,800 GPU-s.
    r = record(utc(2026, 9, 30, 12), utc(2026, 11, 1, 6), 10_972_800.0, gpus=4)
    assert months(r) == [
        ("2026-09", 43_200.0, 172_800.0),         # 12 h = 43,200 s; 4 x 43,200
        ("2026-10", 2_678_400.0, 10_713_600.0),   # 744 h = 2,678,400 s; 4 x 2,678,400
        ("2026-11", 21_600.0, 86_400.0),          # 6 h = 21,600 s; 4 x 21,600
    ]


def test_february_of_a_leap_year_has_29_days() -> None:
    # 2028 is a leap year. 2 GPUs from 2028-02-28 12:00 to 2028-03-01 06:00 UTC:
    #   February: 12 h on the 28th + 24 h on the 29th = 36 h; March 6 h; 42 h in all.
    #   2 x 42 h x 3600 = 302,400 GPU-s.
    r = record(utc(2028, 2, 28, 12), utc(2028, 3, 1, 6), 302_400.0, gpus=2)
    assert months(r) == [("2028-02", 129_600.0, 259_200.0),   # 36 h; 2 x 129,600
                         ("2028-03", 21_600.0, 43_200.0)]     # 6 h; 2 x 21,600
    # The same dates in 2027 (no 29th): February 12 h, March 6 h; 2 x 18 h = 129,600 GPU-s.
    r = record(utc(2027, 2, 28, 12), utc(2027, 3, 1, 6), 129_600.0, gpus=2)
    assert months(r) == [("2027-02", 43_200.0, 86_400.0),     # 12 h; 2 x 43,200
                         ("2027-03", 21_600.0, 43_200.0)]     # 6 h; 2 x 21,600


def test_a_job_that_ends_at_midnight_on_the_first_stays_in_its_month() -> None:
    # 2028-02-28 00:00 to 2028-03-01 00:00: the 28th and the 29th, 48 h, all in February;
    # the end instant belongs to no time run, so there is no empty March share.
    r = record(utc(2028, 2, 28), utc(2028, 3, 1), 172_800.0)
    assert months(r) == [("2028-02", 172_800.0, 172_800.0)]   # 48 h x 3600, 1 GPU


def test_months_are_utc_months_whatever_the_offset_of_the_times() -> None:
    # 00:30 to 01:30 on 1 November in Paris (UTC+1) is 23:30 on 31 October to 00:30 UTC.
    paris = timezone(timedelta(hours=1))
    r = record(datetime(2026, 11, 1, 0, 30, tzinfo=paris), datetime(2026, 11, 1, 1, 30, tzinfo=paris),
               3_600.0)
    assert months(r) == [("2026-10", 1_800.0, 1_800.0), ("2026-11", 1_800.0, 1_800.0)]


def test_a_run_of_no_time_counts_whole_in_the_month_it_started() -> None:
    r = record(utc(2026, 10, 31, 23, 59), utc(2026, 10, 31, 23, 59), 5.0)
    assert split_by_month(r) == (MonthShare("2026-10", 0.0, 5.0),)


# ─── pricing the months: the ledger entries, by hand ─────────────────────────────────────

def test_the_uneven_split_is_charged_a_third_and_two_thirds(small_federation: Federation) -> None:
    r = record(utc(2026, 10, 31, 23), utc(2026, 11, 1, 2), 32_400.0, gpus=3)
    octo, nov = usage_entries(r, small_federation, NOW)
    assert priced((octo, nov)) == [
        ("2026-10", "10800.0", "0.5", "1.500000"),   # 10,800 GPU-s = 3 GPU-h x 0.5
        ("2026-11", "21600.0", "0.5", "3.000000"),   # 21,600 GPU-s = 6 GPU-h x 0.5
    ]
    assert (octo.id, nov.id) == ("usage:paris:1#2026-10", "usage:paris:1#2026-11")
    assert [(leg.account, str(leg.amount)) for leg in octo.legs] == [
        ("host:fr/site:paris", "1.500000"), ("requester:uk/project:proj", "-1.500000")]
    assert [(leg.account, str(leg.amount)) for leg in nov.legs] == [
        ("host:fr/site:paris", "3.000000"), ("requester:uk/project:proj", "-3.000000")]


def test_month_units_are_rounded_to_six_places_each(small_federation: Federation) -> None:
    # 9,000 GPU-s over 1 h in October and 2 h in November, at 0.5 units per GPU-hour:
    #   October  3,000 GPU-s / 3600 x 0.5 = 0.41666...  -> 0.416667
    #   November 6,000 GPU-s / 3600 x 0.5 = 0.83333...  -> 0.833333
    r = record(utc(2026, 10, 31, 23), utc(2026, 11, 1, 2), 9_000.0)
    assert priced(usage_entries(r, small_federation, NOW)) == [
        ("2026-10", "3000.0", "0.5", "0.416667"), ("2026-11", "6000.0", "0.5", "0.833333")]


def test_three_months_are_three_entries(small_federation: Federation) -> None:
    r = record(utc(2026, 9, 30, 12), utc(2026, 11, 1, 6), 10_972_800.0, gpus=4)
    assert priced(usage_entries(r, small_federation, NOW)) == [
        ("2026-09", "172800.0", "0.5", "24.000000"),      # 48 GPU-h x 0.5
        ("2026-10", "10713600.0", "0.5", "1488.000000"),  # 2,976 GPU-h x 0.5
        ("2026-11", "86400.0", "0.5", "12.000000"),       # 24 GPU-h x 0.5
    ]


def test_the_leap_day_is_charged_to_february(small_federation: Federation) -> None:
    r = record(utc(2028, 2, 28, 12), utc(2028, 3, 1, 6), 302_400.0, gpus=2)
    assert priced(usage_entries(r, small_federation, NOW)) == [
        ("2028-02", "259200.0", "0.5", "36.000000"),   # 72 GPU-h x 0.5
        ("2028-03", "43200.0", "0.5", "6.000000"),     # 12 GPU-h x 0.5
    ]


def test_across_new_year_both_months_are_priced_at_the_rate_in_force_at_the_start(
    small_federation: Federation,
) -> None:
    # A100: 0.6 until 2026-01-01, 0.5 from then. 2 GPUs from 2025-12-31 22:00 to
    # 2026-01-01 01:00 UTC: December 2 h, January 1 h; 2 x 3 h x 3600 = 21,600 GPU-s.
    r = record(utc(2025, 12, 31, 22), utc(2026, 1, 1, 1), 21_600.0, gpus=2)
    dec, jan = usage_entries(r, small_federation, NOW)
    assert priced((dec, jan)) == [
        ("2025-12", "14400.0", "0.6", "2.400000"),   # 4 GPU-h x 0.6
        ("2026-01", "7200.0", "0.6", "1.200000"),    # 2 GPU-h x 0.6 (not x 0.5 = 1.000000)
    ]
    assert dec.rate_valid_from == jan.rate_valid_from == "2024-01-01"
    # A job that starts at the first instant of 2026 is priced at the new rate.
    [new] = usage_entries(record(utc(2026, 1, 1), utc(2026, 1, 1, 1), 7_200.0, gpus=2, rid="paris:2"),
                          small_federation, NOW)
    assert priced((new,)) == [("2026-01", "7200.0", "0.5", "1.000000")]   # 2 GPU-h x 0.5
    assert new.rate_valid_from == "2026-01-01"


def test_each_model_has_its_own_rate(small_federation: Federation) -> None:
    # One GPU-hour on 2026-10-05: H100 at 1.0, A100 at 0.5.
    t0, t1 = utc(2026, 10, 5, 10), utc(2026, 10, 5, 11)
    [h100] = usage_entries(record(t0, t1, 3_600.0, model="H100"), small_federation, NOW)
    [a100] = usage_entries(record(t0, t1, 3_600.0, model="A100"), small_federation, NOW)
    assert (str(h100.units), str(a100.units)) == ("1.000000", "0.500000")


def test_no_rate_on_the_day_the_job_started_is_a_located_problem(small_federation: Federation) -> None:
    r = record(utc(2023, 12, 31, 23), utc(2024, 1, 1, 1), 7_200.0)   # the first A100 rate: 2024-01-01
    with pytest.raises(InvalidInput, match="usage: no exchange rate for GPU model 'A100' on 2023-12-31"):
        usage_entries(r, small_federation, NOW)


# ─── exchange rates by model and validity date ───────────────────────────────────────────

RATES = Federation(
    name="rates", reference_unit="H100-hour", partners=(), institutions=(), sites=(),
    gpu_models=(), agreements=(),
    exchange_rates=(   # listed out of date order on purpose
        ExchangeRate("H100", 1.25, date(2027, 7, 1)),
        ExchangeRate("A100", 0.6, date(2024, 1, 1), date(2026, 1, 1)),
        ExchangeRate("H100", 1.0, date(2024, 1, 1), date(2027, 7, 1)),
        ExchangeRate("A100", 0.5, date(2026, 1, 1)),
    ),
)


@pytest.mark.parametrize(("model", "at", "units", "valid_from"), [
    ("A100", utc(2024, 1, 1), 0.6, date(2024, 1, 1)),                   # first day included
    ("A100", utc(2025, 12, 31, 23, 59, 59), 0.6, date(2024, 1, 1)),     # last second before the end
    ("A100", utc(2026, 1, 1), 0.5, date(2026, 1, 1)),                   # valid_until excluded
    ("A100", utc(2031, 6, 1), 0.5, date(2026, 1, 1)),                   # open-ended
    ("H100", utc(2026, 1, 1), 1.0, date(2024, 1, 1)),                   # same day, other model
    ("H100", utc(2027, 6, 30, 23, 59), 1.0, date(2024, 1, 1)),
    ("H100", utc(2027, 7, 1), 1.25, date(2027, 7, 1)),
    ("H100", utc(2028, 2, 29, 12), 1.25, date(2027, 7, 1)),             # a leap day
])
def test_the_rate_in_force(model: str, at: datetime, units: float, valid_from: date) -> None:
    rate = RATES.rate(model, at)
    assert (rate.gpu_model, rate.units_per_gpu_hour, rate.valid_from) == (model, units, valid_from)


@pytest.mark.parametrize(("model", "at", "message"), [
    ("A100", utc(2023, 12, 31, 23, 59), "no exchange rate for GPU model 'A100' on 2023-12-31"),
    ("H100", utc(2023, 12, 31), "no exchange rate for GPU model 'H100' on 2023-12-31"),
    ("V100", utc(2026, 10, 5), "no exchange rate for GPU model 'V100' on 2026-10-05"),
])
def test_no_rate_in_force(model: str, at: datetime, message: str) -> None:
    with pytest.raises(NotFound, match=message):
        RATES.rate(model, at)


# ─── properties of the split ─────────────────────────────────────────────────────────────

BASE = utc(2024, 1, 1)
SIX_YEARS_S = 6 * 366 * 86_400


@st.composite
def records(draw: st.DrawFn) -> UsageRecord:
    """Runs of 1 µs to 100 days between 2024 and 2030 (two leap Februaries), with the
    GPU-seconds a site reports: allocated GPUs x elapsed seconds (to the microsecond, as
    the local backend measures), or any other non-negative figure."""
    start = BASE + timedelta(microseconds=draw(st.integers(0, SIX_YEARS_S * 10**6)))
    length = timedelta(microseconds=draw(st.integers(1, 100 * 86_400 * 10**6)))
    gpus = draw(st.integers(1, 4096))
    gpu_seconds = draw(st.one_of(
        st.just(gpus * length.total_seconds()),
        st.floats(0, 1e12, allow_nan=False, allow_infinity=False, allow_subnormal=False)))
    return record(start, start + length, gpu_seconds, gpus=gpus)


@settings(max_examples=1000, deadline=None)
@given(records())
def test_each_months_share_is_proportional_to_its_time_and_they_add_up_exactly(r: UsageRecord) -> None:
    shares = split_by_month(r)
    total = (r.end - r.start).total_seconds()
    assert sum(s.gpu_seconds for s in shares) == r.gpu_seconds       # exactly, not approximately
    assert math.fsum(s.gpu_seconds for s in shares) == r.gpu_seconds
    assert math.fsum(s.seconds for s in shares) == pytest.approx(total, rel=1e-12)
    for s in shares:
        assert s.seconds > 0 and s.gpu_seconds >= 0
        if r.gpu_seconds:
            assert abs(s.gpu_seconds / r.gpu_seconds - s.seconds / total) <= 1e-12, (s, shares)


@settings(max_examples=300, deadline=None)
@given(records())
def test_the_shares_are_the_utc_months_the_run_touched_in_order(r: UsageRecord) -> None:
    periods = [s.period for s in split_by_month(r)]
    first, last = r.start, r.end - timedelta(microseconds=1)
    expected, (y, m) = [], (first.year, first.month)
    while (y, m) <= (last.year, last.month):
        expected.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    assert periods == expected
