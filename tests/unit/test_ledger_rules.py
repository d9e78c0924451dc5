"""The ledger's rules as a partner, an auditor or the API sees them, every figure written by hand.

Each expectation here is a literal: the exact refusal (``where``, message, what was got and what
is allowed, as the API and the CLI render it), the exact balance, the exact canonical bytes, the
exact edge of an agreement's period. Nothing expected is computed by the code under test. These
tests pin what the mutation run of issue 16 found unpinned in the ledger, usage and
federation-rate rules; the mutants no test can tell apart are listed, each with the reason, in
the run's ``money.equivalent``.

The federation is written out here (not read from a file) so every id, date and rate the
expectations depend on is on this page.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from types import FrameType

import pytest

from accord.domain.errors import InvalidInput, NotFound, Problem
from accord.domain.federation.model import (
    Agreement,
    BackendKind,
    ExchangeRate,
    Federation,
    GpuModel,
    GpuPool,
    Partner,
    Quota,
    QuotaPeriod,
    Sector,
    Site,
)
from accord.domain.jobs.model import Job, JobSpec, JobState, Outcome, Placement
from accord.domain.ledger.entries import (
    Entry,
    EntryKind,
    Leg,
    balances,
    check_balanced,
    correction,
    from_document,
    next_period,
    parse_period,
    quantize,
    seal,
    usage_entries,
)
from accord.domain.ledger.usage import MonthShare, UsageRecord, split_by_month, usage_from_job


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


NOW = utc(2026, 11, 22)   # when entries are recorded

UK_FR = Agreement(
    id="uk-fr", name="UK-France", parties=("uk", "fr"), start=date(2025, 1, 1), end=date(2027, 12, 31),
    quotas=(Quota("uk", "fr", 1000.0, QuotaPeriod.YEAR), Quota("fr", "uk", 50.0, QuotaPeriod.MONTH)),
    themes=("climate",), sectors=(Sector.ACADEMIA,))
UK_KR = Agreement(
    id="uk-kr", name="UK-Korea", parties=("uk", "kr"), start=date(2026, 3, 1), end=date(2026, 8, 31),
    quotas=(Quota("kr", "uk", 200.0, QuotaPeriod.AGREEMENT),), themes=(), sectors=(Sector.ACADEMIA,))

FED = Federation(
    name="rules", reference_unit="H100-hour",
    partners=(Partner("uk", "United Kingdom", "GB"), Partner("fr", "France", "FR"),
              Partner("kr", "South Korea", "KR")),
    institutions=(),
    sites=(Site("bristol", "Bristol", "uk", "GB", 1.1, BackendKind.LOCAL,
                (GpuPool("h100", "H100", 4, 700.0),)),
           Site("paris", "Paris", "fr", "FR", 1.2, BackendKind.LOCAL,
                (GpuPool("a100", "A100", 8, 400.0),))),
    gpu_models=(GpuModel("H100"), GpuModel("A100")),
    exchange_rates=(ExchangeRate("H100", 1.0, date(2024, 1, 1)),
                    ExchangeRate("A100", 0.5, date(2026, 1, 1))),   # no A100 rate before 2026
    agreements=(UK_FR, UK_KR),
)

HOST, REQ = "host:fr/site:paris", "requester:uk/project:proj"


def record(start: datetime, end: datetime, gpu_seconds: float, agreement: str | None = "uk-fr",
           model: str = "A100", rid: str = "paris:1") -> UsageRecord:
    """A uk job run at fr's Paris site (it crosses a border, so it is charged)."""
    return UsageRecord(rid, "j1", "paris", "a100", model, "fr", "uk", agreement, "proj",
                       start, end, 1, gpu_seconds, "completed", 0)


def refused(call: Callable[[], object]) -> tuple[Problem, ...]:
    """The problems an InvalidInput carries, as the API's error body lists them."""
    with pytest.raises(InvalidInput) as info:
        call()
    return info.value.problems


@contextmanager
def local_time_zone(tz: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``tz`` (a POSIX TZ string, so no tz
    database is needed), as on a server configured for another country; restored after."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(autouse=True)
def _fails_rather_than_hangs() -> Iterator[None]:
    """Each test here takes milliseconds: one still running after 10 s of wall time fails
    (a month split that never ends would otherwise hang the run and eat memory)."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("a pure ledger rule did not finish within 10 s")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ─── the federation's look-ups: agreement period, quotas, and what a wrong id is told ───────

@pytest.mark.parametrize(("day", "in_force"), [
    (date(2024, 12, 31), False),   # the day before the start
    (date(2025, 1, 1), True),      # the first day is included
    (date(2026, 6, 15), True),
    (date(2027, 12, 31), True),    # the last day is included
    (date(2028, 1, 1), False),     # the day after the end
])
def test_an_agreement_is_in_force_from_its_first_to_its_last_day_inclusive(day: date, in_force: bool) -> None:
    assert UK_FR.in_force(day) is in_force


@pytest.mark.parametrize(("requester", "host", "expected"), [
    ("uk", "fr", Quota("uk", "fr", 1000.0, QuotaPeriod.YEAR)),
    ("fr", "uk", Quota("fr", "uk", 50.0, QuotaPeriod.MONTH)),
    ("kr", "fr", None),   # fr hosts uk, not kr: the host alone does not grant a quota
    ("uk", "kr", None),   # uk requests at fr, not kr: the requester alone does not either
    ("fr", "fr", None),
])
def test_a_quota_is_granted_for_one_requester_at_one_host(requester: str, host: str,
                                                          expected: Quota | None) -> None:
    assert UK_FR.quota(requester, host) == expected


@pytest.mark.parametrize(("look_up", "message"), [
    (lambda: FED.site("lyon"), "no site 'lyon'; sites are: bristol, paris"),
    (lambda: FED.partner("de"), "no partner 'de'; partners are: uk, fr, kr"),
    (lambda: FED.agreement("uk-de"), "no agreement 'uk-de'; agreements are: uk-fr, uk-kr"),
])
def test_an_unknown_id_is_told_the_valid_ones(look_up: Callable[[], object], message: str) -> None:
    with pytest.raises(NotFound) as info:
        look_up()
    assert str(info.value) == message


# ─── usage records from finished jobs ──────────────────────────────────────────────────────

SPEC = JobSpec(name="train", gpus=2, time_limit_s=7200, partner="uk", project="proj")
STARTED, ENDED = utc(2026, 10, 5, 10), utc(2026, 10, 5, 11)
AT_PARIS = Placement("paris", "a100", "uk-fr")


def job(state: JobState = JobState.COMPLETED, placement: Placement | None = AT_PARIS,
        backend_ref: str | None = "1001", exit_code: int | None = 0, gpus: int = 2) -> Job:
    return Job(id="job-7", spec=SPEC, state=state, submitted_at=utc(2026, 10, 5, 9),
               placement=placement, backend_ref=backend_ref,
               outcome=Outcome(exit_code, STARTED, ENDED, gpus * 3600.0, gpus=gpus, energy_j=5.0e6))


@pytest.mark.parametrize(("state", "exit_code", "gpus", "expected_gpus"), [
    (JobState.COMPLETED, 0, 2, 2),
    (JobState.FAILED, 3, 2, 2),     # the exit code the site reported is kept
    (JobState.COMPLETED, 0, 3, 3),  # the site allocated 3 GPUs for a 2-GPU request: 3 are charged
    (JobState.COMPLETED, 0, 0, 2),  # the site did not say: the request's 2
])
def test_a_finished_job_gives_the_usage_record_of_what_the_site_reported(
    state: JobState, exit_code: int, gpus: int, expected_gpus: int,
) -> None:
    assert usage_from_job(job(state, exit_code=exit_code, gpus=gpus), FED) == UsageRecord(
        id="paris:1001", job_id="job-7", site="paris", pool="a100", gpu_model="A100",
        host_partner="fr", requester_partner="uk", agreement="uk-fr", project="proj",
        start=STARTED, end=ENDED, gpus=expected_gpus, gpu_seconds=gpus * 3600.0,
        state=state.value, exit_code=exit_code, energy_j=5.0e6)


@pytest.mark.parametrize("unfinished", [
    job(placement=None),                  # never placed
    job(backend_ref=None),                # placed, never handed to the site
    job(state=JobState.RUNNING),          # placed and dispatched, still running
    job(state=JobState.DISPATCHED),
])
def test_only_a_finished_dispatched_job_has_usage(unfinished: Job) -> None:
    assert refused(lambda: usage_from_job(unfinished, FED)) == (
        Problem("job", "only a finished, dispatched job has usage", "job-7"),)


def test_months_are_utc_months_whatever_the_servers_time_zone() -> None:
    # 23:30 on 31 October to 00:30 on 1 November UTC; in Paris (UTC+1) it all looks like November.
    r = record(utc(2026, 10, 31, 23, 30), utc(2026, 11, 1, 0, 30), 3600.0)
    for tz in ("UTC0", "CET-1", "EST+5"):
        with local_time_zone(tz):
            assert split_by_month(r) == (MonthShare("2026-10", 1800.0, 1800.0),
                                         MonthShare("2026-11", 1800.0, 1800.0)), tz


def test_a_split_ends_after_the_last_month_the_run_touched() -> None:
    # No empty share for the instant the run ended (and no endless loop of them).
    assert split_by_month(record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 12), 7200.0)) == (
        MonthShare("2026-10", 7200.0, 7200.0),)
    assert split_by_month(record(utc(2026, 10, 31, 22), utc(2026, 11, 1), 7200.0)) == (
        MonthShare("2026-10", 7200.0, 7200.0),)


# ─── usage entries ─────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize(("r", "message"), [
    (record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 11), 3600.0, agreement="uk-de"),
     "no agreement 'uk-de'; agreements are: uk-fr, uk-kr"),
    (record(utc(2025, 12, 31, 23), utc(2026, 1, 1, 1), 7200.0),   # A100 is priced from 2026-01-01
     "no exchange rate for GPU model 'A100' on 2025-12-31"),
    (record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 11), 3600.0, model="V100", rid="paris:9"),
     "no exchange rate for GPU model 'V100' on 2026-10-05"),
])
def test_a_usage_record_that_cannot_be_priced_is_refused_naming_the_record(
    r: UsageRecord, message: str,
) -> None:
    assert refused(lambda: usage_entries(r, FED, NOW)) == (Problem("usage", message, r.id),)


def test_gpu_seconds_are_kept_to_the_microsecond() -> None:
    # A site reporting 3600.0000004 GPU-s: the ledger keeps 6 decimal places, 3600.0.
    [e] = usage_entries(record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 11), 3600.0000004), FED, NOW)
    assert (str(e.gpu_seconds), str(e.units)) == ("3600.0", "0.500000")
    [e] = usage_entries(record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 11), 3600.0000015), FED, NOW)
    assert (str(e.gpu_seconds), str(e.units)) == ("3600.000002", "0.500000")


def test_the_recording_time_is_stamped_in_utc_whatever_the_servers_time_zone() -> None:
    paris = timezone(timedelta(hours=1))
    r = record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 11), 3600.0)
    for tz in ("UTC0", "IST-5:30", "EST+5"):
        with local_time_zone(tz):
            [e] = usage_entries(r, FED, datetime(2026, 11, 22, 1, 0, 0, 250, tzinfo=paris))
            assert e.recorded_at == "2026-11-22T00:00:00.000250Z", tz


# ─── rounding: banker's, to the millionth, whatever the process's decimal context ───────────

@pytest.mark.parametrize("context_rounding", [None, ROUND_HALF_UP, ROUND_UP, ROUND_CEILING, ROUND_DOWN])
def test_units_round_half_to_even_whatever_the_decimal_context(context_rounding: str | None) -> None:
    # 7200.018 GPU-s at 0.5 per GPU-hour = 2.000005 GPU-h x 0.5 = 1.0000025 units: a tie at
    # the 7th place, rounded to the even millionth 1.000002 (half-up would say 1.000003). A
    # library or a thread that changed the decimal context must not change the ledger's figures,
    # or a verifier re-deriving them would disagree with the hash chain.
    r = record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 12), 7200.018)
    with localcontext() as ctx:
        if context_rounding is not None:
            ctx.rounding = context_rounding
        [e] = usage_entries(r, FED, NOW)
        assert (str(e.gpu_seconds), str(e.units)) == ("7200.018", "1.000002")
        assert [str(x) for x in (quantize(Decimal("0.0000005")), quantize(Decimal("0.0000015")),
                                 quantize(Decimal("-2.0000025")), quantize(Decimal("1.23456789")))
                ] == ["0.000000", "0.000002", "-2.000002", "1.234568"]


# ─── corrections ───────────────────────────────────────────────────────────────────────────

def sealed_usage() -> Entry:
    """2 GPU-hours of A100 (1.000000 unit) sealed at position 4 of a chain."""
    [e] = usage_entries(record(utc(2026, 10, 5, 10), utc(2026, 10, 5, 12), 7200.0), FED, NOW)
    sealed, _ = seal(e, 4, "ab" * 32)
    return sealed


REASON = Problem("reason", "a correction needs a reason", None, "some text")
AUTHOR = Problem("author", "a correction needs an author", None, "a name")
KIND = Problem("kind", "usage is not a correction", "usage", "refund, reversal, manual_credit")


@pytest.mark.parametrize(("kind", "units", "reason", "author", "problems"), [
    (EntryKind.REFUND, "0.5", " ", "ops", (REASON,)),
    (EntryKind.REFUND, "0.5", "site fault", "\t", (AUTHOR,)),
    (EntryKind.USAGE, "0.5", "site fault", "ops", (KIND,)),
    (EntryKind.REVERSAL, "1.000001", "site fault", "ops",
     (Problem("units", "exceeds the original entry", "1.000001", "at most 1.000000"),)),
    (EntryKind.USAGE, "0", "", "", (REASON, AUTHOR, Problem("units", "must be positive", "0", "a number > 0"),
                                    KIND)),
    # below half a millionth it would be an entry of 0.000000 on both legs
    (EntryKind.REFUND, "0.0000004", "rounding", "ops",
     (Problem("units", "rounds to zero at the ledger's precision", "0.0000004", "at least 0.000001"),)),
])
def test_a_bad_correction_is_refused_with_every_fault_located(
    kind: EntryKind, units: str, reason: str, author: str, problems: tuple[Problem, ...],
) -> None:
    original = sealed_usage()
    assert refused(lambda: correction(original, kind, Decimal(units), reason, author, "2026-11", NOW,
                                      "c1")) == problems


def test_a_correction_refusal_reads_as_the_api_shows_it() -> None:
    with pytest.raises(InvalidInput) as info:
        correction(sealed_usage(), EntryKind.USAGE, Decimal("0.5"), "", "", "2026-11", NOW, "c1")
    assert str(info.value) == (
        "reason: a correction needs a reason (allowed some text); "
        "author: a correction needs an author (allowed a name); "
        "kind: usage is not a correction (got usage, allowed refund, reversal, manual_credit)")


@pytest.mark.parametrize(("kind", "units", "host_leg"), [
    (EntryKind.REFUND, "0.25", "-0.250000"),
    (EntryKind.REVERSAL, "1", "-1.000000"),
    (EntryKind.MANUAL_CREDIT, "3", "3.000000"),   # a credit to the host may exceed the original
])
def test_a_correction_is_a_new_unplaced_entry_referencing_the_original(
    kind: EntryKind, units: str, host_leg: str,
) -> None:
    original = sealed_usage()
    assert (original.seq, original.prev_hash) == (4, "ab" * 32)
    fix = correction(original, kind, Decimal(units), "site fault", "ops", "2026-11", NOW, "fix:1")
    # The ledger gives it its place in the chain when it appends it, not before.
    assert (fix.seq, fix.prev_hash, fix.hash) == (-1, "", "")
    assert (fix.id, fix.kind, fix.references, fix.period, fix.reason, fix.author, fix.memo) == (
        "fix:1", kind, "usage:paris:1", "2026-11", "site fault", "ops", ())
    assert str(fix.units) == host_leg
    assert [(leg.account, str(leg.amount)) for leg in fix.legs] == [
        (HOST, host_leg), (REQ, host_leg[1:] if host_leg.startswith("-") else "-" + host_leg)]


# ─── canonical form of an entry without usage facts, and malformed documents ───────────────

CREDIT = Entry("manual_credit:1", EntryKind.MANUAL_CREDIT, "uk-fr", "2026-10", "uk", "fr", "paris", "proj",
               Decimal("2.000000"), (Leg(HOST, Decimal("2.000000")), Leg(REQ, Decimal("-2.000000"))),
               reason="goodwill", author="ops", recorded_at="2026-11-01T00:00:00.000000Z")
CREDIT_BYTES = (
    b'{"agreement":"uk-fr","author":"ops","gpu_model":null,"gpu_seconds":null,"host":"fr",'
    b'"id":"manual_credit:1","job_id":null,"kind":"manual_credit",'
    b'"legs":[["host:fr/site:paris","2.000000"],["requester:uk/project:proj","-2.000000"]],'
    b'"memo":{},"period":"2026-10",'
    b'"prev_hash":"abababababababababababababababababababababababababababababababab",'
    b'"project":"proj","rate":null,"rate_valid_from":null,"reason":"goodwill",'
    b'"recorded_at":"2026-11-01T00:00:00.000000Z","references":null,"requester":"uk","seq":3,'
    b'"site":"paris","units":"2.000000","usage_id":null,"v":1}'
)


def test_an_entry_with_no_gpu_time_or_rate_encodes_them_as_null_and_reads_back() -> None:
    sealed, body = seal(CREDIT, 3, "ab" * 32)
    assert body == CREDIT_BYTES
    back = from_document(json.loads(CREDIT_BYTES), sealed.hash)
    assert back == sealed
    assert (back.gpu_seconds, back.rate, back.job_id) == (None, None, None)


def test_resealing_an_entry_gives_the_same_bytes_and_hash() -> None:
    first, body = seal(CREDIT, 3, "ab" * 32)
    again, body_again = seal(first, 3, "ab" * 32)   # an entry read back already carries its hash
    assert (body_again, again.hash) == (body, first.hash)
    other, _ = seal(replace(first, hash="ff" * 32), 3, "ab" * 32)
    assert other.hash == first.hash


@pytest.mark.parametrize(("document", "message"), [
    ({}, "malformed ledger entry: KeyError('id')"),
    ({**json.loads(CREDIT_BYTES), "kind": "gift"},
     "malformed ledger entry: ValueError(\"'gift' is not a valid EntryKind\")"),
    ({**json.loads(CREDIT_BYTES), "units": "lots"},
     "malformed ledger entry: InvalidOperation([<class 'decimal.ConversionSyntax'>])"),
])
def test_a_malformed_stored_entry_is_refused_as_an_entry_problem(document: dict[str, object],
                                                                 message: str) -> None:
    assert refused(lambda: from_document(document, "00" * 32)) == (Problem("entry", message),)


# ─── balanced legs ─────────────────────────────────────────────────────────────────────────

def entry_with(*legs: tuple[str, str]) -> Entry:
    return Entry("x", EntryKind.MANUAL_CREDIT, "uk-fr", "2026-10", "uk", "fr", "paris", "proj",
                 Decimal("1"), tuple(Leg(a, Decimal(x)) for a, x in legs))


@pytest.mark.parametrize(("legs", "got"), [
    (((HOST, "1.000000"), (REQ, "-0.999999")), "0.000001"),    # one millionth short
    (((HOST, "0.999999"), (REQ, "-1.000000")), "-0.000001"),   # one millionth over
    (((HOST, "1"), (REQ, "1")), "2"),                          # both credited
    (((HOST, "1.000000"),), "1.000000"),                       # one leg only
    (((HOST, "0"),), "0"),                                     # one leg of nothing: still refused
    ((), "0"),                                                 # no legs
])
def test_an_unbalanced_entry_is_refused_showing_what_its_legs_sum_to(
    legs: tuple[tuple[str, str], ...], got: str,
) -> None:
    assert refused(lambda: check_balanced(entry_with(*legs))) == (
        Problem("legs", "an entry's legs must sum to zero", got, "0"),)


# ─── balances ──────────────────────────────────────────────────────────────────────────────

def posted(eid: str, requester: str, host: str, site: str, project: str, units: str) -> Entry:
    amount = Decimal(units)
    return Entry(eid, EntryKind.USAGE, "uk-fr", "2026-10", requester, host, site, project, amount,
                 (Leg(f"host:{host}/site:{site}", amount),
                  Leg(f"requester:{requester}/project:{project}", -amount)))


def test_balances_by_account_direction_site_project_and_partner() -> None:
    entries = [
        posted("u1", "uk", "fr", "paris", "proj", "3.000000"),
        posted("u2", "uk", "fr", "paris", "other", "1.500000"),
        posted("u3", "fr", "uk", "bristol", "climate", "2.000000"),
        posted("r1", "uk", "fr", "paris", "proj", "-1.000000"),   # a refund of 1 unit of u1
    ]
    b = balances(entries)
    assert b.by_account == {
        "host:fr/site:paris": Decimal("3.500000"),            # 3 + 1.5 - 1
        "requester:uk/project:proj": Decimal("-2.000000"),    # -3 + 1
        "requester:uk/project:other": Decimal("-1.500000"),
        "host:uk/site:bristol": Decimal("2.000000"),
        "requester:fr/project:climate": Decimal("-2.000000"),
    }
    assert b.by_direction == {"uk->fr": Decimal("3.500000"), "fr->uk": Decimal("2.000000")}
    assert b.by_site == {"paris": Decimal("3.500000"), "bristol": Decimal("2.000000")}
    assert b.by_project == {"uk/proj": Decimal("2.000000"), "uk/other": Decimal("1.500000"),
                            "fr/climate": Decimal("2.000000")}
    assert b.net_by_partner == {"fr": Decimal("1.500000"), "uk": Decimal("-1.500000")}   # 3.5 - 2
    assert (str(b.total), b.entries) == ("0.000000", 4)


def test_the_balance_total_is_the_sum_of_the_legs_so_an_unbalanced_entry_shows() -> None:
    # A row altered behind Accord's back (one millionth missing from the requester's leg).
    b = balances([posted("u1", "uk", "fr", "paris", "proj", "1.000000"),
                  entry_with((HOST, "1.000000"), (REQ, "-0.999999"))])
    assert (b.total, b.entries) == (Decimal("0.000001"), 2)
    assert balances([]).entries == 0


# ─── periods ───────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize(("period", "after"), [
    ("2026-01", "2026-02"),
    ("2026-09", "2026-10"),
    ("2026-11", "2026-12"),
    ("2026-12", "2027-01"),
    ("9998-12", "9999-01"),
])
def test_the_month_after(period: str, after: str) -> None:
    assert next_period(period) == after


@pytest.mark.parametrize("period", ["1000-01", "2026-10", "9998-12"])
def test_a_month_is_accepted(period: str) -> None:
    assert parse_period(period) == period


ALLOWED_PERIODS = "YYYY-MM from 1000-01 to 9998-12, e.g. 2026-10"


@pytest.mark.parametrize(("text", "got"), [
    ("9999-01", "9999-01"),     # its next month would not print as YYYY-MM
    ("9999-12", "9999-12"),
    ("0999-12", "0999-12"),
    ("2026-13", "2026-13"),
    ("2026-1", "2026-1"),
    ("٢٠٢٦-١٠", "٢٠٢٦-١٠"),      # Arabic-Indic digits
    ("2026-10-01", "2026-10-01"),
    # 48 characters: the first 40 are shown, up to and including the comma
    ("the month when the cluster was upgraded, October", "the month when the cluster was upgraded,"),
])
def test_a_non_month_is_refused_showing_at_most_40_characters_of_it(text: str, got: str) -> None:
    assert refused(lambda: parse_period(text)) == (Problem("period", "is not a month", got, ALLOWED_PERIODS),)

