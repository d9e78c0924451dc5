"""OIDC bearer tokens: verify a JWT against the identity provider's JWKS.

An :class:`OidcVerifier` checks a token's signature against a key from a JWKS
(JSON Web Key Set) read from a file or fetched from an ``http(s)://`` URL, then
its issuer, audience and times, and returns the caller's :class:`Claims`.
PyJWT does the cryptography; this module chooses the key, keeps the JWKS fresh
and turns every PyJWT failure into :class:`~accord.domain.errors.Unauthenticated`
with a short reason, or :class:`~accord.domain.errors.Unavailable` when the key
set itself cannot be had.

Only asymmetric algorithms are accepted, so a token HMAC-signed with the
provider's *public* key as the secret (the RS256 → HS256 key-confusion attack)
is refused before any key is looked at; symmetric (``"kty": "oct"``) keys in a
JWKS are ignored. Each key is bound to one algorithm: the JWK's own ``alg`` when
it names one, otherwise each configured algorithm that fits the key's type.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import httpx
import jwt
from jwt.exceptions import InvalidSubjectError

from accord.domain.errors import InvalidInput, Problem, Unauthenticated, Unavailable

log = logging.getLogger("accord.oidc")

ENV_ISSUER: Final = "ACCORD_OIDC_ISSUER"
ENV_AUDIENCE: Final = "ACCORD_OIDC_AUDIENCE"
ENV_JWKS: Final = "ACCORD_OIDC_JWKS"

SUPPORTED_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                               "ES256", "ES384", "ES512", "EdDSA")
REQUIRED_CLAIMS: Final = ("exp", "iat", "sub", "iss", "aud")
MIN_REFETCH_S: Final = 30.0       # an unknown kid re-fetches a URL at most this often
STALE_GRACE_S: Final = 3600.0     # a fetched JWKS outlives cache_s by this much if the URL is down
MAX_JWKS_BYTES: Final = 1 << 20
MAX_TOKEN_CHARS: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Where tokens come from and how they are checked.

    ``jwks`` is a file path or an ``http(s)://`` URL of a JWKS document. ``cache_s`` is
    how long a fetched JWKS is reused; a token with an unknown ``kid`` forces one
    re-fetch, and no URL is fetched more often than once per 30 s. When a re-fetch
    fails, the last good copy is used for up to an hour more. A file is re-read
    whenever its mtime or size changes.

    Raises:
        InvalidInput: an algorithm that is symmetric, ``none`` or unknown, an empty
            issuer or audience, or a negative duration.
    """

    issuer: str
    audience: str
    jwks: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: int = 30
    cache_s: int = 300
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        problems = [Problem("algorithms", "is not an asymmetric JWS algorithm", repr(alg),
                            ", ".join(SUPPORTED_ALGORITHMS))
                    for alg in self.algorithms if alg not in SUPPORTED_ALGORITHMS]
        if not self.algorithms:
            problems.append(Problem("algorithms", "is empty", None, ", ".join(SUPPORTED_ALGORITHMS)))
        for name in ("issuer", "audience", "jwks"):
            if not getattr(self, name).strip():
                problems.append(Problem(name, "is empty"))
        for name in ("leeway_s", "cache_s"):
            if getattr(self, name) < 0:
                problems.append(Problem(name, "must not be negative", repr(getattr(self, name))))
        if not self.timeout_s > 0:
            problems.append(Problem("timeout_s", "must be positive", repr(self.timeout_s)))
        if problems:
            raise InvalidInput(problems)

    @property
    def jwks_is_url(self) -> bool:
        """Whether ``jwks`` is fetched over HTTP rather than read from a file."""
        return self.jwks.startswith(("http://", "https://"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        """Settings from ``ACCORD_OIDC_ISSUER``, ``_AUDIENCE`` and ``_JWKS``; None if none is set.

        Raises:
            InvalidInput: only some of the three are set, or ``ACCORD_OIDC_JWKS`` is
                neither an http(s) URL nor an existing file; each problem names its variable.
        """
        names = (ENV_ISSUER, ENV_AUDIENCE, ENV_JWKS)
        values = {name: env.get(name, "").strip() for name in names}
        if not any(values.values()):
            return None
        problems = [Problem(name, "is not set; OIDC needs all three variables", None,
                            ", ".join(names)) for name in names if not values[name]]
        if values[ENV_JWKS]:
            problems += _jwks_location_problems(values[ENV_JWKS])
        if problems:
            raise InvalidInput(problems)
        return cls(issuer=values[ENV_ISSUER], audience=values[ENV_AUDIENCE], jwks=values[ENV_JWKS])


def _jwks_location_problems(value: str) -> list[Problem]:
    allowed = "an http:// or https:// URL, or the path of a JWKS file"
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return [Problem(ENV_JWKS, "is not an http(s) URL", repr(value), allowed)]
        return []
    path = Path(value).expanduser()
    if not path.exists():
        return [Problem(ENV_JWKS, "file does not exist", repr(value), allowed)]
    if not path.is_file():
        return [Problem(ENV_JWKS, "is not a file", repr(value), allowed)]
    return []


@dataclass(frozen=True, slots=True)
class Claims:
    """Who a verified token speaks for.

    ``name`` is the ``name`` claim (else ``preferred_username``), ``email`` the
    ``email`` claim; either is None when absent. ``expires_at`` is UTC.
    """

    issuer: str
    subject: str
    name: str | None
    email: str | None
    expires_at: datetime


# --- key sets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    by_alg: Mapping[str, jwt.PyJWK]


@dataclass(frozen=True, slots=True)
class _KeySet:
    """An immutable parsed JWKS: shared between threads without locking."""

    keys: tuple[_Key, ...]

    def knows(self, kid: str | None) -> bool:
        """Whether a token with this ``kid`` header has a key here (for any algorithm)."""
        if kid is None:
            return len(self.keys) == 1
        return any(k.kid == kid for k in self.keys)

    def find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The key bound to ``alg`` for a token with this ``kid``, or None."""
        candidates = self.keys if kid is None and len(self.keys) == 1 else (
            [k for k in self.keys if kid is not None and k.kid == kid])
        for key in candidates:
            if alg in key.by_alg:
                return key.by_alg[alg]
        return None


def _parse_jwks(raw: bytes, source: str, algorithms: tuple[str, ...]) -> _KeySet:
    """Parse a JWKS document, keeping the asymmetric signing keys usable with ``algorithms``.

    Raises:
        Unavailable: not JSON, no ``keys`` list, or no usable key; the message names ``source``.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Unavailable(f"JWKS {source} is not valid JSON: {exc}") from None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise Unavailable(f'JWKS {source} is not a JWKS document (expected an object with a "keys" list)')
    keys = tuple(key for entry in entries if (key := _parse_jwk(entry, algorithms)) is not None)
    if not keys:
        raise Unavailable(f"JWKS {source} holds no usable signing key for algorithms "
                          f"{', '.join(algorithms)} ({len(entries)} entries)")
    return _KeySet(keys)


def _parse_jwk(entry: object, algorithms: tuple[str, ...]) -> _Key | None:
    if not isinstance(entry, dict) or entry.get("kty") in (None, "oct"):
        return None
    if entry.get("use", "sig") != "sig":
        return None
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    declared = entry.get("alg")
    wanted = algorithms if declared is None else tuple(a for a in algorithms if a == declared)
    by_alg: dict[str, jwt.PyJWK] = {}
    for alg in wanted:
        try:
            by_alg[alg] = jwt.PyJWK(entry, algorithm=alg)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            continue  # this key does not fit this algorithm (e.g. an RSA key for ES256)
    return _Key(kid, by_alg) if by_alg else None


class _Source(Protocol):
    def current(self) -> _KeySet: ...

    def refetch(self) -> _KeySet: ...


class _FileSource:
    """A JWKS file, re-read whenever its modification time or size changes."""

    def __init__(self, path: str, algorithms: tuple[str, ...]) -> None:
        self._path = Path(path).expanduser()
        self._algorithms = algorithms
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: _KeySet | None = None
        self._last_error = ""

    def current(self) -> _KeySet:
        """The key set as the file holds it now.

        Raises:
            Unavailable: the file cannot be read or parsed and no earlier copy was read.
        """
        with self._lock:
            try:
                st = os.stat(self._path)
                stamp = (st.st_mtime_ns, st.st_size)
                if self._keys is not None and stamp == self._stamp:
                    return self._keys
                keys = _parse_jwks(self._path.read_bytes(), str(self._path), self._algorithms)
            except OSError as exc:
                return self._keep(Unavailable(f"JWKS {self._path} cannot be read: {exc.strerror}"))
            except Unavailable as exc:
                return self._keep(exc)
            self._keys, self._stamp, self._last_error = keys, stamp, ""
            return keys

    def _keep(self, exc: Unavailable) -> _KeySet:
        # A file being rewritten may be briefly unreadable or half-written: keep the last
        # good copy, and say so once per distinct fault rather than on every request.
        if self._keys is None:
            raise exc
        if str(exc) != self._last_error:
            self._last_error = str(exc)
            log.warning("%s; still using the copy read before", exc)
        return self._keys

    def refetch(self) -> _KeySet:
        """The same as :meth:`current`: a file is checked on every use anyway."""
        return self.current()


class _UrlSource:
    """A JWKS URL, fetched with httpx and reused for ``cache_s`` seconds."""

    def __init__(self, settings: OidcSettings, now: Callable[[], datetime]) -> None:
        self._url = settings.jwks
        self._settings = settings
        self._now = now
        self._state_lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # one fetch at a time; readers of a fresh copy never wait
        self._keys: _KeySet | None = None
        self._fetched_at = float("-inf")   # last successful fetch
        self._attempted_at = float("-inf")  # last fetch, successful or not

    def _age(self, since: float) -> float:
        age = self._now().timestamp() - since
        return age if age >= 0 else float("inf")  # the clock went back: treat as old

    def current(self) -> _KeySet:
        """The cached key set while it is fresh, else a newly fetched one.

        Raises:
            Unavailable: the URL cannot be fetched or parsed and no cached copy is usable.
        """
        with self._state_lock:
            if self._keys is not None and self._age(self._fetched_at) < self._settings.cache_s:
                return self._keys
        with self._fetch_lock:
            with self._state_lock:
                if self._keys is not None and self._age(self._fetched_at) < self._settings.cache_s:
                    return self._keys  # another thread fetched it meanwhile
            return self._fetch_or_stale()

    def refetch(self) -> _KeySet:
        """Fetch again (for an unknown ``kid``) unless the last fetch was under 30 s ago.

        Raises:
            Unavailable: the URL cannot be fetched or parsed and no cached copy is usable.
        """
        with self._fetch_lock:
            return self._fetch_or_stale()

    def _fetch_or_stale(self) -> _KeySet:
        with self._state_lock:
            cached, age = self._keys, self._age(self._fetched_at)
            usable = cached is not None and age < self._settings.cache_s + STALE_GRACE_S
            if cached is not None and usable and self._age(self._attempted_at) < MIN_REFETCH_S:
                return cached
            self._attempted_at = self._now().timestamp()
        try:
            keys = _parse_jwks(self._download(), self._url, self._settings.algorithms)
        except Unavailable as exc:
            if cached is None or not usable:
                raise
            log.warning("%s; using the copy fetched %.0f s ago", exc, age)
            return cached
        with self._state_lock:
            self._keys, self._fetched_at = keys, self._now().timestamp()
        return keys

    def _download(self) -> bytes:
        timeout = self._settings.timeout_s
        try:
            with httpx.Client(timeout=timeout) as client, client.stream("GET", self._url) as resp:
                if resp.status_code != 200:
                    raise Unavailable(f"JWKS {self._url} answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise Unavailable(f"JWKS {self._url} is larger than {MAX_JWKS_BYTES} bytes")
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"JWKS {self._url}: no answer within {timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"JWKS {self._url} cannot be fetched: {exc}") from exc


# --- the verifier ----------------------------------------------------------------------------


class OidcVerifier:
    """Verifies bearer tokens against one issuer's JWKS; safe to share between threads."""

    def __init__(self, settings: OidcSettings, *, now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        self._source: _Source = (_UrlSource(settings, self._now) if settings.jwks_is_url
                                 else _FileSource(settings.jwks, settings.algorithms))

    def verify(self, token: str) -> Claims:
        """Check ``token``'s signature, issuer, audience and times; return its claims.

        Raises:
            Unauthenticated: the token is not valid, with a short reason: "malformed token",
                "algorithm X not allowed", "unknown signing key", "signature does not
                verify", "wrong issuer", "wrong audience", "token expired", "token not
                yet valid", "token has no subject" (or another missing claim).
            Unavailable: the JWKS cannot be read or fetched and no cached copy is usable.
        """
        alg, kid = _header(token, self.settings.algorithms)
        key = self._key(kid, alg)
        payload = self._decode(token, key, alg)
        return self._check_claims(payload)

    def _key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        keys = self._source.current()
        key = keys.find(kid, alg)
        if key is None and not keys.knows(kid):
            keys = self._source.refetch()  # perhaps the provider rotated its keys
            key = keys.find(kid, alg)
        if key is not None:
            return key
        if keys.knows(kid):
            raise Unauthenticated(f"algorithm {alg} does not match the signing key")
        raise Unauthenticated("unknown signing key")

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        # PyJWT checks signature, issuer, audience and presence; the times are checked
        # against our own clock afterwards (PyJWT reads the system clock).
        try:
            return jwt.decode(
                token, key, algorithms=[alg], audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False, "enforce_minimum_key_length": True})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc, alg)) from None

    def _check_claims(self, payload: dict[str, Any]) -> Claims:
        now = self._now().timestamp()
        leeway = self.settings.leeway_s
        exp, iat = _instant(payload, "exp"), _instant(payload, "iat")
        nbf = _instant(payload, "nbf") if "nbf" in payload else None
        if exp <= now - leeway:
            raise Unauthenticated("token expired")
        if (nbf is not None and nbf > now + leeway) or iat > now + leeway:
            raise Unauthenticated("token not yet valid")
        subject = payload["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("token has no subject")
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            raise Unauthenticated("malformed token") from None
        return Claims(issuer=payload["iss"], subject=subject,
                      name=_text(payload, "name") or _text(payload, "preferred_username"),
                      email=_text(payload, "email"), expires_at=expires_at)


def _header(token: object, allowed: tuple[str, ...]) -> tuple[str, str | None]:
    """The token's ``alg`` (checked against ``allowed``) and ``kid`` header values.

    Raises:
        Unauthenticated: "malformed token", or "algorithm X not allowed".
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("malformed token") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or not isinstance(kid, str | None):
        raise Unauthenticated("malformed token")
    if alg not in allowed:
        raise Unauthenticated(f"algorithm {alg[:20]} not allowed")
    return alg, kid


def _reason(exc: jwt.PyJWTError, alg: str) -> str:
    """A short, caller-safe reason for a PyJWT failure."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return "token has no subject" if exc.claim == "sub" else f"token has no {exc.claim} claim"
    reasons: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.InvalidSignatureError, "signature does not verify"),
        (jwt.InvalidAudienceError, "wrong audience"),
        (jwt.InvalidIssuerError, "wrong issuer"),
        (jwt.InvalidAlgorithmError, f"algorithm {alg} not allowed"),
        (jwt.InvalidKeyError, "signing key is not acceptable"),
        (InvalidSubjectError, "token has no subject"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "malformed token"


def _instant(payload: dict[str, Any], claim: str) -> float:
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise Unauthenticated("malformed token")
    return float(value)


def _text(payload: dict[str, Any], claim: str) -> str | None:
    value = payload.get(claim)
    return value if isinstance(value, str) and value else None
