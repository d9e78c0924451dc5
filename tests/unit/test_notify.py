"""The pure rules of notifications: addresses and URLs, the webhook signature, back-off,
which job transitions make which notice (and for whom), allocation marks, and who gets
what by which channel."""

from __future__ import annotations

import hmac
import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.domain.notify.rules import (
    MAX_ATTEMPTS,
    Channel,
    NoticeKind,
    Preferences,
    allocation_notices,
    backoff_s,
    check_email,
    check_webhook_url,
    end_marks,
    gives_up,
    job_notice,
    last_day,
    parse_kinds,
    sign,
    use_marks,
    verify,
)


@pytest.mark.parametrize("good", ["ada@example.org", "a.b+c@sub.example.co.uk", "x_y@d-1.io"])
def test_well_formed_addresses_pass(good: str) -> None:
    assert check_email(good) == []


@pytest.mark.parametrize("bad", ["", "ada", "ada@", "@example.org", "ada@localhost", "a b@example.org",
                                 "ada@@example.org", "ada@-bad.org", "ada@example.org\nBcc: x@y.org"])
def test_malformed_addresses_are_named(bad: str) -> None:
    [p] = check_email(bad)
    assert (p.where, p.got) == ("email", bad) and p.allowed


@pytest.mark.parametrize("good", ["https://hooks.example.org/a?b=c", "http://127.0.0.1:8080/x"])
def test_webhook_urls_pass(good: str) -> None:
    assert check_webhook_url(good) == []


@pytest.mark.parametrize("bad", ["ftp://example.org/", "https://", "example.org/hook", "file:///etc/passwd",
                                 "https://u:p@example.org/", "http://example.org:99999/",
                                 "https://exa mple.org/", "https://example.org/" + "x" * 2000])
def test_malformed_webhook_urls_are_named(bad: str) -> None:
    [p] = check_webhook_url(bad)
    assert (p.where, p.got) == ("webhook_url", bad) and "http" in (p.allowed or "")


def test_unknown_kinds_are_named_with_the_known_ones() -> None:
    kinds, [p] = parse_kinds(["job.ended", "nope"])
    assert kinds == {NoticeKind.JOB_ENDED} and p.got == "nope" and "job.failed" in (p.allowed or "")


def test_signature_known_answer() -> None:
    # HMAC-SHA256(key="secret", "1700000000." + body), as any receiver computes it
    assert sign("secret", "1700000000", b'{"a":1}') == (
        "sha256=" + hmac.new(b"secret", b'1700000000.{"a":1}', "sha256").hexdigest())


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40), st.integers(0, 2**40))
def test_a_signature_fails_after_any_change(body: bytes, secret: str, stamp: int) -> None:
    sig = sign(secret, str(stamp), body)
    assert verify(secret, str(stamp), body, sig)
    assert not verify(secret, str(stamp + 1), body, sig)
    assert not verify(secret, str(stamp), body + b"x", sig)


def test_back_off_doubles_to_a_cap_then_gives_up() -> None:
    waits = [backoff_s(n) for n in range(1, 14)]
    assert waits[:4] == [5.0, 10.0, 20.0, 40.0] and max(waits) == 3600.0
    assert all(a <= b for a, b in itertools.pairwise(waits))
    assert not gives_up(MAX_ATTEMPTS - 1) and gives_up(MAX_ATTEMPTS)


def test_job_transitions_and_their_notices() -> None:
    assert job_notice("j1", 4, "running", "r", "ada") is None
    done = job_notice("j1", 5, "completed", "exit 0", "ada")
    assert done is not None
    assert (done.key, done.kind, done.recipients) == ("job:j1:5", NoticeKind.JOB_ENDED, ("ada",))
    for state in ("failed", "timed_out", "cancelled"):
        n = job_notice("j1", 5, state, "why", "ada")
        assert n is not None and n.kind is NoticeKind.JOB_FAILED
    held = job_notice("j1", 2, "held", "over its allocation", "ada", {"kind": "allocation"})
    assert held is not None and held.kind is NoticeKind.JOB_HELD and held.operators_of is None
    review = job_notice("j1", 2, "held", "large run", "ada",
                        {"kind": "compliance", "site": "paris", "rule": "r"})
    assert review is not None and review.kind is NoticeKind.COMPLIANCE_NEEDED
    assert review.operators_of == "paris"


def test_allocation_marks() -> None:
    assert use_marks(79.9, 100) == [] and use_marks(80, 100) == [80]
    assert use_marks(100, 100) == [80, 95, 100]
    assert use_marks(5, 0) == []
    assert last_day("2026-02") == date(2026, 2, 28) and last_day("2026-12") == date(2026, 12, 31)
    assert end_marks(date(2026, 11, 1), "2026-11") == [30]
    assert end_marks(date(2026, 11, 24), "2026-11") == [30, 7]
    assert end_marks(date(2026, 10, 1), "2026-11") == [] and end_marks(date(2026, 12, 1), "2026-11") == []
    alloc = {"id": "a1", "project": "p", "units": 100.0, "end": "2026-11", "recipients": ["ada"]}
    keys = [n.key for n in allocation_notices(alloc, 96, date(2026, 11, 24))]
    assert keys == ["alloc:a1:use:80", "alloc:a1:use:95", "alloc:a1:ends:30", "alloc:a1:ends:7"]


def test_channels_follow_preferences() -> None:
    default = Preferences("ada")
    assert default.channels(NoticeKind.JOB_ENDED, "ada@example.org") == [(Channel.EMAIL, "ada@example.org")]
    assert default.channels(NoticeKind.JOB_ENDED, None) == []
    both = Preferences("ada", "x@example.org", True, "https://h/x", "s", frozenset({NoticeKind.JOB_FAILED}))
    assert both.channels(NoticeKind.JOB_ENDED, "ada@example.org") == []
    assert both.channels(NoticeKind.JOB_FAILED, "ada@example.org") == [
        (Channel.EMAIL, "x@example.org"), (Channel.WEBHOOK, "https://h/x")]
    quiet = Preferences("ada", email_on=False)
    assert quiet.channels(NoticeKind.JOB_ENDED, "ada@example.org") == []
