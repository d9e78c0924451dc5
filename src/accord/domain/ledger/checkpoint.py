"""C2SP ``tlog-checkpoint`` and ``tlog-cosignature`` over the ledger's tree (pure).

A checkpoint is a signed note (:mod:`accord.domain.ledger.note`) whose text is, line by
line (c2sp.org/tlog-checkpoint):

1. the **origin**, the log's unique name, e.g. ``accord.example/ledger/accord-uk``;
2. the **tree size** in ASCII decimal, no leading zeroes (``0`` for the empty tree);
3. the **root hash**, standard base64 of the RFC 6962 / RFC 9162 Merkle tree hash
   (:mod:`accord.domain.ledger.merkle`);
4. optional non-empty **extension lines** (opaque; Accord writes none).

The log signs the text with its Ed25519 key (signature type 0x01; the key name is the
origin); each witness adds a timestamped cosignature (type 0x04, c2sp.org/tlog-cosignature)
over ``cosignature/v1\\ntime T\\n`` + the same text, stating that as of ``T`` this is the
largest tree of that log it has seen and that it is consistent with all earlier ones.

The ledger's own signed tree heads (:mod:`accord.domain.ledger.signing`) stay as they
are: :func:`checkpoint_for_head` gives the checkpoint of a head, signed with the same
operator key, so both say the same (size, root) in two formats.

>>> seed = bytes(range(32))
>>> cp = Checkpoint("example.org/log", 0, EMPTY_ROOT)
>>> from accord.domain.ledger.note import public_key_of
>>> key = log_key("example.org/log", public_key_of(seed))
>>> open_checkpoint(sign_checkpoint(cp, seed), [key]) == cp
True
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from accord.domain.errors import Forbidden, InvalidInput, Problem
from accord.domain.ledger.merkle import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE
from accord.domain.ledger.note import (
    Note,
    NoteSignature,
    SignatureType,
    VerifierKey,
    check_key_name,
    decode_base64,
    open_note,
    parse_note,
    sign_cosignature,
    sign_ed25519,
    verify_signature,
)
from accord.domain.ledger.signing import TreeHead

ORIGIN_PREFIX = "accord.example/ledger/"
"""The default origin of a ledger is this followed by its log id (configurable)."""
_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's (origin, size, root) and any extension lines: a checkpoint's note text.

    Raises:
        InvalidInput: listing every field that is out of range (an empty origin or one
            with a newline or control character, a size outside ``0 .. 2**64 - 1``, a root
            that is not 32 bytes, the empty tree with another root, an empty extension
            line or one with a newline).
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = _checkpoint_problems(self)
        if problems:
            raise InvalidInput(problems)

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending ``\\n``."""
        root = base64.b64encode(self.root).decode("ascii")
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint whose note text is exactly ``text`` (signatures already removed).

    Raises:
        InvalidInput: fewer than three lines, a missing final newline, an empty line, a size
            that is not canonical decimal, a root that is not base64 of 32 bytes (each
            problem names the line).
    """
    if not text.endswith("\n"):
        raise InvalidInput.single("checkpoint", "the note text must end with a newline", got=text[-40:])
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise InvalidInput.single("checkpoint", "a checkpoint has at least three lines "
                                  "(origin, tree size, root hash)", got=len(lines), allowed=">= 3")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise InvalidInput.single("line 2 (tree size)", "must be ASCII decimal with no leading zero",
                                  got=size_text[:40], allowed=f"0..{MAX_TREE_SIZE}")
    root = decode_base64(root_text, "line 3 (root hash)")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def default_origin(log_id: str) -> str:
    """The default origin of the ledger ``log_id``: ``accord.example/ledger/<log id>``.

    Raises:
        InvalidInput: the result is not a valid key name (``log_id`` holds a space or ``+``).
    """
    origin = ORIGIN_PREFIX + log_id
    check_key_name(origin, "origin")
    return origin


def log_key(origin: str, public_key: bytes) -> VerifierKey:
    """The verifier key a witness trusts for the log ``origin`` (type 0x01, named as it).

    Raises:
        InvalidInput: the origin is not a valid key name, or the key is not 32 bytes.
    """
    return VerifierKey(origin, SignatureType.ED25519, public_key)


def witness_key(name: str, public_key: bytes) -> VerifierKey:
    """The verifier key of the witness ``name``'s cosignatures (type 0x04).

    Raises:
        InvalidInput: the name is not a valid key name, or the key is not 32 bytes.
    """
    return VerifierKey(name, SignatureType.COSIGNATURE_V1, public_key)


def sign_checkpoint(checkpoint: Checkpoint, seed: bytes, key_name: str | None = None) -> str:
    """The signed note of ``checkpoint``, signed by the log's Ed25519 seed.

    The key name defaults to the origin, as the spec recommends.

    Raises:
        InvalidInput: the key name is not valid, or the seed is not 32 bytes.
    """
    name = checkpoint.origin if key_name is None else key_name
    body = checkpoint.body()
    return Note(body, (sign_ed25519(body, name, seed),)).encode()


def checkpoint_for_head(head: TreeHead, origin: str) -> Checkpoint:
    """The checkpoint saying what ``head`` says: its size and root, under ``origin``.

    The head's period, time and log id are not in the checkpoint (no extension lines:
    the spec advises against them), so one (size, root) has one checkpoint.

    Raises:
        InvalidInput: the origin is not valid.
    """
    return Checkpoint(origin, head.tree_size, head.root)


def signed_checkpoint_for_head(head: TreeHead, origin: str, seed: bytes) -> str:
    """:func:`checkpoint_for_head` signed with the operator's ledger key (raw seed).

    Raises:
        InvalidInput: the origin is not valid, or the seed is not 32 bytes.
    """
    return sign_checkpoint(checkpoint_for_head(head, origin), seed)


def open_checkpoint(data: bytes | str, keys: Sequence[VerifierKey]) -> Checkpoint:
    """The checkpoint in a signed note, once a trusted log key's signature verifies.

    Signatures of keys not in ``keys`` are ignored (cosignatures among them).

    Raises:
        InvalidInput: the note or its checkpoint text is malformed.
        Forbidden: no signature of a trusted key verifies, or one of them fails.
    """
    note = parse_note(data)
    checkpoint = parse_checkpoint(note.text)
    opened = open_note(note, keys)
    if opened.failed:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in opened.failed)
        raise Forbidden(f"checkpoint of {checkpoint.origin!r}: the signature of {names} does not verify")
    if not opened.verified:
        raise Forbidden(f"checkpoint of {checkpoint.origin!r} carries no signature of a trusted key "
                        f"(trusted: {', '.join(k.encode() for k in keys) or 'none'})")
    return checkpoint


def cosign(checkpoint: Checkpoint, name: str, seed: bytes, timestamp: int) -> NoteSignature:
    """The witness ``name``'s timestamped cosignature of ``checkpoint`` at POSIX ``timestamp``.

    Raises:
        InvalidInput: the name, seed or time is bad.
    """
    return sign_cosignature(checkpoint.body(), name, seed, timestamp)


def verify_cosignature(checkpoint: Checkpoint, key: VerifierKey, signature: NoteSignature) -> bool:
    """Whether ``signature`` is ``key``'s valid cosignature of ``checkpoint``.

    Never raises on the received signature; ``key`` must be a type 0x04 key (a type 0x01
    key never verifies a cosignature).
    """
    return key.type is SignatureType.COSIGNATURE_V1 and verify_signature(key, checkpoint.body(), signature)


def _checkpoint_problems(cp: Checkpoint) -> list[Problem]:
    problems = []
    if not isinstance(cp.origin, str) or not cp.origin or not _one_line(cp.origin):
        problems.append(Problem("line 1 (origin)", "must be non-empty, one line, no control character",
                                repr(cp.origin), "e.g. 'accord.example/ledger/accord-uk'"))
    if type(cp.size) is not int or not 0 <= cp.size <= MAX_TREE_SIZE:
        problems.append(Problem("line 2 (tree size)", "must be a whole number of leaves",
                                repr(cp.size), f"0..{MAX_TREE_SIZE}"))
    if type(cp.root) is not bytes or len(cp.root) != HASH_SIZE:
        problems.append(Problem("line 3 (root hash)", "must be a 32-byte SHA-256 tree hash",
                                f"{len(cp.root)} bytes" if isinstance(cp.root, bytes) else repr(cp.root),
                                "32 bytes"))
    elif cp.size == 0 and cp.root != EMPTY_ROOT:
        problems.append(Problem("line 3 (root hash)", "the empty tree's root is SHA-256 of nothing",
                                cp.root.hex(), EMPTY_ROOT.hex()))
    for i, line in enumerate(cp.extensions):
        if not isinstance(line, str) or not line or not _one_line(line):
            problems.append(Problem(f"line {4 + i} (extension)", "must be non-empty, one line",
                                    repr(line), "printable text"))
    return problems


def _one_line(text: str) -> bool:
    return all(c >= " " for c in text)
