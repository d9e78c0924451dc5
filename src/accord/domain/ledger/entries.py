"""The reciprocity ledger: double-entry, append-only, hash-chained (pure).

Every GPU-hour that crosses a border becomes one :class:`Entry` per UTC month it
ran in, priced in the federation's normalised unit at the exchange rate in force
when the job started (the rate is stored on the entry, so a later rate change
never alters it). An entry has two legs that sum to zero: the host partner's
site account is credited, the requesting partner's project account is debited.

Entries are encoded canonically (:func:`canonical`, specified byte by byte in
``docs/design/ledger-format.md``) and chained: ``hash = SHA-256(prev_hash ||
canonical(entry))``. Corrections are new entries that reference the original;
nothing is ever updated or deleted.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from accord.domain.carbon.footprint import month_memos
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Federation
from accord.domain.ledger.usage import UsageRecord, split_by_month

UNIT_QUANTUM = Decimal("0.000001")
GENESIS = bytes(32)
FORMAT_VERSION = 1


class EntryKind(enum.Enum):
    """Why an entry exists."""

    USAGE = "usage"
    REFUND = "refund"
    REVERSAL = "reversal"
    MANUAL_CREDIT = "manual_credit"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry: an account and a signed amount in normalised units."""

    account: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Entry:
    """One balanced ledger transaction. ``seq`` and the hashes are set when appended."""

    id: str
    kind: EntryKind
    agreement: str
    period: str
    requester: str
    host: str
    site: str
    project: str
    units: Decimal
    legs: tuple[Leg, ...]
    job_id: str | None = None
    usage_id: str | None = None
    gpu_model: str | None = None
    gpu_seconds: Decimal | None = None
    rate: Decimal | None = None
    rate_valid_from: str | None = None
    reason: str = ""
    author: str = ""
    references: str | None = None
    memo: tuple[tuple[str, str], ...] = ()
    recorded_at: str = ""
    seq: int = -1
    prev_hash: str = ""
    hash: str = ""

    @property
    def direction(self) -> str:
        """``requester->host``: whose researchers used whose compute."""
        return f"{self.requester}->{self.host}"


def quantize(value: Decimal) -> Decimal:
    """Units rounded to the ledger's precision (1e-6, banker's rounding).

    >>> quantize(Decimal("1.23456789"))
    Decimal('1.234568')
    """
    return value.quantize(UNIT_QUANTUM, rounding=ROUND_HALF_EVEN)


def host_account(host: str, site: str) -> str:
    """The account a host partner's site is credited on."""
    return f"host:{host}/site:{site}"


def requester_account(requester: str, project: str) -> str:
    """The account a requesting partner's project is debited on."""
    return f"requester:{requester}/project:{project}"


def usage_entries(record: UsageRecord, federation: Federation, recorded_at: datetime
                  ) -> tuple[Entry, ...]:
    """The entries a usage record posts: none if it crossed no border, else one per month.

    When the record's energy or emissions are known, each entry carries them as memo
    lines ``energy_kwh`` and ``emissions_kg`` (decimal strings, 6 places), split by month
    in proportion to run time as the units are (:func:`~accord.domain.carbon.footprint.month_memos`).

    Raises:
        InvalidInput: the record names an agreement the federation lacks, or no
            exchange rate covers its GPU model at its start.
    """
    requester = record.requester_partner
    if record.agreement is None or requester is None or requester == record.host_partner:
        return ()
    try:
        federation.agreement(record.agreement)
        rate = federation.rate(record.gpu_model, record.start)
    except Exception as exc:  # NotFound: turn into a located problem
        raise InvalidInput([Problem("usage", str(exc), record.id)]) from exc
    units_per_hour = Decimal(repr(rate.units_per_gpu_hour))
    shares = split_by_month(record)
    memos = month_memos(record, shares)
    if record.attestation is not None:   # the host's signed usage this entry charges
        memos = [(*m, ("usage_attestation", record.attestation)) for m in memos]
    out = []
    for share, memo in zip(shares, memos, strict=True):
        gpu_seconds = Decimal(repr(round(share.gpu_seconds, 6)))
        units = quantize(gpu_seconds / Decimal(3600) * units_per_hour)
        suffix = f"#{share.period}" if len(shares) > 1 else ""
        out.append(Entry(
            id=f"usage:{record.id}{suffix}", kind=EntryKind.USAGE, agreement=record.agreement,
            period=share.period, requester=requester, host=record.host_partner,
            site=record.site, project=record.project, units=units,
            legs=_legs(record.host_partner, record.site, requester, record.project, units),
            job_id=record.job_id, usage_id=record.id, gpu_model=record.gpu_model,
            gpu_seconds=gpu_seconds, rate=units_per_hour,
            rate_valid_from=rate.valid_from.isoformat(), memo=memo,
            recorded_at=_stamp(recorded_at)))
    return tuple(out)


def correction(
    original: Entry,
    kind: EntryKind,
    units: Decimal,
    reason: str,
    author: str,
    period: str,
    recorded_at: datetime,
    correction_id: str,
) -> Entry:
    """A correcting entry: a refund or reversal gives units back to the requester.

    ``units`` is positive; a REFUND/REVERSAL moves it back from host to requester,
    a MANUAL_CREDIT moves it to the host. ``period`` is the first open period.

    Raises:
        InvalidInput: no reason or author, a non-positive amount, a USAGE kind, or a
            refund/reversal larger than the original.
    """
    problems = []
    if not reason.strip():
        problems.append(Problem("reason", "a correction needs a reason", allowed="some text"))
    if not author.strip():
        problems.append(Problem("author", "a correction needs an author", allowed="a name"))
    if units <= 0:
        problems.append(Problem("units", "must be positive", str(units), "a number > 0"))
    elif quantize(units) == 0:
        problems.append(Problem("units", "rounds to zero at the ledger's precision", f"{units:f}",
                                f"at least {UNIT_QUANTUM}"))
    if kind is EntryKind.USAGE:
        problems.append(Problem("kind", "usage is not a correction", kind.value,
                                "refund, reversal, manual_credit"))
    if kind is not EntryKind.MANUAL_CREDIT and units > original.units:
        problems.append(Problem("units", "exceeds the original entry", str(units),
                                f"at most {original.units}"))
    if problems:
        raise InvalidInput(problems)
    amount = quantize(units) if kind is EntryKind.MANUAL_CREDIT else -quantize(units)
    return replace(
        original, id=correction_id, kind=kind, period=period, units=amount,
        legs=_legs(original.host, original.site, original.requester, original.project, amount),
        reason=reason, author=author, references=original.id, recorded_at=_stamp(recorded_at),
        memo=(), seq=-1, prev_hash="", hash="")


def _legs(host: str, site: str, requester: str, project: str, units: Decimal) -> tuple[Leg, ...]:
    return (Leg(host_account(host, site), units), Leg(requester_account(requester, project), -units))


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- canonical form and chain

def to_document(e: Entry) -> dict[str, Any]:
    """The entry as the plain mapping that :func:`canonical` encodes (hash excluded)."""
    return {
        "v": FORMAT_VERSION, "seq": e.seq, "id": e.id, "kind": e.kind.value,
        "agreement": e.agreement, "period": e.period, "requester": e.requester,
        "host": e.host, "site": e.site, "project": e.project, "units": str(e.units),
        "legs": [[leg.account, str(leg.amount)] for leg in e.legs],
        "job_id": e.job_id, "usage_id": e.usage_id, "gpu_model": e.gpu_model,
        "gpu_seconds": None if e.gpu_seconds is None else str(e.gpu_seconds),
        "rate": None if e.rate is None else str(e.rate), "rate_valid_from": e.rate_valid_from,
        "reason": e.reason, "author": e.author, "references": e.references,
        "memo": dict(e.memo), "recorded_at": e.recorded_at,
        "prev_hash": e.prev_hash,
    }


def canonical(e: Entry) -> bytes:
    """The entry's canonical bytes: UTF-8 JSON, keys sorted, no spaces, decimals as strings.

    >>> e = Entry("x", EntryKind.USAGE, "a", "2026-10", "uk", "fr", "s", "p", Decimal("1"), ())
    >>> canonical(e)[:40]
    b'{"agreement":"a","author":"","gpu_model"'
    """
    return json.dumps(to_document(e), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def from_document(d: Mapping[str, Any], entry_hash: str) -> Entry:
    """Rebuild an entry from its document (inverse of :func:`to_document`).

    Raises:
        InvalidInput: a field is missing or malformed.
    """
    try:
        return Entry(
            id=d["id"], kind=EntryKind(d["kind"]), agreement=d["agreement"], period=d["period"],
            requester=d["requester"], host=d["host"], site=d["site"], project=d["project"],
            units=Decimal(d["units"]), legs=tuple(Leg(a, Decimal(x)) for a, x in d["legs"]),
            job_id=d["job_id"], usage_id=d["usage_id"], gpu_model=d["gpu_model"],
            gpu_seconds=None if d["gpu_seconds"] is None else Decimal(d["gpu_seconds"]),
            rate=None if d["rate"] is None else Decimal(d["rate"]),
            rate_valid_from=d["rate_valid_from"], reason=d["reason"], author=d["author"],
            references=d["references"], memo=tuple(sorted(d["memo"].items())),
            recorded_at=d["recorded_at"], seq=d["seq"], prev_hash=d["prev_hash"], hash=entry_hash)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidInput([Problem("entry", f"malformed ledger entry: {exc!r}")]) from exc


def chain_hash(prev_hash: str, body: bytes) -> str:
    """``SHA-256(prev_hash_bytes || body)`` as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


def seal(e: Entry, seq: int, prev_hash: str) -> tuple[Entry, bytes]:
    """Give the entry its place in the chain: (the sealed entry, its canonical bytes).

    Raises:
        InvalidInput: the legs do not balance.
    """
    check_balanced(e)
    placed = replace(e, seq=seq, prev_hash=prev_hash, hash="")
    body = canonical(placed)
    return replace(placed, hash=chain_hash(prev_hash, body)), body


def check_balanced(e: Entry) -> None:
    """Raise InvalidInput unless the entry's legs sum to exactly zero."""
    total = sum((leg.amount for leg in e.legs), Decimal(0))
    if total != 0 or len(e.legs) < 2:
        raise InvalidInput([Problem("legs", "an entry's legs must sum to zero", str(total), "0")])


# ---------------------------------------------------------------- balances

@dataclass(frozen=True, slots=True)
class Balances:
    """Totals derived from entries (all in normalised units)."""

    by_account: Mapping[str, Decimal] = field(default_factory=dict)
    by_direction: Mapping[str, Decimal] = field(default_factory=dict)
    by_site: Mapping[str, Decimal] = field(default_factory=dict)
    by_project: Mapping[str, Decimal] = field(default_factory=dict)
    net_by_partner: Mapping[str, Decimal] = field(default_factory=dict)
    total: Decimal = Decimal(0)
    entries: int = 0


def balances(entries: Iterable[Entry]) -> Balances:
    """Sum entries per account, direction, site, project and partner.

    ``net_by_partner`` is what a partner provided minus what it used: positive
    means the others owe it compute. ``total`` is the sum of all legs: always 0.
    """
    acc: dict[str, Decimal] = {}
    direction: dict[str, Decimal] = {}
    site: dict[str, Decimal] = {}
    project: dict[str, Decimal] = {}
    net: dict[str, Decimal] = {}
    total, count = Decimal(0), 0
    for e in entries:
        count += 1
        for leg in e.legs:
            acc[leg.account] = acc.get(leg.account, Decimal(0)) + leg.amount
            total += leg.amount
        direction[e.direction] = direction.get(e.direction, Decimal(0)) + e.units
        site[e.site] = site.get(e.site, Decimal(0)) + e.units
        key = f"{e.requester}/{e.project}"
        project[key] = project.get(key, Decimal(0)) + e.units
        net[e.host] = net.get(e.host, Decimal(0)) + e.units
        net[e.requester] = net.get(e.requester, Decimal(0)) - e.units
    return Balances(acc, direction, site, project, net, total, count)


def next_period(period: str) -> str:
    """The month after ``YYYY-MM``.

    >>> next_period("2026-12")
    '2027-01'
    """
    year, month = (int(x) for x in period.split("-"))
    return f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"


def parse_period(text: str) -> str:
    """Validate a ``YYYY-MM`` period: ASCII digits, a four-digit year from 1000 to 9998
    (so the period and the month after it both print and parse as ``YYYY-MM``).

    >>> parse_period("2026-10")
    '2026-10'

    Raises:
        InvalidInput: it is not one (``strptime`` alone would take ``2026-1``, non-ASCII
            digits and years that do not print back as four digits).
    """
    if not isinstance(text, str) or not re.fullmatch(r"[1-9][0-9]{3}-(0[1-9]|1[0-2])", text,
                                                      re.ASCII) or text[:4] == "9999":
        raise InvalidInput([Problem("period", "is not a month", str(text)[:40],
                                    "YYYY-MM from 1000-01 to 9998-12, e.g. 2026-10")])
    return text


@dataclass(frozen=True, slots=True)
class Closure:
    """A closed period: the tree it was closed at and the signed head."""

    period: str
    tree_size: int
    root: str
    signed_head: str
    closed_at: datetime
