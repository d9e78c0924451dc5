"""A witness's ``add-checkpoint`` (C2SP ``tlog-witness``), as pure decisions.

A request body is an ``old N`` line, zero to 63 consistency proof lines (one base64 hash
each), an empty line, then a signed checkpoint (:mod:`accord.domain.ledger.checkpoint`).
The witness answers with the first check that fails, in the spec's order:

====================  ======  =========================================================
verdict               status  when
====================  ======  =========================================================
``MALFORMED``         400     the body cannot be parsed, or ``old`` exceeds the size
``UNKNOWN_LOG``       404     the checkpoint's origin is not a log the witness follows
``BAD_SIGNATURE``     403     no signature of a trusted key for that origin verifies
``CONFLICT``          409     ``old`` is not the size the witness last cosigned (the
                              answer says that size), or the sizes are equal and the
                              roots are not
``BAD_PROOF``         422     the proof does not show the new tree extends the old one
``COSIGNED``          200     all holds: the witness stores the new size and root, then
                              answers with its cosignature line
====================  ======  =========================================================

:func:`admit` makes the checks that need no stored state; :func:`judge` the ones
against the state. Storing the new state must be a compare-and-swap on the state judged
(see ``docs/design/witnesses.md``): if another request moved it in between, judge again.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from accord.domain.errors import Forbidden, InvalidInput
from accord.domain.ledger.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from accord.domain.ledger.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from accord.domain.ledger.note import VerifierKey, decode_base64, parse_note

MAX_PROOF_LINES = 63
"""Consistency proof lines a request may carry (a client MUST NOT send more)."""
MAX_STORED_SIZE = 2**63 - 1
"""The largest tree size a witness stores (a signed 64-bit column); larger ones are refused."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The media type of a 409 answer that gives the witness's current size."""
_OLD = re.compile(r"old (0|[1-9][0-9]*)")


class Verdict(enum.Enum):
    """The outcome of an ``add-checkpoint`` request; its value is the HTTP status."""

    COSIGNED = 200
    MALFORMED = 400
    BAD_SIGNATURE = 403
    UNKNOWN_LOG = 404
    CONFLICT = 409
    BAD_PROOF = 422

    @property
    def status(self) -> int:
        """The HTTP status code tlog-witness prescribes for this outcome."""
        return int(self.value)


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed request: the size the client believes the witness holds, the proof from
    it, and the signed checkpoint note (text and signature lines, still unverified)."""

    old_size: int
    proof: tuple[bytes, ...]
    signed_checkpoint: str


@dataclass(frozen=True, slots=True)
class LogState:
    """What a witness holds for one log: the size and root it last cosigned."""

    size: int
    root: bytes


EMPTY_STATE = LogState(0, EMPTY_ROOT)
"""The state of a log the witness has never cosigned."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A request that passed :func:`admit`: its checkpoint's log signature verifies."""

    request: AddCheckpoint
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict, why, and for ``CONFLICT`` on the old size the witness's current size."""

    verdict: Verdict
    reason: str
    current_size: int | None = None


def encode_add_checkpoint(old_size: int, proof: Sequence[bytes], signed_checkpoint: str) -> bytes:
    """The request body for ``POST <prefix>/add-checkpoint``.

    Raises:
        InvalidInput: ``old_size`` is negative, the proof has more than 63 hashes or one
            that is not 32 bytes.
    """
    if type(old_size) is not int or old_size < 0:
        raise InvalidInput.single("old_size", "must be a whole number", got=old_size)
    if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
        raise InvalidInput.single("proof", "at most 63 hashes of 32 bytes", got=len(proof))
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof), ""]
    return ("\n".join(lines) + "\n" + signed_checkpoint).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request in ``body``.

    Raises:
        InvalidInput: the body is not UTF-8, its first line is not ``old N`` (decimal, no
            leading zero), a proof line is not base64 of 32 bytes, there are more than 63
            proof lines, or no empty line precedes the checkpoint (the problem names the line).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput.single("body", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise InvalidInput.single("body", "no empty line ends the old size and proof lines",
                                  allowed="'old N', proof lines, an empty line, the checkpoint")
    first, *proof_lines = head.split("\n")
    match = _OLD.fullmatch(first)
    if not match:
        raise InvalidInput.single("line 1 (old size)", "must be 'old ' and a decimal size, no leading "
                                  "zero", got=first[:80], allowed="e.g. 'old 0' or 'old 1024'")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise InvalidInput.single("proof", "too many consistency proof lines", got=len(proof_lines),
                                  allowed=f"at most {MAX_PROOF_LINES}")
    proof = tuple(_proof_hash(line, n) for n, line in enumerate(proof_lines, start=2))
    return AddCheckpoint(int(match.group(1)), proof, checkpoint)


def admit(body: bytes, logs: Mapping[str, Sequence[VerifierKey]]) -> Submission | Judgement:
    """The checks that need no stored state: the parse, the origin, the log's signature, and
    ``old`` not above the size. ``logs`` maps each followed origin to its trusted keys.

    Returns the :class:`Submission` to :func:`judge`, or the :class:`Judgement` refusing it.
    """
    try:
        request = parse_add_checkpoint(body)
        checkpoint = parse_checkpoint(parse_note(request.signed_checkpoint).text)
    except InvalidInput as exc:
        return Judgement(Verdict.MALFORMED, str(exc))
    keys = logs.get(checkpoint.origin)
    if keys is None:
        return Judgement(Verdict.UNKNOWN_LOG, f"this witness does not follow the log "
                         f"{checkpoint.origin!r} (it follows: {', '.join(sorted(logs)) or 'none'})")
    try:
        open_checkpoint(request.signed_checkpoint, keys)
    except Forbidden as exc:
        return Judgement(Verdict.BAD_SIGNATURE, str(exc))
    if request.old_size > checkpoint.size:
        return Judgement(Verdict.MALFORMED, f"old size {request.old_size} is larger than the "
                         f"checkpoint's size {checkpoint.size}")
    if checkpoint.size > MAX_STORED_SIZE:
        return Judgement(Verdict.MALFORMED, f"tree size {checkpoint.size} exceeds 2**63 - 1")
    return Submission(request, checkpoint)


def judge(submission: Submission, stored: LogState) -> Judgement:
    """The checks against what the witness holds for the log (``stored``).

    ``COSIGNED`` means: store ``(checkpoint.size, checkpoint.root)`` if the state is still
    ``stored``, then cosign.
    """
    old, checkpoint = submission.request.old_size, submission.checkpoint
    if old != stored.size:
        return Judgement(Verdict.CONFLICT, f"old size {old} is not the size this witness last "
                         f"cosigned for {checkpoint.origin!r}: {stored.size}", stored.size)
    if checkpoint.size == stored.size and checkpoint.root != stored.root:
        return Judgement(Verdict.CONFLICT, f"a different root for size {stored.size} of "
                         f"{checkpoint.origin!r} was cosigned: this is a fork of the log")
    if not verify_consistency(old, checkpoint.size, stored.root, checkpoint.root,
                              submission.request.proof):
        return Judgement(Verdict.BAD_PROOF, f"the consistency proof from size {old} to "
                         f"{checkpoint.size} does not verify against the stored root")
    return Judgement(Verdict.COSIGNED, f"{checkpoint.origin} {old} -> {checkpoint.size}")


def _proof_hash(line: str, number: int) -> bytes:
    raw = decode_base64(line, f"line {number} (proof hash)")
    if len(raw) != HASH_SIZE:
        raise InvalidInput.single(f"line {number} (proof hash)", "a proof hash is 32 bytes",
                                  got=f"{len(raw)} bytes", allowed="32 bytes in base64")
    return raw
