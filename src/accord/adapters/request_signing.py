"""HTTP Message Signatures (RFC 9421) with Ed25519, as the site agent signs its requests and
the hub checks them (``docs/design/site-agent.md``, "Credentials").

Each request carries ``Content-Digest`` (RFC 9530, SHA-256 of the body), ``Signature-Input``
and ``Signature`` with label ``accord``. The signature covers ``@method``, ``@path``,
``@query`` and ``content-digest``, with parameters ``created``, ``expires`` (at most
:data:`MAX_LIFETIME_S` later), ``nonce`` (random, never reused), ``keyid``
(``SITE/KEYID``: the site and the 16-hex-digit id of its key), ``alg="ed25519"`` and
``tag="accord-agent"``. Any RFC 9421 library can make such a request (the tests sign some
with the ``http-message-signatures`` package directly).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from accord.domain.agent.attest import key_id
from accord.domain.agent.protocol import SignedRequest
from accord.domain.errors import Unauthenticated

LABEL = "accord"
TAG = "accord-agent"
COVERED = ("@method", "@path", "@query", "content-digest")
MAX_LIFETIME_S = 300  # a signature is valid at most this long after it was made
CLOCK_SKEW_S = 60  # how far ahead of the hub's clock an agent's may be


class _Message:
    """The request as the library reads it: method, absolute URL, header lines."""

    def __init__(self, method: str, url: str, headers: Iterable[tuple[str, str]]) -> None:
        self.method = method.upper()
        self.url = url
        self.headers = _Headers(list(headers))


class _Headers:
    """Header lines in order (repeats kept), case-insensitive for lookups."""

    def __init__(self, lines: list[tuple[str, str]]) -> None:
        self.lines = lines

    def items(self) -> list[tuple[str, str]]:
        return list(self.lines)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(dict.fromkeys(k for k, _ in self.lines))

    def __contains__(self, name: object) -> bool:
        return any(k.lower() == str(name).lower() for k, _ in self.lines)

    def __setitem__(self, name: str, value: str) -> None:
        del self[name]
        self.lines.append((name, value))

    def __delitem__(self, name: str) -> None:
        self.lines = [(k, v) for k, v in self.lines if k.lower() != name.lower()]


class _Keys(HTTPSignatureKeyResolver):
    def __init__(
        self,
        private: Ed25519PrivateKey | None = None,
        lookup: Callable[[str], Ed25519PublicKey | None] | None = None,
    ) -> None:
        self.private, self.lookup = private, lookup

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self.private is not None
        return self.private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self.lookup(key_id) if self.lookup else None


class _Verifier(HTTPMessageVerifier):
    """The library's verifier, but with times left to :func:`_checked`: it judges them by the
    hub's clock (the library's by the machine's, with 5 s of skew against our 60)."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


class RequestSigner:
    """Signs an agent's requests with its site's private key (raw 32 bytes)."""

    def __init__(self, site: str, private_raw: bytes) -> None:
        key = Ed25519PrivateKey.from_private_bytes(private_raw)
        self.key_id = f"{site}/{key_id(key.public_key().public_bytes_raw())}"
        self._signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(key))

    def headers(self, method: str, url: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
        """The signature headers for this request (``url`` absolute, with its query)."""
        created = (now or datetime.now(UTC)).replace(microsecond=0)
        msg = _Message(method, url, [])
        self._signer.sign(
            msg,
            key_id=self.key_id,
            created=created,
            expires=created + timedelta(seconds=120),
            nonce=secrets.token_urlsafe(18),
            label=LABEL,
            tag=TAG,
            covered_component_ids=COVERED[:3],
            body=body,
        )
        return dict(msg.headers.items())


def verify(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    now: datetime,
    site_key: Callable[[str, str], bytes | None],
) -> SignedRequest:
    """Check a request's signature; ``site_key(site, key_id)`` gives a site's current public
    key with that id (None: unknown or revoked).

    Raises:
        Unauthenticated: no signature, an unknown or revoked key, a bad signature or digest,
            one made too long ago, in the future, or valid for too long.
    """

    def lookup(kid: str) -> Ed25519PublicKey | None:
        site, _, kid16 = kid.partition("/")
        raw = site_key(site, kid16) if site and kid16 else None
        return None if raw is None else Ed25519PublicKey.from_public_bytes(raw)

    verifier = _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(lookup=lookup))
    msg = _Message(method, url, headers)
    if "signature" not in msg.headers or "signature-input" not in msg.headers:
        raise Unauthenticated("this route needs an HTTP message signature (RFC 9421) by the site's agent key")
    try:
        results = verifier.verify(
            msg,
            max_age=None,
            expect_tag=TAG,
            expect_label=LABEL,
            require_components=COVERED,
            body=body,
        )
    except HTTPMessageSignaturesException as exc:
        why = str(exc) or "the signature does not verify over this method, path, query and body"
        raise Unauthenticated(f"request signature refused: {why}") from None
    return _checked(results[0].parameters, now)


def _checked(params: Mapping[str, object], now: datetime) -> SignedRequest:
    created, expires, nonce, kid = (params.get(k) for k in ("created", "expires", "nonce", "keyid"))
    if not isinstance(created, int) or not isinstance(expires, int):
        raise Unauthenticated("request signature refused: created and expires are required")
    if created > now.timestamp() + CLOCK_SKEW_S:
        raise Unauthenticated("request signature refused: created in the future (check the agent's clock)")
    if expires - created > MAX_LIFETIME_S:
        raise Unauthenticated(
            f"request signature refused: valid for {expires - created} s, longer than {MAX_LIFETIME_S} s"
        )
    if expires < now.timestamp():
        raise Unauthenticated("request signature refused: expired (check the agent's clock)")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 100:
        raise Unauthenticated("request signature refused: a nonce of 16 to 100 characters is required")
    site, _, k = str(kid).partition("/")
    return SignedRequest(site, k, nonce, float(expires))


def new_private_key() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair, raw: (private 32 bytes, public 32 bytes)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes_raw(), key.public_key().public_bytes_raw()
