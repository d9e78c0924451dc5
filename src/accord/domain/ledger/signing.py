"""Signed tree heads: the log's Ed25519 signature over (size, root, time, period, log).

A partner holds the log's *public* key (raw 32 bytes, or PEM); with it and the
tree head it checks that the log committed to that root at that size, then uses
:mod:`accord.domain.ledger.merkle` proofs against the root. Keys are Ed25519
(RFC 8032), through ``cryptography``; the private key is its raw 32-byte seed.
Reading key files is the adapters' job: every function here takes bytes.

The signed bytes are :func:`encode_head`, a fixed layout with no choices, so one
head has exactly one encoding (all integers big-endian)::

    offset   size  field
    0        16    context, ASCII "accord-tree-head" (separates these signatures from any other)
    16       1     format version, 0x01
    17       8     tree_size, uint64
    25       32    root, SHA-256 Merkle tree hash (RFC 9162 §2.1)
    57       8     timestamp_ms, uint64, milliseconds since 1970-01-01T00:00:00Z
    65       1     P, the length of period in bytes, 1..64
    66       P     period, printable ASCII without spaces (0x21..0x7e), e.g. "2026-11"
    66+P     1     L, the length of log_id in bytes, 1..64
    67+P     L     log_id, printable ASCII without spaces, e.g. "accord-uk"

A signed head on the wire is those bytes followed by the 64-byte Ed25519
signature (:func:`encode_signed_head`). A key's id is SHA-256 of its raw 32
bytes (:func:`key_id`), as a Certificate Transparency log id is.

>>> seed = bytes(range(32))
>>> head = TreeHead(tree_size=0, root=EMPTY_ROOT, timestamp_ms=0, period="2026-11", log_id="test")
>>> verify_head(sign_head(head, seed), public_key(seed))
True
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.domain.errors import InvalidInput, Problem
from accord.domain.ledger.merkle import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE

CONTEXT = b"accord-tree-head"
VERSION = 1
KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_LABEL = 64
_FIXED = struct.Struct(">16sBQ32sQ")  # context, version, tree_size, root, timestamp_ms
_LABEL = re.compile(rf"[\x21-\x7e]{{1,{MAX_LABEL}}}")
_MAX_U64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The log's statement "my tree of ``tree_size`` leaves has this ``root``".

    - ``tree_size``: leaves in the tree, 0..2**64-1;
    - ``root``: its RFC 9162 Merkle tree hash (32 bytes; :data:`EMPTY_ROOT` when empty);
    - ``timestamp_ms``: when the log made the statement, in ms since the Unix epoch (UTC);
    - ``period``: the accounting period the tree covers, e.g. ``"2026-11"``;
    - ``log_id``: which log speaks, e.g. ``"accord-uk"``.

    Raises:
        InvalidInput: listing every field that is out of range.
    """

    tree_size: int
    root: bytes
    timestamp_ms: int
    period: str
    log_id: str

    def __post_init__(self) -> None:
        problems = _head_problems(self)
        if problems:
            raise InvalidInput(problems)


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A tree head and the log's Ed25519 signature over :func:`encode_head` of it.

    The signature is not checked here: it is whatever was received, and only
    :func:`verify_head` says whether it holds.
    """

    head: TreeHead
    signature: bytes


def encode_head(head: TreeHead) -> bytes:
    """The canonical bytes of ``head`` (the layout in this module's docstring)."""
    period, log_id = head.period.encode("ascii"), head.log_id.encode("ascii")
    fixed = _FIXED.pack(CONTEXT, VERSION, head.tree_size, head.root, head.timestamp_ms)
    return b"".join((fixed, bytes([len(period)]), period, bytes([len(log_id)]), log_id))


def decode_head(data: bytes) -> TreeHead:
    """The tree head whose canonical bytes are exactly ``data``.

    Raises:
        InvalidInput: ``data`` is not the canonical encoding of a valid head
            (wrong context or version, truncated, trailing bytes, bad fields).
    """
    if not isinstance(data, bytes) or len(data) < _FIXED.size + 4:
        raise _bad_encoding(f"it is shorter than the smallest head ({_FIXED.size + 4} bytes)", data)
    context, version, tree_size, root, timestamp_ms = _FIXED.unpack_from(data)
    if context != CONTEXT or version != VERSION:
        raise _bad_encoding("it does not start with the tree head context and version 1", data[:17])
    period, pos = _read_label(data, _FIXED.size, "period")
    log_id, pos = _read_label(data, pos, "log_id")
    if pos != len(data):
        raise _bad_encoding(f"{len(data) - pos} bytes follow the log_id", data[pos:pos + 16])
    return TreeHead(tree_size, root, timestamp_ms, period, log_id)


def encode_signed_head(signed: SignedHead) -> bytes:
    """``encode_head(signed.head)`` followed by the 64-byte signature.

    Raises:
        InvalidInput: the signature is not 64 bytes.
    """
    if not isinstance(signed.signature, bytes) or len(signed.signature) != SIGNATURE_SIZE:
        raise InvalidInput.single("signature", "an Ed25519 signature is 64 bytes",
                                  got=len(signed.signature), allowed="64")
    return encode_head(signed.head) + signed.signature


def decode_signed_head(data: bytes) -> SignedHead:
    """The signed head in ``data`` (see :func:`encode_signed_head`); not yet verified.

    Raises:
        InvalidInput: ``data`` is not a canonical head followed by 64 bytes.
    """
    if not isinstance(data, bytes) or len(data) <= SIGNATURE_SIZE:
        raise _bad_encoding("it is too short to hold a head and a 64-byte signature", data)
    return SignedHead(decode_head(data[:-SIGNATURE_SIZE]), data[-SIGNATURE_SIZE:])


def generate_private_key() -> bytes:
    """A new Ed25519 private key: its raw 32-byte seed, from the OS's random source."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_key(private_key_bytes: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a raw private key: what a partner is given.

    Raises:
        InvalidInput: ``private_key_bytes`` is not 32 bytes.
    """
    return _raw_public(_private_key(private_key_bytes).public_key())


def key_id(public_key_bytes: bytes) -> bytes:
    """SHA-256 of the raw public key: a short, stable name for the key.

    Raises:
        InvalidInput: ``public_key_bytes`` is not 32 bytes.
    """
    _check_key(public_key_bytes, "public_key")
    return hashlib.sha256(public_key_bytes).digest()


def public_key_to_pem(public_key_bytes: bytes) -> str:
    """The raw public key as PEM text (``-----BEGIN PUBLIC KEY-----``, SubjectPublicKeyInfo).

    Raises:
        InvalidInput: ``public_key_bytes`` is not a 32-byte Ed25519 public key.
    """
    pem = _public_key(public_key_bytes).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def public_key_from_pem(pem: str | bytes) -> bytes:
    """The raw 32-byte public key in PEM text (as :func:`public_key_to_pem` writes it).

    Raises:
        InvalidInput: the text is not a PEM public key, or the key is not Ed25519.
    """
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput.single("public_key", f"not a PEM public key: {exc}",
                                  allowed="'-----BEGIN PUBLIC KEY-----' text of an Ed25519 key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput.single("public_key", "the key is not an Ed25519 key",
                                  got=type(key).__name__, allowed="Ed25519PublicKey")
    return _raw_public(key)


def sign_head(head: TreeHead, private_key_bytes: bytes) -> SignedHead:
    """Sign ``encode_head(head)`` with the log's raw Ed25519 private key.

    Ed25519 signatures are deterministic: the same head and key give the same bytes.

    Raises:
        InvalidInput: ``private_key_bytes`` is not 32 bytes.
    """
    return SignedHead(head, _private_key(private_key_bytes).sign(encode_head(head)))


def verify_head(signed: SignedHead, public_key_bytes: bytes) -> bool:
    """Whether ``signed.signature`` is the holder of ``public_key_bytes`` signing ``signed.head``.

    Never raises on what was received: a signature of the wrong type or length,
    or anything that is not a :class:`SignedHead`, is ``False``.

    Raises:
        InvalidInput: ``public_key_bytes`` (the verifier's own trusted
            configuration, not received data) is not 32 bytes, so that a broken
            configuration is never mistaken for a log that lies.
    """
    key = _public_key(public_key_bytes)
    if not isinstance(signed, SignedHead) or not isinstance(signed.head, TreeHead):
        return False
    signature = signed.signature
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        key.verify(signature, encode_head(signed.head))
    except InvalidSignature:
        return False
    return True


def _head_problems(head: TreeHead) -> list[Problem]:
    problems = []
    if type(head.tree_size) is not int or not 0 <= head.tree_size <= MAX_TREE_SIZE:
        problems.append(Problem("tree_size", "must be a whole number of leaves",
                                repr(head.tree_size), f"0..{MAX_TREE_SIZE}"))
    if type(head.root) is not bytes or len(head.root) != HASH_SIZE:
        problems.append(Problem("root", "must be a 32-byte SHA-256 tree hash",
                                _show(head.root), "32 bytes"))
    elif head.tree_size == 0 and head.root != EMPTY_ROOT:
        problems.append(Problem("root", "the empty tree's root is SHA-256 of nothing",
                                head.root.hex(), EMPTY_ROOT.hex()))
    if type(head.timestamp_ms) is not int or not 0 <= head.timestamp_ms <= _MAX_U64:
        problems.append(Problem("timestamp_ms", "must be milliseconds since the Unix epoch",
                                repr(head.timestamp_ms), f"0..{_MAX_U64}"))
    for name in ("period", "log_id"):
        value = getattr(head, name)
        if not isinstance(value, str) or not _LABEL.fullmatch(value):
            problems.append(Problem(name, "must be 1 to 64 printable ASCII characters, no spaces",
                                    _show(value), "e.g. '2026-11' or 'accord-uk'"))
    return problems


def _read_label(data: bytes, pos: int, name: str) -> tuple[str, int]:
    if pos >= len(data):
        raise _bad_encoding(f"it ends before the length of {name}", b"")
    length = data[pos]
    raw = data[pos + 1 : pos + 1 + length]
    if len(raw) != length:
        raise _bad_encoding(f"it ends inside {name} ({length} bytes announced)", raw)
    try:
        return raw.decode("ascii"), pos + 1 + length
    except UnicodeDecodeError as exc:
        raise _bad_encoding(f"{name} is not ASCII", raw) from exc


def _bad_encoding(message: str, got: object) -> InvalidInput:
    return InvalidInput([Problem("tree_head", f"not a canonical tree head: {message}", _show(got),
                                 "the layout in docs/design/merkle.md")])


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes {value[:32].hex()}{'...' if len(value) > 32 else ''}"
    return repr(value)


def _check_key(raw: bytes, where: str) -> None:
    if not isinstance(raw, bytes) or len(raw) != KEY_SIZE:
        raise InvalidInput.single(where, "an Ed25519 key is 32 raw bytes",
                                  got=_show(raw), allowed="32 bytes (use public_key_from_pem for PEM)")


def _private_key(raw: bytes) -> Ed25519PrivateKey:
    _check_key(raw, "private_key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _public_key(raw: bytes) -> Ed25519PublicKey:
    _check_key(raw, "public_key")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:  # not a point on the curve
        raise InvalidInput.single("public_key", f"not an Ed25519 public key: {exc}",
                                  got=raw.hex()) from exc


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
