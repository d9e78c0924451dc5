"""Ports of witness cosigning (``docs/design/witnesses.md``): where the hub keeps what each
partner's witness cosigned, and how it reaches a witness. Re-exported by :mod:`accord.ports`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """What the hub knows of one witness: the size (and root) it last cosigned — 0 and the
    empty root when none — and the last attempt's error (None: it succeeded)."""

    witness: str
    size: int
    root: bytes
    error: str | None
    attempted_at: datetime
    cosigned_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    """One witness's cosignature of the log's checkpoint ``(origin, size, root)``: the
    signature line exactly as the witness sent it, and the POSIX time it carries."""

    witness: str
    size: int
    root: bytes
    origin: str
    signature: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    """A witness's HTTP answer to ``add-checkpoint``."""

    status: int
    body: str
    content_type: str


class CosignatureStore(Protocol):
    """The hub's record of its witnesses (tables ``witness_status`` and ``witness_cosignatures``)."""

    def statuses(self) -> Mapping[str, WitnessStatus]:
        """Every witness the hub has tried, by name."""
        ...

    def record_failure(self, witness: str, error: str, at: datetime) -> None:
        """The last attempt at ``witness`` failed with ``error`` (its size is kept)."""
        ...

    def record_cosignature(self, cosignature: StoredCosignature, at: datetime) -> None:
        """Store a cosignature and advance the witness's size to it (never backwards)."""
        ...

    def covering(self, size: int) -> Mapping[str, StoredCosignature]:
        """Per witness, its cosignature of the smallest tree of at least ``size`` entries."""
        ...

    def cosignatures(self) -> list[StoredCosignature]:
        """Every stored cosignature, by witness then size."""
        ...

    def prune(self, closed_sizes: Sequence[int]) -> int:
        """Keep per witness only its largest cosignature and, per closed size, its smallest
        covering one; how many were deleted."""
        ...


class WitnessClient(Protocol):
    """How the hub posts ``add-checkpoint`` to a witness."""

    def add_checkpoint(self, url: str, body: bytes, timeout: float) -> WitnessAnswer:
        """POST ``body`` to ``url``/add-checkpoint; the answer, whatever its status.

        Raises:
            Unavailable: the witness cannot be reached (the message says why).
        """
        ...
