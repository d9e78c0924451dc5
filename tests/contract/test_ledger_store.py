"""The ledger over a real store (SQLite and PostgreSQL): append-only, idempotent,
one linear chain under concurrent writers, and every tampering found and located."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from accord.adapters.clock import FakeClock
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.federation.model import Federation
from accord.domain.ledger import signing
from accord.domain.ledger.statement import verify_statement
from accord.domain.ledger.usage import UsageRecord
from accord.service.ledger import LedgerService
from tests.contract.ledger_tamper import TAMPER as ALL_TAMPERING
from tests.contract.ledger_tamper import tamper

START = datetime(2026, 10, 3, 8, tzinfo=UTC)


def usage(i: int, hours: float = 2.0, gpus: int = 2, requester: str = "uk") -> UsageRecord:
    start = START + timedelta(hours=i)
    host, site, pool, model = ("fr", "paris", "a100", "A100") if requester == "uk" else \
        ("uk", "bristol", "h100", "H100")
    return UsageRecord(f"{site}:{1000 + i}", f"j{i}", site, pool, model, host, requester,
                       "uk-fr", "proj", start, start + timedelta(hours=hours), gpus,
                       gpus * hours * 3600, "completed", 0)


@pytest.fixture
def svc(db_url: str, small_federation: Federation) -> Iterator[LedgerService]:
    store = SqlStore(db_url)
    key = signing.generate_private_key()
    yield LedgerService(small_federation, SqlLedger(store), FakeClock(START + timedelta(days=40)),
                        key, "test-log")
    store.close()


def post(svc: LedgerService, *records: UsageRecord) -> None:
    assert isinstance(svc.ledger, SqlLedger)
    store = svc.ledger.store
    for r in records:
        store.add_usage(r)
    svc.post_pending()


def test_posting_is_idempotent_and_balanced(svc: LedgerService) -> None:
    post(svc, usage(0), usage(1, requester="fr"))
    post(svc, usage(0))  # the same record read again
    svc.post_pending()
    entries = svc.ledger.entries()
    assert [e.seq for e in entries] == [0, 1]
    b = svc.balances()
    assert Decimal(b["total"]) == 0
    assert b["by_direction"] == {"fr->uk": "4.000000", "uk->fr": "2.000000"}
    assert b["net_by_partner"] == {"fr": "-2.000000", "uk": "2.000000"}
    assert svc.verify().ok


def test_concurrent_writers_build_one_chain(svc: LedgerService) -> None:
    assert isinstance(svc.ledger, SqlLedger)
    store = svc.ledger.store
    records = [usage(i, hours=1) for i in range(60)]
    for r in records:
        store.add_usage(r)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            svc.post_pending(limit=20)
            svc.post_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    report = svc.verify()
    assert report.ok, report
    assert report.entries == 60
    assert [e.seq for e in svc.ledger.entries()] == list(range(60))


def test_corrections_after_close_go_to_the_next_period(svc: LedgerService) -> None:
    post(svc, usage(0))
    first = svc.ledger.entries()[0]
    svc.close_period("2026-10")
    fix = svc.correct(first.id, "refund", "1", "node fault on paris-n3", "site-ops")
    assert (fix.period, fix.references, str(fix.units)) == ("2026-11", first.id, "-1.000000")
    with pytest.raises(Exception, match="already closed"):
        svc.close_period("2026-10")
    assert svc.verify().ok


def test_statement_verifies_elsewhere_with_only_the_public_key(svc: LedgerService) -> None:
    post(svc, usage(0), usage(1), usage(2, requester="fr"))
    svc.close_period("2026-10")
    doc = json.loads(json.dumps(svc.statement("uk-fr", "2026-10")))  # as a file would carry it
    assert verify_statement(doc, svc.public_key) == []
    assert doc["totals"]["entries"] == 3
    other_key = signing.public_key(signing.generate_private_key())
    assert "another key" in " ".join(verify_statement(doc, other_key))
    assert '"units":"' in doc["entries"][1]["body"]
    doc["entries"][1]["body"] = doc["entries"][1]["body"].replace('"units":"', '"units":"9')
    assert any("entry 1" in e for e in verify_statement(doc, svc.public_key))


def test_a_later_statement_proves_it_extends_the_earlier(svc: LedgerService) -> None:
    post(svc, usage(0))
    svc.close_period("2026-10")
    october = svc.statement("uk-fr", "2026-10")
    post(svc, usage(24 * 30))  # a job in November
    svc.close_period("2026-11", early=True)   # the clock is in November: an early close
    november = svc.statement("uk-fr", "2026-11")
    assert november["previous"]["signed_head"] == october["tree_head"]
    assert verify_statement(november, svc.public_key, previous=october) == []


TAMPER = [t for t in ALL_TAMPERING if not t.startswith("stray")]   # the edits within the chain


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(TAMPER), st.integers(0, 4))
def test_any_tampering_behind_accords_back_is_found(
    tmp_path_factory: pytest.TempPathFactory, small_federation: Federation, how: str, where: int
) -> None:
    db = tmp_path_factory.mktemp("tamper") / "l.db"
    store = SqlStore(f"sqlite:///{db}")
    svc = LedgerService(small_federation, SqlLedger(store), FakeClock(START), signing.generate_private_key(),
                        "t")
    post(svc, *(usage(i) for i in range(5)))
    assert svc.verify().ok
    with store.engine.begin() as conn:
        tamper(conn, how, where, 5)
    report = svc.verify()
    store.close()
    assert not report.ok, (how, where)
    if how != "edit_head":  # a moved head is found at the chain's end
        assert report.first_bad_seq is not None
        assert report.first_bad_seq <= where + 1, report


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_any_edit_of_a_statements_bytes_is_detected(signed_statement: tuple[str, bytes],
                                                   data: st.DataObject) -> None:
    text, public_key = signed_statement
    pos = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.characters(min_codepoint=32, max_codepoint=126))
    if text[pos] == new:
        return
    edited = text[:pos] + new + text[pos + 1:]
    try:
        doc = json.loads(edited)
    except ValueError:
        return  # not even JSON any more: the verifier refuses to read it (tested in the CLI)
    if not isinstance(doc, dict) or doc == json.loads(text):
        return  # e.g. whitespace between tokens: the same document
    assert verify_statement(doc, public_key), f"undetected edit at byte {pos}: {new!r}"


@pytest.fixture(scope="module")
def signed_statement(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    from accord.adapters.federation_file import parse_federation_text
    from tests.conftest import SMALL_FEDERATION

    fed = parse_federation_text(SMALL_FEDERATION)
    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('stmt') / 's.db'}")
    svc = LedgerService(fed, SqlLedger(store), FakeClock(START + timedelta(days=40)),
                        signing.generate_private_key(), "t")
    post(svc, usage(0), usage(1, requester="fr"))
    svc.close_period("2026-10")
    text = json.dumps(svc.statement("uk-fr", "2026-10"), indent=1)
    store.close()
    return text, svc.public_key


def test_quota_used_and_balances_feed_placement(svc: LedgerService) -> None:
    post(svc, usage(0), usage(1), usage(2, requester="fr"))  # October 2026
    assert svc.quota_used("uk-fr", "uk", "fr", "2026-10") == Decimal("4.000000")
    assert svc.quota_used("uk-fr", "uk", "fr", "2026") == Decimal("4.000000")
    assert svc.quota_used("uk-fr", "uk", "fr", "2026-11") == 0
    assert svc.quota_used("uk-fr", "uk", "fr", "2025-01-01/2027-12-31") == Decimal("4.000000")
    assert svc.net_balance("uk-fr") == {"fr": Decimal("0.000000"), "uk": Decimal("0.000000")}
    post(svc, usage(3))  # one more uk->fr job: 2 units, picked up incrementally
    assert svc.quota_used("uk-fr", "uk", "fr", "2026") == Decimal("6.000000")
    assert svc.net_balance("uk-fr")["fr"] == Decimal("2.000000")


def test_entries_posted_while_verify_reads_are_not_a_false_alarm(svc: LedgerService) -> None:
    """verify reads the head, then the table: entries posted between the two (a live
    server posts every half second) must not look like entries appended behind Accord's
    back; entries that really were (the head never moved over them) still do."""
    post(svc, *(usage(i) for i in range(5)))
    before = svc.ledger.head()
    post(svc, *(usage(i) for i in range(5, 7)))
    real_head = svc.ledger.head
    calls = iter([before])
    svc.ledger.head = lambda: next(calls, None) or real_head()  # type: ignore[method-assign]
    report = svc.verify()
    svc.ledger.head = real_head  # type: ignore[method-assign]
    assert report.ok and report.entries == 7, report
    assert isinstance(svc.ledger, SqlLedger)
    with svc.ledger.store.engine.begin() as conn:   # now the head really is behind the table
        conn.execute(text("UPDATE ledger_head SET seq = :s, hash = :h"), {"s": before[0] - 1, "h": before[1]})
    report = svc.verify()
    assert not report.ok and "appended behind Accord's back" in report.problem
