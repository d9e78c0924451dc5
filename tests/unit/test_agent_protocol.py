"""The site-agent protocol without a hub: its parsers name every bad field with the value and
what is allowed; host-signed usage round-trips, matches a known-answer vector and refuses every
tamper; RFC 9421 request signatures verify and refuse every change, every bad time and every
unknown key (``docs/design/site-agent.md``)."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters import request_signing as rs
from accord.domain.agent import attest
from accord.domain.agent.protocol import (
    LOG_CHUNK_BYTES,
    MAX_REPORTS,
    Ack,
    Report,
    SignedUsage,
    Stream,
    parse_acks,
    parse_held,
    parse_log_chunk,
    parse_reports,
    report_doc,
)
from accord.domain.errors import Forbidden, InvalidInput, Unauthenticated
from accord.domain.jobs.site import RemoteState

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def problems(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, tuple[str, str | None, str | None]]:
    """Each problem by its field: (message, got, allowed)."""
    return {p.where: (p.message, p.got, p.allowed) for p in exc.value.problems}


def public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


# ------------------------------------------------------------------ acks
def test_acks_parse_and_name_every_bad_field() -> None:
    doc = {"acks": [{"order": "j1.1/dispatch", "local_id": "77"}, {"order": "j2.1/cancel"}]}
    assert parse_acks(doc) == [Ack("j1.1/dispatch", "77"), Ack("j2.1/cancel", "")]
    with pytest.raises(InvalidInput) as exc:
        parse_acks({"acks": [{"order": ""}, "x", {"order": 5, "local_id": 7}, {"order": "a" * 241}]})
    got = problems(exc)
    assert got["acks[0].order"][0] == "must be a non-empty string"
    assert got["acks[1]"] == ("must be an object", "'x'", '{"order": ID, "local_id": TEXT}')
    assert got["acks[2].order"][1] == "5" and got["acks[2].local_id"] == (
        "must be a string",
        "7",
        "at most 120 characters",
    )
    assert got["acks[3].order"][2] == "at most 240 characters"


@pytest.mark.parametrize(
    ("doc", "where", "allowed"),
    [
        ([], "body", "a JSON object"),
        ("text", "body", "a JSON object"),
        (None, "body", "a JSON object"),
        ({}, "acks", f"a JSON array of at most {MAX_REPORTS} items"),
        ({"acks": {"order": "x"}}, "acks", f"a JSON array of at most {MAX_REPORTS} items"),
        ({"acks": [{"order": "x"}] * (MAX_REPORTS + 1)}, "acks", f"at most {MAX_REPORTS}"),
    ],
)
def test_acks_refuse_a_body_of_the_wrong_shape(doc: object, where: str, allowed: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_acks(doc)
    assert problems(exc)[where][2] == allowed


# ------------------------------------------------------------------ reports
def a_report(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"ref": "j1.1", "state": "running", "started_at": "2026-11-02T09:00:00Z"}
    return {**doc, **kw}


def test_reports_parse() -> None:
    done = a_report(state="completed", ended_at="2026-11-02T10:00:00+00:00", exit_code=0, gpus=2,
                    gpu_seconds=7200, energy_j=1.5, local_id="42", reason="done")
    [r] = parse_reports({"reports": [done]})
    end = T0 + timedelta(hours=1)
    assert r == Report("j1.1", RemoteState.COMPLETED, "42", T0, end, 0, 2, 7200.0, 1.5, "done")


@pytest.mark.parametrize(
    ("field", "value", "message", "allowed"),
    [
        (
            "state",
            "lost",
            "is not a state an agent reports",
            "pending, running, completed, failed, cancelled, timeout, node_fail",
        ),
        ("state", "weird", "is not a state an agent reports", None),
        ("ref", "", "must be a non-empty string", "at most 120 characters"),
        ("ref", "r" * 121, "must be a non-empty string", "at most 120 characters"),
        ("ref", "a\x00b", "must be a non-empty string", "at most 120 characters"),
        ("local_id", 12, "must be a string", "at most 120 characters"),
        ("reason", "r" * 501, "must be a string", "at most 500 characters"),
        ("started_at", "yesterday", "must be an ISO 8601 time with a zone", "e.g. 2026-12-06T10:00:00Z"),
        ("started_at", "2026-11-02T09:00:00", "must be an ISO 8601 time with a zone", None),
        ("started_at", 1700000000, "must be an ISO 8601 time with a zone", None),
        ("ended_at", "2026-11-02T08:00:00Z", "is before started_at", "a time at or after started_at"),
        ("exit_code", "0", "must be an integer", "a 32-bit integer, or null"),
        ("exit_code", True, "must be an integer", None),
        ("exit_code", 2**31, "must be an integer", None),
        ("gpus", -1, "must be a finite number from 0", "an integer from 0 to 1e+06"),
        ("gpus", 1.5, "must be a finite number from 0", "an integer from 0 to 1e+06"),
        ("gpus", True, "must be a finite number from 0", None),
        ("gpu_seconds", "10", "must be a finite number from 0", "a number from 0 to 1e+15"),
        ("gpu_seconds", -0.5, "must be a finite number from 0", None),
        ("gpu_seconds", float("inf"), "must be a finite number from 0", None),
        ("energy_j", float("nan"), "must be a finite number from 0", None),
        ("usage", "signed", "must be an object", '{"body": TEXT, "key_id": TEXT, "signature": BASE64}'),
    ],
)
def test_reports_name_each_bad_field(field: str, value: object, message: str, allowed: str | None) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_reports({"reports": [a_report(**{field: value})]})
    got = problems(exc)
    assert got[f"reports[0].{field}"][0] == message, got
    assert got[f"reports[0].{field}"][1] is not None or value == ""
    if allowed is not None:
        assert got[f"reports[0].{field}"][2] == allowed


def test_reports_name_every_fault_at_once_and_each_place() -> None:
    usage = {"body": 1, "key_id": "", "signature": "s" * 201}
    with pytest.raises(InvalidInput) as exc:
        parse_reports({"reports": [a_report(), 7, a_report(state="x", gpus="2"), a_report(usage=usage)]})
    assert set(problems(exc)) == {"reports[1]", "reports[2].state", "reports[2].gpus",
                                  *(f"reports[3].usage.{k}" for k in ("body", "key_id", "signature"))}
    with pytest.raises(InvalidInput) as exc:
        parse_reports({"reports": [a_report(state="x")] * 60})
    assert len(exc.value.problems) == 50  # bounded, however bad the body


def test_too_many_reports_are_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_reports({"reports": [a_report()] * (MAX_REPORTS + 1)})
    too_many = ("has too many items", f"'{MAX_REPORTS + 1} items'", f"at most {MAX_REPORTS}")
    assert problems(exc)["reports"] == too_many


times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


@st.composite
def reports(draw: st.DrawFn) -> Report:
    started = draw(st.none() | times)
    runs = st.timedeltas(timedelta(0), timedelta(days=9))
    ended = None if started is None else draw(st.none() | st.builds(lambda s: started + s, runs))
    kid = st.text("0123456789abcdef", min_size=16, max_size=16)
    usage = draw(st.none() | st.builds(SignedUsage, texts.filter(bool), kid, texts.filter(bool)))
    state = draw(st.sampled_from([s for s in RemoteState if s is not RemoteState.LOST]))
    return Report(ref=draw(texts.filter(bool)), state=state, local_id=draw(texts), started_at=started,
                  ended_at=ended, exit_code=draw(st.none() | st.integers(-(2**31), 2**31 - 1)),
                  gpus=draw(st.integers(0, 1_000_000)), gpu_seconds=draw(st.floats(0, 1e15)),
                  energy_j=draw(st.none() | st.floats(0, 1e15)), reason=draw(texts), usage=usage)


@settings(max_examples=200, deadline=None)
@given(st.lists(reports(), max_size=5))
def test_any_report_round_trips_through_json(rs_: list[Report]) -> None:
    doc = json.loads(json.dumps({"reports": [report_doc(r) for r in rs_]}))
    assert parse_reports(doc) == rs_


# ------------------------------------------------------------------ heartbeats
def test_heartbeat_loads_and_held() -> None:
    loads = {"h100": {"free_gpus": 3, "queued_gpus": 0}}
    assert parse_held({"loads": loads}) == (loads, None)
    assert parse_held({"loads": loads, "held": ["j1.1", "j2.1"]}) == (loads, ["j1.1", "j2.1"])
    assert parse_held({"held": []}) == ({}, [])


@pytest.mark.parametrize(
    ("doc", "where", "got", "allowed"),
    [
        ({"loads": []}, "loads", "[]", '{"POOL": {"free_gpus": N, "queued_gpus": N}}'),
        ({"loads": {f"p{i}": {} for i in range(101)}}, "loads", None, None),
        ({"loads": {"h100": 3}}, "loads.h100", "3", '{"free_gpus": N, "queued_gpus": N}'),
        ({"loads": {"h100": {"free_gpus": 1}}}, "loads.h100.queued_gpus", None, "a number"),
        (
            {"loads": {"h100": {"free_gpus": -1, "queued_gpus": 0}}},
            "loads.h100.free_gpus",
            "-1",
            "an integer from 0 to 1e+07",
        ),
        ({"loads": {"h100": {"free_gpus": "1", "queued_gpus": 0}}}, "loads.h100.free_gpus", "'1'", None),
        ({"held": "j1.1"}, "held", "'j1.1'", "a JSON array of at most 10000 items"),
        ({"held": ["ok", 5]}, "held[1]", "5", "a string of 1 to 120 characters"),
        ({"held": [""]}, "held[0]", "''", "a string of 1 to 120 characters"),
        ({"held": ["x" * 121]}, "held[0]", None, "a string of 1 to 120 characters"),
        ({"held": ["x"] * 10_001}, "held", "'10001 items'", "at most 10000"),
        ([1], "body", "[1]", "a JSON object"),
    ],
)
def test_heartbeat_names_each_bad_field(
    doc: object, where: str, got: str | None, allowed: str | None
) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_held(doc)
    found = problems(exc)
    assert where in found, found
    if got is not None:
        assert found[where][1] == got
    if allowed is not None:
        assert found[where][2] == allowed


# ------------------------------------------------------------------ log chunks
def test_log_chunk_parses() -> None:
    header = {"ref": "j1.1", "stream": "stderr", "offset": 10, "truncated": True}
    chunk = parse_log_chunk(header, b"abc")
    assert (chunk.ref, chunk.stream, chunk.offset, chunk.data, chunk.truncated) == (
        "j1.1",
        Stream.STDERR,
        10,
        b"abc",
        True,
    )
    assert parse_log_chunk({"ref": "j", "stream": "stdout", "offset": 0}, b"x" * LOG_CHUNK_BYTES).offset == 0


@pytest.mark.parametrize(
    ("header", "data", "where", "allowed"),
    [
        ({"stream": "stdin"}, b"", "stream", "stdout, stderr"),
        ({"offset": -1}, b"", "chunk.offset", "an integer from 0 to 9.0072e+15"),
        ({"offset": 1.5}, b"", "chunk.offset", None),
        ({"offset": None}, b"", "chunk.offset", "a number"),
        ({"ref": ""}, b"", "chunk.ref", "at most 120 characters"),
        ({"truncated": "yes"}, b"", "truncated", "true, false"),
        ({}, b"x" * (LOG_CHUNK_BYTES + 1), "body", f"at most {LOG_CHUNK_BYTES} bytes a chunk"),
    ],
)
def test_log_chunk_names_each_bad_field(
    header: dict[str, Any], data: bytes, where: str, allowed: str | None
) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_log_chunk({"ref": "j1.1", "stream": "stdout", "offset": 0, **header}, data)
    found = problems(exc)
    assert where in found, found
    if allowed is not None:
        assert found[where][2] == allowed
    if where == "body":
        assert found["body"][:2] == ("is too large", f"'{LOG_CHUNK_BYTES + 1} bytes'")


# ------------------------------------------------------------------ host-signed usage
USAGE = attest.Usage(
    "isambard",
    "j0001.1",
    "j0001",
    "4242",
    "isambard-ai",
    "completed",
    T0,
    T0 + timedelta(minutes=90),
    2,
    10800.0,
    0,
    None,
)
GOLDEN_BODY = (
    '{"cluster":"isambard-ai","end":"2026-11-02T10:30:00.000000Z","energy_j":null,"exit_code":0,'
    '"gpu_seconds":10800.0,"gpus":2,"job_id":"j0001","local_id":"4242","ref":"j0001.1","site":"isambard",'
    '"start":"2026-11-02T09:00:00.000000Z","state":"completed","v":1}'
)
GOLDEN_SIGNATURE = (
    "7db72c9375d788c7e63e087a716948af8cdcfc5965dc76241e5a84c9e454fddf"
    "82e7f971daf8bc1052ecd191c780cb1626e8f1916fd38fcdc12ff1210f57ac07"
)


def test_usage_known_answer() -> None:
    signed = attest.sign(USAGE, SEED)
    assert public(SEED).hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert signed.body == GOLDEN_BODY
    assert signed.key_id == "56475aa75463474c" == attest.key_id(public(SEED))
    assert base64.b64decode(signed.signature).hex() == GOLDEN_SIGNATURE
    assert attest.digest(signed.body) == "2f8aba5dabea7690a4c295b722be08e3f4fdeca43a298dacc5522fc4df519ed4"
    assert attest.verify(signed, (public(SEED),)) == USAGE


def test_usage_verifies_with_any_current_key_of_the_site() -> None:
    signed = attest.sign(USAGE, SEED)
    assert attest.verify(signed, (public(OTHER_SEED), public(SEED))) == USAGE


def with_body(signed: SignedUsage, body: str, seed: bytes | None = SEED) -> SignedUsage:
    """``signed`` with another body, re-signed by ``seed`` (None: the old signature kept)."""
    if seed is None:
        return dataclasses.replace(signed, body=body)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return dataclasses.replace(
        signed, body=body, signature=base64.b64encode(key.sign(body.encode())).decode()
    )


def test_usage_tampered_or_signed_by_another_key_is_refused() -> None:
    signed = attest.sign(USAGE, SEED)
    tampered = with_body(signed, GOLDEN_BODY.replace("10800.0", "1080.0"), seed=None)
    with pytest.raises(Forbidden, match="does not verify"):
        attest.verify(tampered, (public(SEED),))
    with pytest.raises(Forbidden, match="is not a key of this site"):
        attest.verify(signed, (public(OTHER_SEED),))
    with pytest.raises(Forbidden, match="is not a key of this site"):
        attest.verify(dataclasses.replace(signed, key_id="0" * 16), (public(SEED),))
    forged = dataclasses.replace(attest.sign(USAGE, OTHER_SEED), key_id=signed.key_id)  # claims SEED's id
    with pytest.raises(Forbidden, match="does not verify"):
        attest.verify(forged, (public(SEED),))
    for bad in ("not base64!", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(Forbidden, match="does not verify"):
            attest.verify(dataclasses.replace(signed, signature=bad), (public(SEED),))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (GOLDEN_BODY.replace(",", ", "), "is not in canonical form"),
        (json.dumps(json.loads(GOLDEN_BODY), sort_keys=False), "is not in canonical form"),
        (GOLDEN_BODY.replace('"gpus":2', '"gpus":"2"'), "is not in canonical form"),
        (GOLDEN_BODY.replace('.000000Z"', 'Z"', 1), "is not a usage document"),
        (GOLDEN_BODY.replace('"v":1', '"v":2'), "is not a usage document"),
        (GOLDEN_BODY.replace('"gpus":2', '"gpus":-2'), "is not a usage document"),
        (GOLDEN_BODY.replace('"gpu_seconds":10800.0', '"gpu_seconds":NaN'), "is not a usage document"),
        (GOLDEN_BODY.replace('"exit_code":0', '"exit_code":"0"'), "is not a usage document"),
        (GOLDEN_BODY.replace('"exit_code":0', '"exit_code":[0]'), "is not a usage document"),
        (GOLDEN_BODY.replace('"energy_j":null', '"energy_j":"lots"'), "is not a usage document"),
        (GOLDEN_BODY.replace('"energy_j":null', '"energy_j":-1.0'), "is not a usage document"),
        (
            GOLDEN_BODY.replace('"end":"2026-11-02T10:30', '"end":"2026-11-02T08:30'),
            "is not a usage document",
        ),
        (GOLDEN_BODY.replace('"site":"isambard",', ""), "is not a usage document"),
        ("[1]", "is not a usage document"),
        ("not json", "is not a usage document"),
    ],
)
def test_a_body_not_canonical_or_not_a_usage_is_refused_though_signed(body: str, why: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        attest.verify(with_body(attest.sign(USAGE, SEED), body), (public(SEED),))
    [p] = exc.value.problems
    assert (p.where, p.message.startswith(why)) == ("usage.body", True), p


def final_report(**kw: Any) -> Report:
    base = Report("j0001.1", RemoteState.COMPLETED, "4242", USAGE.start, USAGE.end, 0, 2, 10800.0, None)
    return dataclasses.replace(base, **kw)


def test_usage_matches_its_report() -> None:
    attest.check_report(USAGE, final_report(), "isambard")
    with pytest.raises(Forbidden, match="signed for site 'isambard'"):
        attest.check_report(USAGE, final_report(), "jeanzay")
    with pytest.raises(Forbidden, match=r"job 'j0001\.1'"):
        attest.check_report(USAGE, final_report(ref="j0002.1"), "isambard")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpu_seconds": 1.0}, "gpu_seconds"),
        ({"started_at": T0 - timedelta(seconds=1)}, "started_at"),
        ({"ended_at": None}, "ended_at"),
        ({"gpus": 8}, "gpus"),
        ({"state": RemoteState.FAILED}, "state"),
        ({"exit_code": 1}, "exit_code"),
        ({"energy_j": 5.0}, "energy_j"),
    ],
)
def test_report_figures_that_differ_from_the_signed_ones_are_refused(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        attest.check_report(USAGE, final_report(**change), "isambard")
    [p] = exc.value.problems
    assert p.where == f"reports[j0001.1].{field}" and p.message == "differs from the usage it carries"
    assert p.allowed is not None and p.allowed.endswith(", as signed")


@settings(max_examples=100, deadline=None)
@given(
    gpus=st.integers(0, 10_000),
    gpu_seconds=st.floats(0, 1e12),
    start=times,
    run=st.timedeltas(timedelta(0), timedelta(days=30)),
    exit_code=st.none() | st.integers(-255, 255),
    energy=st.none() | st.floats(0, 1e12),
    text=texts,
)
def test_any_usage_signs_and_verifies(
    gpus: int,
    gpu_seconds: float,
    start: datetime,
    run: timedelta,
    exit_code: int | None,
    energy: float | None,
    text: str,
) -> None:
    start = start.replace(microsecond=start.microsecond)
    u = attest.Usage(
        text, text, text, text, text, "completed", start, start + run, gpus, gpu_seconds, exit_code, energy
    )
    assert attest.verify(attest.sign(u, SEED), (public(SEED),)) == u


# ------------------------------------------------------------------ request signatures
URL = "https://hub.example/api/agent/v1/logs?ref=j1.1&stream=stdout&offset=0"
NOW = datetime.now(UTC).replace(microsecond=0)
KID = attest.key_id(public(SEED))


def keys(site: str, kid: str) -> bytes | None:
    """The federation's lookup: site isambard has SEED's key, jeanzay OTHER_SEED's."""
    known = {
        ("isambard", KID): public(SEED),
        ("jeanzay", attest.key_id(public(OTHER_SEED))): public(OTHER_SEED),
    }
    return known.get((site, kid))


def signed_headers(
    method: str = "POST",
    url: str = URL,
    body: bytes = b"out",
    at: datetime = NOW,
    site: str = "isambard",
    seed: bytes = SEED,
) -> list[tuple[str, str]]:
    return list(rs.RequestSigner(site, seed).headers(method, url, body, now=at).items())


def test_a_signed_request_verifies() -> None:
    got = rs.verify("POST", URL, signed_headers(), b"out", NOW, keys)
    assert (got.site, got.key_id) == ("isambard", KID)
    assert 16 <= len(got.nonce) <= 100 and got.expires == NOW.timestamp() + 120
    other = rs.verify("POST", URL, signed_headers(), b"out", NOW, keys)
    assert other.nonce != got.nonce  # a fresh nonce each time
    empty = rs.verify("GET", URL, signed_headers("GET", body=b""), b"", NOW, keys)
    assert empty.site == "isambard"


@pytest.mark.parametrize(
    ("method", "url", "body", "why"),
    [
        ("POST", URL, b"oUt", "Content-Digest does not match"),
        ("POST", URL, b"", "Content-Digest does not match"),
        ("PUT", URL, b"out", "does not verify"),
        ("POST", URL.replace("/logs", "/acks"), b"out", "does not verify"),
        ("POST", URL.replace("offset=0", "offset=9"), b"out", "does not verify"),
        ("POST", URL.replace("j1.1", "j2.1"), b"out", "does not verify"),
        ("POST", URL.split("?")[0], b"out", "does not verify"),
    ],
)
def test_a_changed_request_is_refused(method: str, url: str, body: bytes, why: str) -> None:
    with pytest.raises(Unauthenticated, match=why):
        rs.verify(method, url, signed_headers(), body, NOW, keys)


def test_an_unsigned_request_or_a_bad_header_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="needs an HTTP message signature"):
        rs.verify("POST", URL, [("Content-Type", "application/json")], b"out", NOW, keys)
    headers = dict(signed_headers())
    without_input = [(k, v) for k, v in headers.items() if k != "Signature-Input"]
    with pytest.raises(Unauthenticated, match="needs an HTTP message signature"):
        rs.verify("POST", URL, without_input, b"out", NOW, keys)
    garbled = [*[(k, v) for k, v in headers.items() if k != "Signature"], ("Signature", "accord=garbage")]
    with pytest.raises(Unauthenticated, match="refused"):
        rs.verify("POST", URL, garbled, b"out", NOW, keys)
    no_digest = [(k, v) for k, v in headers.items() if k != "Content-Digest"]
    with pytest.raises(Unauthenticated, match="refused"):
        rs.verify("POST", URL, no_digest, b"out", NOW, keys)


@pytest.mark.parametrize(
    ("signed_at", "why"),
    [
        (NOW - timedelta(seconds=121), "expired"),
        (NOW - timedelta(hours=2), "expired"),
        (NOW + timedelta(seconds=61), "created in the future"),
    ],
)
def test_a_signature_out_of_its_time_is_refused(signed_at: datetime, why: str) -> None:
    with pytest.raises(Unauthenticated, match=why):
        rs.verify("POST", URL, signed_headers(at=signed_at), b"out", NOW, keys)


def test_times_are_judged_by_the_hubs_clock_with_a_minute_of_skew() -> None:
    for skew in (timedelta(seconds=30), timedelta(seconds=-100)):
        assert rs.verify("POST", URL, signed_headers(at=NOW + skew), b"out", NOW, keys).site == "isambard"
    long_ago = NOW - timedelta(days=400)  # a hub on a fake clock takes what was signed by it
    assert rs.verify("POST", URL, signed_headers(at=long_ago), b"out", long_ago, keys).site == "isambard"


def sign_raw(
    params: dict[str, Any],
    body: bytes = b"out",
    seed: bytes = SEED,
    covered: tuple[str, ...] = rs.COVERED[:3],
) -> list[tuple[str, str]]:
    """Headers signed by the library directly, with ``params`` as given (None: left out)."""
    msg = rs._Message("POST", URL, [])
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=rs._Keys(Ed25519PrivateKey.from_private_bytes(seed)),
    )
    base = {
        "key_id": f"isambard/{KID}",
        "created": NOW,
        "expires": NOW + timedelta(seconds=60),
        "nonce": "n" * 24,
        "label": rs.LABEL,
        "tag": rs.TAG,
    }
    signer.sign(
        msg,
        covered_component_ids=covered,
        body=body,
        **{k: v for k, v in {**base, **params}.items() if v is not None},
    )
    return msg.headers.items()


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"expires": NOW + timedelta(seconds=301)}, "valid for 301 s, longer than 300 s"),
        ({"expires": None}, "created and expires are required"),
        ({"nonce": None}, "a nonce of 16 to 100 characters is required"),
        ({"nonce": "short"}, "a nonce of 16 to 100 characters is required"),
        ({"nonce": "n" * 101}, "a nonce of 16 to 100 characters is required"),
        ({"tag": "other-app"}, "refused"),
        ({"label": "other"}, "refused"),
        ({"key_id": f"jeanzay/{KID}"}, "refused"),  # site jeanzay does not hold this key
        ({"key_id": KID}, "refused"),  # no site named
        ({"key_id": "isambard/0000000000000000"}, "refused"),
    ],
)
def test_a_signature_with_bad_parameters_is_refused(params: dict[str, Any], why: str) -> None:
    with pytest.raises(Unauthenticated, match=why):
        rs.verify("POST", URL, sign_raw(params), b"out", NOW, keys)


def test_a_signature_that_does_not_cover_what_it_must_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="not covered"):
        rs.verify("POST", URL, sign_raw({}, covered=("@method", "@path")), b"out", NOW, keys)


def test_a_signature_by_a_key_not_in_the_federation_is_refused() -> None:
    stranger = bytes(range(2, 34))

    def claims(site: str) -> list[tuple[str, str]]:
        return signed_headers(site=site, seed=stranger)

    for site in ("isambard", "jeanzay", "nowhere"):
        with pytest.raises(Unauthenticated, match="refused"):
            rs.verify("POST", URL, claims(site), b"out", NOW, keys)
    kid = attest.key_id(public(stranger))  # a stranger naming isambard with isambard's key id
    forged = [(k, v.replace(kid, KID) if k == "Signature-Input" else v) for k, v in claims("isambard")]
    with pytest.raises(Unauthenticated, match="refused"):
        rs.verify("POST", URL, forged, b"out", NOW, keys)


def test_a_new_key_pair_signs_what_its_public_half_verifies() -> None:
    private, pub = rs.new_private_key()
    assert len(private) == len(pub) == 32
    headers = list(rs.RequestSigner("jeanzay", private).headers("GET", URL, b"").items())
    got = rs.verify(
        "GET",
        URL,
        headers,
        b"",
        datetime.now(UTC),
        lambda s, k: pub if (s, k) == ("jeanzay", attest.key_id(pub)) else None,
    )
    assert got.site == "jeanzay"
