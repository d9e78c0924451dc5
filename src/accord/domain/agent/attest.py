"""Usage the host signs: the canonical bytes of a finished job's usage, as the site's own
accounting saw it, and the Ed25519 signature the site's agent puts on them.

The body is UTF-8 JSON with sorted keys and no spaces (``v``, ``site``, ``ref``, ``job_id``,
``local_id``, ``cluster``, ``state``, ``start``, ``end``, ``gpus``, ``gpu_seconds``,
``exit_code``, ``energy_j``, and with site enforcement ``account`` and ``user``: the Slurm
account and local user the job ran as); its SHA-256 (hex) is the attestation's id, carried by the usage
record and by every ledger entry made of it. Anyone holding the site's public key (from the
federation file) can check a body and its signature offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.domain.agent.protocol import Report, SignedUsage
from accord.domain.errors import Forbidden, InvalidInput, Problem

VERSION = 1
MAX_LABEL = 120   # characters of a Slurm account or local user name


@dataclass(frozen=True, slots=True)
class Usage:
    """What the site's accounting says one job consumed."""

    site: str
    ref: str
    job_id: str
    local_id: str
    cluster: str
    state: str
    start: datetime
    end: datetime
    gpus: int
    gpu_seconds: float
    exit_code: int | None
    energy_j: float | None
    account: str = ""    # with site enforcement: the Slurm account the job ran under
    user: str = ""       # and the local user it ran as (both left out of the body when empty)


def key_id(public_raw: bytes) -> str:
    """A key's id: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def canonical(u: Usage) -> str:
    """The usage's canonical text (what is signed)."""
    doc = {
        "v": VERSION,
        "site": u.site,
        "ref": u.ref,
        "job_id": u.job_id,
        "local_id": u.local_id,
        "cluster": u.cluster,
        "state": u.state,
        "start": _stamp(u.start),
        "end": _stamp(u.end),
        "gpus": u.gpus,
        "gpu_seconds": u.gpu_seconds,
        "exit_code": u.exit_code,
        "energy_j": u.energy_j,
        **({"account": u.account} if u.account else {}),
        **({"user": u.user} if u.user else {}),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(body: str) -> str:
    """The attestation's id: SHA-256 (hex) of the body's UTF-8 bytes."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def sign(u: Usage, private_raw: bytes) -> SignedUsage:
    """The usage signed with the site's private key (raw 32 bytes). Raises nothing."""
    key = Ed25519PrivateKey.from_private_bytes(private_raw)
    body = canonical(u)
    public = key.public_key().public_bytes_raw()
    return SignedUsage(body, key_id(public), base64.b64encode(key.sign(body.encode())).decode())


def verify(signed: SignedUsage, site_keys: tuple[bytes, ...]) -> Usage:
    """The usage in ``signed``, after checking its signature against one of the site's keys.

    Raises:
        Forbidden: no key of the site has that id, or the signature does not verify.
        InvalidInput: the body is not a usage document of this version.
    """
    key = next((k for k in site_keys if key_id(k) == signed.key_id), None)
    if key is None:
        raise Forbidden(f"usage.key_id: {signed.key_id!r} is not a key of this site in the federation file")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(
            base64.b64decode(signed.signature, validate=True), signed.body.encode("utf-8")
        )
    except (InvalidSignature, ValueError):
        raise Forbidden(
            f"usage.signature: does not verify with the site's key {signed.key_id} over the body"
        ) from None
    return parse(signed.body)


def parse(body: str) -> Usage:
    """The usage of a canonical body.

    Raises:
        InvalidInput: not JSON, another version, a missing or mistyped field.
    """
    try:
        d: Any = json.loads(body)
        if not isinstance(d, dict) or d.get("v") != VERSION:
            raise ValueError(f"not a version {VERSION} usage document")
        u = Usage(
            str(d["site"]),
            str(d["ref"]),
            str(d["job_id"]),
            str(d["local_id"]),
            str(d["cluster"]),
            str(d["state"]),
            _when(d["start"]),
            _when(d["end"]),
            int(d["gpus"]),
            float(d["gpu_seconds"]),
            d["exit_code"],
            d["energy_j"],
            str(d.get("account", "")),
            str(d.get("user", "")),
        )
        _check_figures(u)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            [
                Problem(
                    "usage.body",
                    f"is not a usage document: {exc}",
                    body[:80],
                    "the canonical usage JSON of docs/design/site-agent.md",
                )
            ]
        ) from None
    if canonical(u) != body:
        raise InvalidInput(
            [
                Problem(
                    "usage.body",
                    "is not in canonical form",
                    body[:80],
                    "sorted keys, no spaces, times as YYYY-MM-DDTHH:MM:SS.ffffffZ",
                )
            ]
        )
    return u


def _check_figures(u: Usage) -> None:
    """Raises ValueError: a figure of ``u`` is of the wrong type or out of range."""
    if not math.isfinite(u.gpu_seconds) or u.gpu_seconds < 0 or u.end < u.start or u.gpus < 0:
        raise ValueError("gpus and gpu_seconds must be finite and from 0, end not before start")
    if u.exit_code is not None and (isinstance(u.exit_code, bool) or not isinstance(u.exit_code, int)):
        raise ValueError("exit_code must be an integer or null")
    e = u.energy_j
    if e is not None and (isinstance(e, bool) or not isinstance(e, int | float) or not 0 <= e < math.inf):
        raise ValueError("energy_j must be a finite number from 0, or null")
    for name, label in (("account", u.account), ("user", u.user)):
        if len(label) > MAX_LABEL or not label.isprintable():
            raise ValueError(f"{name} must be at most {MAX_LABEL} printable characters")


def check_report(u: Usage, report: Report, site: str) -> None:
    """That the signed usage is the report's: same site, reference, state, times, GPUs,
    GPU-seconds, exit code and energy (every figure the usage record takes from the report).

    Raises:
        Forbidden: the usage is another site's or another job's.
        InvalidInput: the report's figures differ from the signed ones.
    """
    if u.site != site or u.ref != report.ref:
        raise Forbidden(
            f"usage: signed for site {u.site!r}, job {u.ref!r}; the report is site "
            f"{site!r}, job {report.ref!r}"
        )
    said = {
        "state": report.state.value,
        "started_at": report.started_at,
        "ended_at": report.ended_at,
        "gpus": report.gpus,
        "gpu_seconds": report.gpu_seconds,
        "exit_code": report.exit_code,
        "energy_j": report.energy_j,
    }
    figures = (u.state, u.start, u.end, u.gpus, u.gpu_seconds, u.exit_code, u.energy_j)
    signed = dict(zip(said, figures, strict=True))
    problems = [
        Problem(
            f"reports[{report.ref}].{k}",
            "differs from the usage it carries",
            _show(v),
            f"{_show(signed[k])}, as signed",
        )
        for k, v in said.items()
        if v != signed[k]
    ]
    if problems:
        raise InvalidInput(problems)


def _show(v: object) -> str:
    return _stamp(v) if isinstance(v, datetime) else repr(v)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(v: object) -> datetime:
    if not isinstance(v, str):
        raise ValueError("times must be strings")
    return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
