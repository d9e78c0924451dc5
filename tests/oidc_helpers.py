"""Test helpers for OIDC: mint signing keys and tokens, and serve a JWKS over real HTTP.

>>> keys = make_keys()
>>> sorted(keys)
['ec-1', 'ed-1', 'rsa-1']
>>> [k["kid"] for k in jwks_document(keys)["keys"]]
['rsa-1', 'ec-1', 'ed-1']
>>> mint(keys["rsa-1"], "rsa-1").count(".")
2
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test"
AUDIENCE = "accord-api"
SUBJECT = "alice"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey


def make_keys() -> dict[str, PrivateKey]:
    """Fresh signing keys by kid: ``rsa-1`` (RS256), ``ec-1`` (ES256, P-256), ``ed-1`` (EdDSA)."""
    return {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "ed-1": Ed25519PrivateKey.generate(),
    }


def algorithm_of(key: PrivateKey) -> str:
    """The JWS algorithm a key of this type signs with."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    return "EdDSA"


def public_jwk(key: PrivateKey, kid: str | None) -> dict[str, Any]:
    """The public half of ``key`` as a JWK dict (with ``kid`` and ``use: sig``)."""
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk["use"] = "sig"
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def public_pem(key: PrivateKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), e.g. to try as an HMAC secret."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def jwks_document(keys: Mapping[str, PrivateKey]) -> dict[str, Any]:
    """A JWKS document (``{"keys": [...]}``) of the public halves of ``keys``, by kid."""
    return {"keys": [public_jwk(key, kid) for kid, key in keys.items()]}


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for ISSUER/AUDIENCE/SUBJECT, now-based; an override of None drops a claim."""
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now,
                            "exp": now + 300, "name": "Alice Example", "email": "alice@example.test"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: PrivateKey, kid: str | None, **overrides: Any) -> str:
    """A token signed by ``key`` with header ``kid`` (omitted if None) and :func:`claims`."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=algorithm_of(key), headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def forge_hs256(secret: bytes, kid: str | None, **overrides: Any) -> str:
    """A token HMAC-SHA256-signed with ``secret`` (e.g. the provider's public key PEM).

    Built by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = _segments(header, claims(**overrides))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def unsigned(kid: str | None, **overrides: Any) -> str:
    """A token with ``"alg": "none"`` and an empty signature."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return _segments(header, claims(**overrides)) + "."


DocGetter = Callable[[], object]


def _handler(doc_getter: DocGetter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = doc_getter()
            status, body = 200, b""
            if isinstance(doc, tuple):
                status, body = doc
            elif isinstance(doc, bytes):
                body = doc
            else:
                body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_jwks(doc_getter: DocGetter) -> Iterator[str]:
    """Serve ``doc_getter()`` on 127.0.0.1 (a free port) for every GET; yield the URL.

    The getter is called per request and may return a JWKS dict (sent as JSON),
    ``bytes`` (sent as they are) or ``(status, bytes)``. The server stops on exit, so
    the URL then refuses connections.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(doc_getter))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="jwks-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
