"""OIDC bearer-token verification against a JWKS file and a JWKS served over real HTTP."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from accord.adapters.clock import FakeClock
from accord.adapters.oidc import (
    ENV_AUDIENCE,
    ENV_ISSUER,
    ENV_JWKS,
    MIN_REFETCH_S,
    STALE_GRACE_S,
    Claims,
    OidcSettings,
    OidcVerifier,
)
from accord.domain.errors import InvalidInput, Unauthenticated, Unavailable
from tests.oidc_helpers import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    PrivateKey,
    claims,
    forge_hs256,
    jwks_document,
    make_keys,
    mint,
    public_jwk,
    public_pem,
    serve_jwks,
    unsigned,
)

KIDS = ["rsa-1", "ec-1", "ed-1"]


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return make_keys()


def write_jwks(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict[str, PrivateKey]) -> Path:
    return write_jwks(tmp_path / "jwks.json", jwks_document(keys))


def settings_for(jwks: str | Path, **overrides: Any) -> OidcSettings:
    return OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks=str(jwks), **overrides)


@pytest.fixture
def verifier(jwks_file: Path) -> OidcVerifier:
    return OidcVerifier(settings_for(jwks_file))


def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    return str(info.value)


# --- valid tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("kid", KIDS)
def test_a_valid_token_gives_its_claims(verifier: OidcVerifier, keys: dict[str, PrivateKey],
                                        kid: str) -> None:
    exp = int(time.time()) + 600
    got = verifier.verify(mint(keys[kid], kid, exp=exp))
    assert got == Claims(issuer=ISSUER, subject=SUBJECT, name="Alice Example",
                            email="alice@example.test", expires_at=datetime.fromtimestamp(exp, UTC))


def test_name_falls_back_to_preferred_username_and_optional_claims_may_be_absent(
        verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    got = verifier.verify(mint(keys["rsa-1"], "rsa-1", name=None, email=None,
                                  preferred_username="alice"))
    assert (got.name, got.email) == ("alice", None)


def test_the_audience_may_be_one_of_several(verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    token = mint(keys["ec-1"], "ec-1", aud=["another-api", AUDIENCE])
    assert verifier.verify(token).subject == SUBJECT


def test_a_token_without_kid_uses_the_only_key(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    path = write_jwks(tmp_path / "one.json", {"keys": [public_jwk(keys["ed-1"], None)]})
    assert OidcVerifier(settings_for(path)).verify(mint(keys["ed-1"], None)).subject == SUBJECT


def test_a_token_without_kid_is_refused_when_there_are_several_keys(
        verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    assert refused(verifier, mint(keys["rsa-1"], None)) == "unknown signing key"


def test_times_are_checked_against_the_injected_clock(jwks_file: Path,
                                                      keys: dict[str, PrivateKey]) -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    verifier = OidcVerifier(settings_for(jwks_file), now=clock.now)
    t = int(clock.now().timestamp())
    token = mint(keys["rsa-1"], "rsa-1", iat=t, exp=t + 60)
    assert verifier.verify(token).expires_at == datetime(2030, 1, 1, 0, 1, tzinfo=UTC)
    clock.advance(60 + 30 - 1)  # within the leeway
    verifier.verify(token)
    clock.advance(1)
    assert refused(verifier, token) == "token expired"


# --- refused tokens --------------------------------------------------------------------------


def test_an_expired_token_is_refused(verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    now = int(time.time())
    assert refused(verifier, mint(keys["rsa-1"], "rsa-1", iat=now - 600, exp=now - 60)) == "token expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_from_the_future_is_refused(verifier: OidcVerifier, keys: dict[str, PrivateKey],
                                            claim: str) -> None:
    later = int(time.time()) + 120
    token = mint(keys["ec-1"], "ec-1", **{claim: later}, exp=later + 300)
    assert refused(verifier, token) == "token not yet valid"


def test_a_token_for_another_audience_is_refused(verifier: OidcVerifier,
                                                 keys: dict[str, PrivateKey]) -> None:
    assert refused(verifier, mint(keys["rsa-1"], "rsa-1", aud="someone-else")) == "wrong audience"


def test_a_token_from_another_issuer_is_refused(verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    token = mint(keys["rsa-1"], "rsa-1", iss="https://evil.example.test")
    assert refused(verifier, token) == "wrong issuer"


@pytest.mark.parametrize("kid", KIDS)
def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
        verifier: OidcVerifier, kid: str) -> None:
    impostor = make_keys()[kid]
    assert refused(verifier, mint(impostor, kid)) == "signature does not verify"


def test_a_tampered_payload_is_refused(verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    header, _, signature = mint(keys["rsa-1"], "rsa-1").split(".")
    other_payload = mint(keys["rsa-1"], "rsa-1", sub="mallory").split(".")[1]
    assert refused(verifier, f"{header}.{other_payload}.{signature}") == "signature does not verify"


def test_an_unsigned_token_is_refused(verifier: OidcVerifier) -> None:
    assert refused(verifier, unsigned("rsa-1")) == "algorithm none not allowed"


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_hs256_with_the_public_key_as_secret_is_refused(verifier: OidcVerifier,
                                                        keys: dict[str, PrivateKey], kid: str) -> None:
    """The RS256 → HS256 key-confusion attack."""
    token = forge_hs256(public_pem(keys[kid]), kid)
    assert refused(verifier, token) == "algorithm HS256 not allowed"


def test_a_symmetric_key_in_the_jwks_is_never_used(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    secret = b"a shared secret that is long enough for HS256!"
    oct_jwk = {"kty": "oct", "kid": "hmac", "k": "YSBzaGFyZWQgc2VjcmV0IHRoYXQgaXMgbG9uZyBlbm91Z2g"}
    doc = {"keys": [oct_jwk, public_jwk(keys["rsa-1"], "rsa-1")]}
    verifier = OidcVerifier(settings_for(write_jwks(tmp_path / "j.json", doc)))
    assert refused(verifier, forge_hs256(secret, "hmac")) == "algorithm HS256 not allowed"
    assert verifier.verify(mint(keys["rsa-1"], "rsa-1")).subject == SUBJECT


def test_a_token_whose_alg_does_not_fit_the_named_key_is_refused(
        verifier: OidcVerifier, keys: dict[str, PrivateKey]) -> None:
    token = mint(keys["ec-1"], "rsa-1")  # ES256 header, but kid of the RSA key
    assert refused(verifier, token) == "algorithm ES256 does not match the signing key"


def test_an_algorithm_outside_the_configured_list_is_refused(
        jwks_file: Path, keys: dict[str, PrivateKey]) -> None:
    verifier = OidcVerifier(settings_for(jwks_file, algorithms=("RS256",)))
    assert refused(verifier, mint(keys["ed-1"], "ed-1")) == "algorithm EdDSA not allowed"
    assert verifier.verify(mint(keys["rsa-1"], "rsa-1")).subject == SUBJECT


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"sub": None}, "token has no subject"),
    ({"sub": ""}, "token has no subject"),
    ({"sub": 42}, "token has no subject"),
    ({"exp": None}, "token has no exp claim"),
    ({"iat": None}, "token has no iat claim"),
    ({"aud": None}, "token has no aud claim"),
    ({"iss": None}, "token has no iss claim"),
    ({"exp": "tomorrow"}, "malformed token"),
    ({"exp": 1e300}, "malformed token"),
    ({"iat": True}, "malformed token"),
])
def test_missing_or_mistyped_claims_are_refused(verifier: OidcVerifier, keys: dict[str, PrivateKey],
                                                overrides: dict[str, Any], reason: str) -> None:
    assert refused(verifier, mint(keys["rsa-1"], "rsa-1", **overrides)) == reason


@pytest.mark.parametrize("token", [
    "", "abc", "a.b.c", "a.b", "Bearer x.y.z", "....", "!!!.!!!.!!!", "e30.e30.",
    "eyJhbGciOiJSUzI1NiJ9", "x" * 20_000,
])
def test_malformed_strings_are_refused(verifier: OidcVerifier, token: str) -> None:
    assert refused(verifier, token) == "malformed token"


def test_a_non_string_token_is_refused(verifier: OidcVerifier) -> None:
    assert refused(verifier, b"abc")  # type: ignore[arg-type]


def test_a_header_with_a_non_string_kid_is_refused(verifier: OidcVerifier,
                                                   keys: dict[str, PrivateKey]) -> None:
    header = "eyJhbGciOiJSUzI1NiIsImtpZCI6NDJ9"  # {"alg":"RS256","kid":42}
    _, payload, signature = mint(keys["rsa-1"], "rsa-1").split(".")
    assert refused(verifier, f"{header}.{payload}.{signature}") == "malformed token"


def test_an_unknown_kid_is_refused(verifier: OidcVerifier) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(verifier, mint(stranger, "rsa-9")) == "unknown signing key"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithms", [("RS256", "HS256"), ("none",), ("RS256", "ES257"), ()])
def test_settings_refuse_symmetric_none_and_unknown_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput) as info:
        settings_for("jwks.json", algorithms=algorithms)
    assert info.value.problems[0].where == "algorithms"


def test_from_env_with_nothing_set_is_none() -> None:
    assert OidcSettings.from_env({"HOME": "/root"}) is None


def test_from_env_reads_all_three(jwks_file: Path) -> None:
    env = {ENV_ISSUER: ISSUER, ENV_AUDIENCE: AUDIENCE, ENV_JWKS: str(jwks_file)}
    assert OidcSettings.from_env(env) == settings_for(jwks_file)
    url = "https://idp.example.test/.well-known/jwks.json"
    settings = OidcSettings.from_env({**env, ENV_JWKS: url})
    assert settings is not None
    assert settings.jwks_is_url


def test_from_env_names_every_missing_variable() -> None:
    with pytest.raises(InvalidInput) as info:
        OidcSettings.from_env({ENV_ISSUER: ISSUER})
    assert [p.where for p in info.value.problems] == [ENV_AUDIENCE, ENV_JWKS]


@pytest.mark.parametrize(("jwks", "message"), [
    ("ftp://idp.example.test/jwks.json", "is not an http(s) URL"),
    ("https:///jwks.json", "is not an http(s) URL"),
    ("/nonexistent/jwks.json", "file does not exist"),
])
def test_from_env_refuses_a_bad_jwks_location(jwks: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        OidcSettings.from_env({ENV_ISSUER: ISSUER, ENV_AUDIENCE: AUDIENCE, ENV_JWKS: jwks})
    [problem] = info.value.problems
    assert (problem.where, problem.message) == (ENV_JWKS, message)
    assert jwks in str(info.value)


def test_from_env_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a file"):
        OidcSettings.from_env({ENV_ISSUER: ISSUER, ENV_AUDIENCE: AUDIENCE, ENV_JWKS: str(tmp_path)})


# --- JWKS from a file ------------------------------------------------------------------------


def test_a_changed_file_is_read_again(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    path = write_jwks(tmp_path / "jwks.json", jwks_document({"rsa-1": keys["rsa-1"]}))
    verifier = OidcVerifier(settings_for(path))
    assert refused(verifier, mint(keys["ec-1"], "ec-1")) == "unknown signing key"
    write_jwks(path, jwks_document(keys))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert verifier.verify(mint(keys["ec-1"], "ec-1")).subject == SUBJECT


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not valid JSON"),
    ('["keys"]', "is not a JWKS document"),
    ('{"keys": {}}', "is not a JWKS document"),
    ('{"keys": []}', "holds no usable signing key"),
    ('{"keys": [{"kty": "RSA", "kid": "x"}, 7, {"kty": "oct", "k": "c2VjcmV0"}]}',
     "holds no usable signing key"),
])
def test_a_malformed_jwks_file_is_unavailable(tmp_path: Path, keys: dict[str, PrivateKey],
                                              content: str, message: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(Unavailable, match=message) as info:
        OidcVerifier(settings_for(path)).verify(mint(keys["rsa-1"], "rsa-1"))
    assert str(path) in str(info.value)


def test_a_missing_jwks_file_is_unavailable(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(Unavailable, match="cannot be read"):
        OidcVerifier(settings_for(tmp_path / "gone.json")).verify(mint(keys["rsa-1"], "rsa-1"))


def test_a_half_written_file_keeps_the_last_good_copy(jwks_file: Path, keys: dict[str, PrivateKey]) -> None:
    verifier = OidcVerifier(settings_for(jwks_file))
    verifier.verify(mint(keys["rsa-1"], "rsa-1"))
    jwks_file.write_text('{"keys": [')
    os.utime(jwks_file, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert verifier.verify(mint(keys["rsa-1"], "rsa-1")).subject == SUBJECT


def test_unusable_entries_are_skipped_and_a_declared_alg_is_honoured(
        tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    rsa_jwk = {**public_jwk(keys["rsa-1"], "rsa-1"), "alg": "PS256"}
    doc = {"keys": ["junk", {"kty": "RSA", "kid": "broken"}, {**public_jwk(keys["ec-1"], "enc"),
                                                              "use": "enc"}, rsa_jwk]}
    verifier = OidcVerifier(settings_for(write_jwks(tmp_path / "j.json", doc),
                                         algorithms=("RS256", "PS256", "ES256")))
    assert refused(verifier, mint(keys["rsa-1"], "rsa-1")) == "algorithm RS256 does not match the signing key"
    assert refused(verifier, mint(keys["ec-1"], "enc")) == "unknown signing key"
    ps256 = jwt.encode(claims(), keys["rsa-1"], algorithm="PS256", headers={"kid": "rsa-1"})
    assert verifier.verify(ps256).subject == SUBJECT


# --- JWKS from a URL -------------------------------------------------------------------------


class Idp:
    """A JWKS endpoint whose document, status and hit count tests control."""

    def __init__(self, doc: object) -> None:
        self.doc = doc
        self.hits = 0
        self.lock = threading.Lock()

    def __call__(self) -> object:
        with self.lock:
            self.hits += 1
            return self.doc


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def idp(keys: dict[str, PrivateKey]) -> Idp:
    return Idp(jwks_document({"rsa-1": keys["rsa-1"]}))


@pytest.fixture
def idp_url(idp: Idp) -> Iterator[str]:
    with serve_jwks(idp) as url:
        yield url


def mint_at(clock: FakeClock, key: PrivateKey, kid: str) -> str:
    """A token issued at the fake clock's time, valid for five minutes."""
    t = int(clock.now().timestamp())
    return mint(key, kid, iat=t, exp=t + 300)


def url_verifier(url: str, clock: FakeClock, **overrides: Any) -> OidcVerifier:
    return OidcVerifier(settings_for(url, **overrides), now=clock.now)


def test_a_jwks_url_is_fetched_once_and_cached(idp: Idp, idp_url: str, clock: FakeClock,
                                               keys: dict[str, PrivateKey]) -> None:
    verifier = url_verifier(idp_url, clock)
    for _ in range(3):
        assert verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1")).subject == SUBJECT
    assert idp.hits == 1
    clock.advance(300)
    verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    assert idp.hits == 2


def test_a_rotated_key_is_picked_up_by_one_refetch(idp: Idp, idp_url: str, clock: FakeClock,
                                                   keys: dict[str, PrivateKey]) -> None:
    verifier = url_verifier(idp_url, clock)
    verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    idp.doc = jwks_document({"rsa-1": keys["rsa-1"], "ec-1": keys["ec-1"]})
    clock.advance(MIN_REFETCH_S)
    assert verifier.verify(mint_at(clock, keys["ec-1"], "ec-1")).subject == SUBJECT
    assert idp.hits == 2


def test_unknown_kids_refetch_at_most_once_per_30_s(idp: Idp, idp_url: str, clock: FakeClock,
                                                    keys: dict[str, PrivateKey]) -> None:
    verifier = url_verifier(idp_url, clock)
    verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    idp.doc = jwks_document(keys)
    clock.advance(MIN_REFETCH_S - 1)
    for _ in range(5):
        assert refused(verifier, mint_at(clock, keys["ed-1"], "ed-1")) == "unknown signing key"
    assert idp.hits == 1
    clock.advance(1)
    assert verifier.verify(mint_at(clock, keys["ed-1"], "ed-1")).subject == SUBJECT
    assert idp.hits == 2


def test_a_server_that_is_down_is_unavailable(clock: FakeClock, keys: dict[str, PrivateKey]) -> None:
    with serve_jwks(lambda: {}) as url:
        pass
    with pytest.raises(Unavailable, match="cannot be fetched") as info:
        url_verifier(url, clock).verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    assert url in str(info.value)


@pytest.mark.parametrize(("answer", "message"), [
    (b"<html>gateway error</html>", "is not valid JSON"),
    ({"keys": []}, "holds no usable signing key"),
    ((500, b"oops"), "answered HTTP 500"),
    ((200, b"x" * (2 << 20)), "is larger than"),
])
def test_a_server_that_returns_garbage_is_unavailable(clock: FakeClock, keys: dict[str, PrivateKey],
                                                      answer: object, message: str) -> None:
    with serve_jwks(lambda: answer) as url, pytest.raises(Unavailable, match=message) as info:
        url_verifier(url, clock).verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    assert url in str(info.value)


def test_a_server_that_does_not_answer_in_time_is_unavailable(clock: FakeClock,
                                                              keys: dict[str, PrivateKey]) -> None:
    release = threading.Event()

    def slow() -> object:
        release.wait(5)
        return {}

    with serve_jwks(slow) as url:
        try:
            with pytest.raises(Unavailable, match=r"no answer within 0\.2 s"):
                url_verifier(url, clock, timeout_s=0.2).verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
        finally:
            release.set()


def test_a_cached_copy_outlives_a_server_outage_for_a_while(clock: FakeClock,
                                                            keys: dict[str, PrivateKey]) -> None:
    idp = Idp(jwks_document({"rsa-1": keys["rsa-1"]}))
    with serve_jwks(idp) as url:
        verifier = url_verifier(url, clock)
        verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    clock.advance(300 + STALE_GRACE_S - 1)
    assert verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1")).subject == SUBJECT
    clock.advance(1)
    with pytest.raises(Unavailable, match="cannot be fetched"):
        verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))


def test_garbage_after_a_good_fetch_keeps_the_good_copy(idp: Idp, idp_url: str, clock: FakeClock,
                                                        keys: dict[str, PrivateKey]) -> None:
    verifier = url_verifier(idp_url, clock)
    verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    idp.doc = b"garbage"
    clock.advance(300)
    assert verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1")).subject == SUBJECT
    assert idp.hits == 2
    clock.advance(MIN_REFETCH_S - 1)  # a failed fetch is not retried on every request
    verifier.verify(mint_at(clock, keys["rsa-1"], "rsa-1"))
    assert idp.hits == 2


def test_many_threads_share_one_fetch(idp: Idp, idp_url: str, clock: FakeClock,
                                      keys: dict[str, PrivateKey]) -> None:
    verifier = url_verifier(idp_url, clock)
    tokens = [mint(keys["rsa-1"], "rsa-1", sub=f"user-{i}") for i in range(32)]
    results: list[str] = []
    errors: list[BaseException] = []

    def work(token: str) -> None:
        try:
            results.append(verifier.verify(token).subject)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == sorted(f"user-{i}" for i in range(32))
    assert idp.hits == 1


def test_an_ec_key_is_used_only_with_its_own_curve(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    path = write_jwks(tmp_path / "j.json", {"keys": [{**public_jwk(p384, "p384"), "alg": "ES384"}]})
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unavailable, match="no usable signing key"):
        OidcVerifier(settings_for(path)).verify(mint(p256, "p384"))
    verifier = OidcVerifier(settings_for(path, algorithms=("ES384",)))
    token = jwt.encode(claims(), p384, algorithm="ES384", headers={"kid": "p384"})
    assert verifier.verify(token).expires_at > datetime.now(UTC) + timedelta(minutes=4)
