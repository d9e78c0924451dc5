"""C2SP ``signed-note``: text signed by one or more keys (pure; no I/O, no clock).

A signed note is a text ending in a newline, a blank line, then one or more signature
lines ``— <key name> base64(4-byte key ID || signature)``, each ending in a newline
(c2sp.org/signed-note). The note must be valid UTF-8 with no control character but the
newline; the text is separated from the signatures by the *last* blank line.

Two signature types are implemented, the two a witnessed log needs:

- ``0x01`` Ed25519 (:attr:`SignatureType.ED25519`): RFC 8032 over the note text; the log
  signs its checkpoints with it;
- ``0x04`` timestamped Ed25519 cosignatures (:attr:`SignatureType.COSIGNATURE_V1`,
  c2sp.org/tlog-cosignature): an 8-byte big-endian POSIX time followed by RFC 8032 over
  ``cosignature/v1\\ntime <T>\\n`` + the note text; a witness cosigns with it.

A key ID is ``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32
(:func:`key_id`). A *verifier key* (vkey) is the text ``name+hex8(key ID)+base64(type ||
public key)``; a signer key ``PRIVATE+KEY+name+hex8(key ID)+base64(0x01 || seed)``, as
``golang.org/x/mod/sumdb/note`` writes them.

Parsing raises :class:`~accord.domain.errors.InvalidInput` naming what is wrong;
verifying never raises on what was received (:func:`open_note` sorts the signatures
into verified, failed and unknown ones and lets the caller decide).

>>> seed = bytes(range(32))
>>> key = verifier_key("example.org/log", SignatureType.ED25519, public_key_of(seed))
>>> note = Note("hello\\n", (sign_ed25519("hello\\n", "example.org/log", seed),))
>>> [s.name for s in open_note(parse_note(note.encode()), [key]).verified]
['example.org/log']
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.domain.errors import InvalidInput, Problem

EM_DASH = "\u2014"
SIGNATURE_PREFIX = EM_DASH + " "
MAX_SIGNATURES = 100
"""Signature lines a note may carry (the spec asks verifiers to accept at least 16)."""
MAX_TIMESTAMP = 2**63 - 1
"""A cosignature's time must not exceed this (c2sp.org/tlog-cosignature)."""
KEY_SIZE = 32
SIGNATURE_SIZE = 64
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


class SignatureType(enum.Enum):
    """The signature type bytes of c2sp.org/signed-note this implementation knows."""

    ED25519 = 0x01
    COSIGNATURE_V1 = 0x04


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name, its 32-bit ID and the signature bytes after it.

    Raises:
        InvalidInput: the name is not a valid key name, or the ID is not a uint32.
    """

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, "signature.name")
        if type(self.key_id) is not int or not 0 <= self.key_id < 2**32:
            raise InvalidInput.single("signature.key_id", "must be a 32-bit unsigned integer",
                                      got=self.key_id, allowed="0..4294967295")

    def line(self) -> str:
        """The signature line, ``— name base64(id || signature)`` and a newline."""
        blob = base64.b64encode(_U32.pack(self.key_id) + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (ending in a newline) and its signatures, in order.

    Raises:
        InvalidInput: the text is empty, lacks its final newline, holds a control
            character, or more than :data:`MAX_SIGNATURES` signatures are given.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if len(self.signatures) > MAX_SIGNATURES:
            raise InvalidInput.single("note", "too many signature lines",
                                      got=len(self.signatures), allowed=f"at most {MAX_SIGNATURES}")

    def encode(self) -> str:
        """The signed note: text, a blank line, then every signature line."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public key a verifier trusts: its name, signature type and raw 32-byte key.

    Raises:
        InvalidInput: the name is not a valid key name, or the key is not 32 bytes.
    """

    name: str
    type: SignatureType
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, "key.name")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != KEY_SIZE:
            raise InvalidInput.single("key.public_key", "an Ed25519 public key is 32 bytes",
                                      got=_size(self.public_key), allowed="32 bytes")

    @property
    def key_id(self) -> int:
        """``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32."""
        return key_id(self.name, self.type, self.public_key)

    def encode(self) -> str:
        """The vkey text: ``name+hex8(key ID)+base64(type || public key)``."""
        material = base64.b64encode(bytes([self.type.value]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{material}"


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note's signatures sorted by :func:`open_note`: ``verified`` by a trusted key,
    ``failed`` (a trusted key's name and ID, but the signature does not verify), and
    ``unknown`` (no trusted key has that name and ID: ignored, as the spec says)."""

    note: Note
    verified: tuple[NoteSignature, ...]
    failed: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...]


def key_id(name: str, sig_type: SignatureType, public_key: bytes) -> int:
    """The key ID of c2sp.org/signed-note: ``SHA-256(name || "\\n" || type || key)[:4]``.

    >>> f"{key_id('PeterNeumann', SignatureType.ED25519, bytes(32)):08x}"
    '60b9fb2a'
    """
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type.value]) + public_key)
    return int(_U32.unpack(digest.digest()[:4])[0])


def check_key_name(name: object, where: str = "key name") -> None:
    """Refuse a key name that is empty or holds a space or a ``+``.

    Raises:
        InvalidInput: naming the name and what is wrong with it.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput.single(where, "a key name must be a non-empty string", got=name)
    if "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise InvalidInput.single(where, "a key name must hold no space, '+' or control character",
                                  got=name, allowed="e.g. 'example.org/log'")


def verifier_key(name: str, sig_type: SignatureType, public_key: bytes) -> VerifierKey:
    """The :class:`VerifierKey` for a raw public key (raises as :class:`VerifierKey`)."""
    return VerifierKey(name, sig_type, public_key)


def parse_verifier_key(text: str) -> VerifierKey:
    """The verifier key in a vkey text ``name+hex8+base64(type || key)``.

    Raises:
        InvalidInput: it has not three ``+``-separated parts, the base64 or type byte is
            bad, the key is not 32 bytes, or the ID does not match the name and key.
    """
    name, sep1, rest = text.strip().partition("+")
    hex_id, sep2, material = rest.partition("+")
    if not (sep1 and sep2) or len(hex_id) != 8 or not _is_hex(hex_id):
        raise InvalidInput.single("key", "a verifier key is name+hex8(key ID)+base64(type || key)",
                                  got=text, allowed="e.g. example.org/log+1a2b3c4d+AQ...")
    raw = decode_base64(material, "key")
    if len(raw) != 1 + KEY_SIZE or raw[0] not in {t.value for t in SignatureType}:
        raise InvalidInput.single("key", "the key must be a type byte 0x01 or 0x04 and 32 key bytes",
                                  got=_size(raw), allowed="33 bytes starting 0x01 or 0x04")
    key = VerifierKey(name, SignatureType(raw[0]), raw[1:])
    if key.key_id != int(hex_id, 16):
        raise InvalidInput.single("key", "the key ID does not match the name and public key",
                                  got=hex_id, allowed=f"{key.key_id:08x}")
    return key


def encode_signer_key(name: str, seed: bytes) -> str:
    """``PRIVATE+KEY+name+hex8(key ID)+base64(0x01 || seed)``: an Ed25519 signer key text.

    Raises:
        InvalidInput: the name is not a valid key name, or the seed is not 32 bytes.
    """
    key = VerifierKey(name, SignatureType.ED25519, public_key_of(seed))
    material = base64.b64encode(bytes([SignatureType.ED25519.value]) + seed).decode("ascii")
    return f"PRIVATE+KEY+{name}+{key.key_id:08x}+{material}"


def parse_signer_key(text: str) -> tuple[str, bytes]:
    """The key name and the 32-byte Ed25519 seed in a signer key text.

    Raises:
        InvalidInput: the text is not ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``, or
            the key ID does not match.
    """
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _is_hex(parts[3]):
        raise InvalidInput.single("signer key", "not a signer key",
                                  allowed="PRIVATE+KEY+name+hex8(key ID)+base64(0x01 || seed)")
    raw = decode_base64(parts[4], "signer key")
    if len(raw) != 1 + KEY_SIZE or raw[0] != SignatureType.ED25519.value:
        raise InvalidInput.single("signer key", "the key must be 0x01 and a 32-byte Ed25519 seed",
                                  got=_size(raw), allowed="33 bytes starting 0x01")
    name, seed = parts[2], raw[1:]
    if f"{key_id(name, SignatureType.ED25519, public_key_of(seed)):08x}" != parts[3].lower():
        raise InvalidInput.single("signer key", "the key ID does not match the name and key",
                                  got=parts[3])
    return name, seed


def public_key_of(seed: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a 32-byte seed.

    Raises:
        InvalidInput: the seed is not 32 bytes.
    """
    return _raw_public(_private(seed).public_key())


def sign_ed25519(text: str, name: str, seed: bytes) -> NoteSignature:
    """A type 0x01 signature of ``text`` by the key ``name`` (deterministic, RFC 8032).

    Raises:
        InvalidInput: the text is not a note text, the name or the seed is bad.
    """
    _check_text(text)
    key_hash = key_id(name, SignatureType.ED25519, public_key_of(seed))
    return NoteSignature(name, key_hash, _private(seed).sign(text.encode("utf-8")))


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a type 0x04 cosignature signs: ``cosignature/v1\\ntime T\\n`` + the text.

    Raises:
        InvalidInput: the time is not in ``0 .. 2**63 - 1``.
    """
    check_timestamp(timestamp)
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def sign_cosignature(text: str, name: str, seed: bytes, timestamp: int) -> NoteSignature:
    """A type 0x04 timestamped cosignature of ``text`` by the key ``name`` at ``timestamp``.

    Raises:
        InvalidInput: the text, name, seed or time is bad.
    """
    _check_text(text)
    key_hash = key_id(name, SignatureType.COSIGNATURE_V1, public_key_of(seed))
    signature = _private(seed).sign(cosignature_message(text, timestamp))
    return NoteSignature(name, key_hash, _U64.pack(timestamp) + signature)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The POSIX time a type 0x04 cosignature carries (its first 8 bytes, big-endian).

    Raises:
        InvalidInput: the signature is not 8 + 64 bytes, or the time exceeds 2**63 - 1.
    """
    if len(signature.signature) != 8 + SIGNATURE_SIZE:
        raise InvalidInput.single("cosignature", "a cosignature is an 8-byte time and 64 bytes",
                                  got=_size(signature.signature), allowed="72 bytes")
    timestamp = int(_U64.unpack(signature.signature[:8])[0])
    check_timestamp(timestamp)
    return timestamp


def check_timestamp(timestamp: object) -> None:
    """Refuse a cosignature time that is not a whole number in ``0 .. 2**63 - 1``.

    Raises:
        InvalidInput: naming the time.
    """
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput.single("timestamp", "must be POSIX seconds no larger than 2**63 - 1",
                                  got=timestamp, allowed=f"0..{MAX_TIMESTAMP}")


def verify_signature(key: VerifierKey, text: str, signature: NoteSignature) -> bool:
    """Whether ``signature`` is ``key``'s valid signature of ``text`` (name, ID and bytes).

    Never raises on the received signature: anything wrong is ``False``.
    """
    if signature.name != key.name or signature.key_id != key.key_id:
        return False
    if key.type is SignatureType.ED25519:
        return _ed25519_ok(key.public_key, signature.signature, text.encode("utf-8"))
    if len(signature.signature) != 8 + SIGNATURE_SIZE:
        return False
    timestamp = int(_U64.unpack(signature.signature[:8])[0])
    if timestamp > MAX_TIMESTAMP:
        return False
    message = cosignature_message(text, timestamp)
    return _ed25519_ok(key.public_key, signature.signature[8:], message)


def open_note(note: Note, keys: Sequence[VerifierKey]) -> OpenedNote:
    """Sort ``note``'s signatures by the trusted ``keys`` (see :class:`OpenedNote`).

    A signature matches a key when both its name and its ID do; the others are unknown
    and ignored. The caller rejects the note if ``verified`` is empty and should reject
    it if ``failed`` is not (c2sp.org/signed-note).
    """
    verified: list[NoteSignature] = []
    failed: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    for signature in note.signatures:
        matching = [k for k in keys if (k.name, k.key_id) == (signature.name, signature.key_id)]
        if not matching:
            unknown.append(signature)
        elif any(verify_signature(k, note.text, signature) for k in matching):
            verified.append(signature)
        else:
            failed.append(signature)
    return OpenedNote(note, tuple(verified), tuple(failed), tuple(unknown))


def parse_note(data: bytes | str) -> Note:
    """The note in ``data``: its text and signature lines (no signature is verified).

    Raises:
        InvalidInput: ``data`` is not UTF-8, holds a control character, has no blank
            line before its signatures, or a signature line is malformed (each problem
            names the line).
    """
    text = _decode_utf8(data, "note")
    if not text.endswith("\n"):
        raise InvalidInput.single("note", "a signed note must end with a newline", got=text[-40:])
    cut = text.rfind("\n\n")
    if cut < 0:
        raise InvalidInput.single("note", "no blank line separates the text from the signatures",
                                  allowed="text, a blank line, then '— name signature' lines")
    body, lines = text[: cut + 1], text[cut + 2 :].splitlines()
    if not lines:
        raise InvalidInput.single("note", "a signed note needs at least one signature line")
    base = body.count("\n") + 2
    return Note(body, parse_signature_lines(lines, first_line=base))


def parse_signature_lines(lines: Sequence[str], first_line: int = 1) -> tuple[NoteSignature, ...]:
    """The signatures in ``lines`` (each ``— name base64``, without its newline).

    Raises:
        InvalidInput: listing every malformed line by its number (from ``first_line``).
    """
    problems: list[Problem] = []
    signatures: list[NoteSignature] = []
    for number, line in enumerate(lines, start=first_line):
        try:
            signatures.append(_signature_line(line))
        except InvalidInput as exc:
            problems += [Problem(f"line {number}", p.message, p.got, p.allowed) for p in exc.problems]
    if problems:
        raise InvalidInput(problems)
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInput.single("note", "too many signature lines", got=len(signatures),
                                  allowed=f"at most {MAX_SIGNATURES}")
    return tuple(signatures)


def decode_base64(text: str, where: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded): the bytes, or an error naming ``where``.

    Raises:
        InvalidInput: the text is not canonical standard base64.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput.single(where, f"not standard base64: {exc}", got=text[:80]) from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInput.single(where, "not canonical standard base64", got=text[:80])
    return raw


def _signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise InvalidInput.single("signature", "a signature line starts with '— ' (U+2014, space)",
                                  got=line[:80])
    name, space, blob = line[len(SIGNATURE_PREFIX):].partition(" ")
    if not space or not name or not blob or " " in blob:
        raise InvalidInput.single("signature", "a signature line is '— <key name> <base64>'",
                                  got=line[:80])
    raw = decode_base64(blob, "signature")
    if len(raw) < 5:
        raise InvalidInput.single("signature", "a signature is a 4-byte key ID and the signature",
                                  got=_size(raw), allowed="at least 5 bytes")
    return NoteSignature(name, int(_U32.unpack(raw[:4])[0]), raw[4:])


def _decode_utf8(data: bytes | str, where: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput.single(where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                                  got=data[max(exc.start - 8, 0):exc.start + 8]) from exc


def _check_text(text: object) -> None:
    if not isinstance(text, str) or not text.endswith("\n") or text == "\n":
        raise InvalidInput.single("note text", "must be non-empty text ending in a newline",
                                  got=text if not isinstance(text, str) else text[-40:])
    bad = [c for c in text if c < " " and c != "\n"]
    if bad:
        raise InvalidInput.single("note text", "holds a control character other than newline",
                                  got=bad[0], allowed="printable UTF-8 and newlines")


def _is_hex(text: str) -> bool:
    return len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text)


def _size(value: object) -> str:
    return f"{len(value)} bytes" if isinstance(value, bytes) else repr(value)


def _private(seed: bytes) -> Ed25519PrivateKey:
    if not isinstance(seed, bytes) or len(seed) != KEY_SIZE:
        raise InvalidInput.single("private key", "an Ed25519 seed is 32 raw bytes",
                                  got=_size(seed), allowed="32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _ed25519_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
