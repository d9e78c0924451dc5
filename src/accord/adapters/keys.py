"""The operator's ledger-signing key on disk (Ed25519).

``DATA_DIR/ledger-signing.key`` holds the private key (PEM, PKCS#8, mode 0600),
created on first use; ``DATA_DIR/ledger-signing.pub.pem`` is the public key to
give every partner, the only thing they need to verify statements. Replicas of one hub
share one key instead: ``$ACCORD_SIGNING_KEY_FILE`` names it (see ``docs/design/replicas.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.domain.errors import InvalidInput, Problem

PRIVATE = "ledger-signing.key"
PUBLIC = "ledger-signing.pub.pem"
SIGNING_KEY_ENV = "ACCORD_SIGNING_KEY_FILE"


def load_or_create(data_dir: Path) -> bytes:
    """The raw 32-byte private key, creating the key pair on first use.

    Raises:
        InvalidInput: the key file exists but is not an Ed25519 private key.
    """
    path = data_dir / PRIVATE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    raw = load(path, PRIVATE)
    (data_dir / PUBLIC).write_bytes(public_pem(raw))
    return raw


def load(path: Path, field: str = SIGNING_KEY_ENV) -> bytes:
    """The raw 32-byte private key in the PEM file ``path``; ``field`` names where the path
    came from in errors. Never created here: the key a hub's replicas share is made once,
    e.g. ``openssl genpkey -algorithm ed25519 -out hub-signing.key``.

    Raises:
        InvalidInput: the file is missing, unreadable or not an Ed25519 private key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput([Problem(field, f"cannot read the signing key: {exc.strerror}", str(path),
                                    "a PEM (PKCS#8) Ed25519 private key file")]) from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise InvalidInput([Problem(field, f"not a PEM private key: {exc}", str(path))]) from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidInput([Problem(field, "is not an Ed25519 key", type(loaded).__name__,
                                    "an Ed25519 private key")])
    return loaded.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())


def public_pem(private_raw: bytes) -> bytes:
    """The PEM (SubjectPublicKeyInfo) public key of a raw private key."""
    pub = Ed25519PrivateKey.from_private_bytes(private_raw).public_key()
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def read_public_key(path: Path) -> bytes:
    """The raw 32-byte public key from a PEM file (or a file of 64 hex characters).

    Raises:
        InvalidInput: the file is missing or holds no Ed25519 public key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput([Problem("--key", f"cannot read: {exc.strerror}", str(path),
                                    "the operator's ledger-signing.pub.pem")]) from None
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode())
        except ValueError:
            pass
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidInput([Problem("--key", "not a PEM public key", str(path),
                                    "the operator's ledger-signing.pub.pem")]) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput([Problem("--key", "is not an Ed25519 public key", type(key).__name__,
                                    "an Ed25519 public key")])
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
