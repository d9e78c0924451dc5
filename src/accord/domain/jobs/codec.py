"""Plain-data encoding of jobs: one mapping used by the store, the API and the CLI.

Times are ISO 8601 strings in UTC; enums are their values. ``decode_*`` trusts
its input (it reads what ``encode_*`` wrote), so it is not for user documents:
those go through :mod:`accord.domain.jobs.spec`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Any, get_args, get_origin, get_type_hints

from accord.domain.carbon.footprint import energy_basis
from accord.domain.jobs.model import (
    DeferKind,
    Deferral,
    DispatchStatus,
    Event,
    EventKind,
    Hold,
    HoldKind,
    Job,
    JobSpec,
    JobState,
    Outcome,
    Placement,
    Priority,
    StoryEntry,
)
from accord.domain.ledger.usage import UsageRecord


def iso(t: datetime | None) -> str | None:
    """ISO 8601 text of ``t`` (or None)."""
    return None if t is None else t.isoformat()


def parse_iso(text: str | None) -> datetime | None:
    """The time ``text`` names (or None)."""
    return None if text is None else datetime.fromisoformat(text)


Convert = Callable[[Any], Any] | None   # None: the value as it is


def _spec_codecs() -> tuple[tuple[str, Convert, Convert, bool, bool], ...]:
    """Per field of :class:`JobSpec`, in its order: the name, how its value is encoded and
    decoded (by its type: a tuple is a list, a time ISO 8601 text, the rest as it is),
    whether None is left out, and whether a stored spec may lack it (it has a default)."""
    hints = get_type_hints(JobSpec)
    out = []
    for f in fields(JobSpec):
        hint = hints[f.name]
        enc: Convert = None
        dec: Convert = None
        if get_origin(hint) is tuple:
            enc, dec = list, tuple
        elif datetime in get_args(hint):
            enc, dec = iso, parse_iso
        optional = f.default is not MISSING or f.default_factory is not MISSING
        omit = bool(f.metadata.get("omit_none") or f.metadata.get("omit_empty"))
        out.append((f.name, enc, dec, omit, optional))
    return tuple(out)


_SPEC_CODECS = _spec_codecs()


def encode_spec(spec: JobSpec) -> dict[str, Any]:
    """The spec as JSON-ready data: every field of :class:`JobSpec` in its order (one marked
    ``omit_none`` left out when None, ``omit_empty`` when empty: specs stored before such a
    field existed keep their ``spec_hash``)."""
    out: dict[str, Any] = {}
    for name, enc, _, omit, _ in _SPEC_CODECS:
        value = getattr(spec, name)
        if omit and (value is None or value == ()):
            continue
        out[name] = value if value is None or enc is None else enc(value)
    return out


def decode_spec(d: dict[str, Any]) -> JobSpec:
    """Inverse of :func:`encode_spec` (a field with a default may be missing).

    Raises:
        KeyError: a field without a default is missing.
    """
    values: dict[str, Any] = {}
    for name, _, dec, _, optional in _SPEC_CODECS:
        if name in d:
            value = d[name]
            values[name] = value if value is None or dec is None else dec(value)
        elif not optional:
            raise KeyError(name)
    return JobSpec(**values)


def spec_hash(spec: JobSpec) -> str:
    """A stable digest of the spec, to tell a retried submission from a different one."""
    text = json.dumps(encode_spec(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode_event(e: Event) -> dict[str, Any]:
    """An event as JSON-ready data."""
    return {"kind": e.kind.value, "at": iso(e.at), "reason": e.reason, "data": dict(e.data),
            "stimulus": e.stimulus}


def decode_event(d: dict[str, Any]) -> Event:
    """Inverse of :func:`encode_event`."""
    at = parse_iso(d["at"])
    assert at is not None
    return Event(EventKind(d["kind"]), at, d["reason"], tuple(sorted(d["data"].items())),
                 d.get("stimulus") or "")


def encode_entry(s: StoryEntry) -> dict[str, Any]:
    """A story entry as JSON-ready data."""
    return {
        "seq": s.seq,
        "before": s.before.value if s.before else None,
        "after": s.after.value,
        **encode_event(s.event),
    }


def decode_entry(d: dict[str, Any]) -> StoryEntry:
    """Inverse of :func:`encode_entry`."""
    before = JobState(d["before"]) if d["before"] else None
    return StoryEntry(d["seq"], decode_event(d), before, JobState(d["after"]))


def encode_outcome(o: Outcome | None) -> dict[str, Any] | None:
    """An outcome as JSON-ready data."""
    if o is None:
        return None
    d = {
        "exit_code": o.exit_code,
        "started_at": iso(o.started_at),
        "ended_at": iso(o.ended_at),
        "gpu_seconds": o.gpu_seconds,
        "reason": o.reason,
        "gpus": o.gpus,
        "energy_j": o.energy_j,
    }
    if o.attestation is not None:
        d["attestation"] = o.attestation
    if o.account or o.local_user:
        d["account"], d["local_user"] = o.account, o.local_user
    return d


def decode_outcome(d: dict[str, Any] | None) -> Outcome | None:
    """Inverse of :func:`encode_outcome`."""
    if d is None:
        return None
    return Outcome(d["exit_code"], parse_iso(d["started_at"]), parse_iso(d["ended_at"]),
                   float(d["gpu_seconds"]), d["reason"], int(d.get("gpus", 0)), d.get("energy_j"),
                   d.get("attestation"), str(d.get("account", "")), str(d.get("local_user", "")))


def encode_job(job: Job, *, with_story: bool = True) -> dict[str, Any]:
    """A job as JSON-ready data (the API's and CLI's view of it)."""
    p = job.placement
    out: dict[str, Any] = {
        "id": job.id,
        "state": job.state.value,
        "reason": job.reason,
        "owner": job.owner,
        "idempotency_key": job.idempotency_key,
        "submitted_at": iso(job.submitted_at),
        "not_before": iso(job.not_before),
        "site": p.site if p else None,
        "pool": p.pool if p else None,
        "agreement": p.agreement if p else None,
        "backend_ref": job.backend_ref,
        "gpu_indices": list(job.gpu_indices),
        "outcome": encode_outcome(job.outcome),
        "spec": encode_spec(job.spec),
        "version": job.version,
        **encode_substate(job),
    }
    if with_story:
        out["story"] = [encode_entry(s) for s in job.story]
    return out


def encode_substate(job: Job) -> dict[str, Any]:
    """The sub-states the lifecycle machine keeps (see :class:`~accord.domain.jobs.model.Job`)."""
    d, h = job.deferral, job.hold
    return {
        "dispatch": job.dispatch.value,
        "deferral": None if d is None else {"kind": d.kind.value, "until": iso(d.until), "site": d.site,
                                            "recheck_at": iso(d.recheck_at)},
        "hold": None if h is None else {"kind": h.kind.value, "rule": h.rule, "site": h.site,
                                        "pool": h.pool, "allocations": h.allocations},
        "priority": job.priority.value,
        "cancel_requested": job.cancel,
        "window_end": iso(job.window_end),
        "start_came": job.start_came,
    }


def compact_substate(job: Job) -> dict[str, Any]:
    """The sub-states that differ from a new job's (what the store keeps: most jobs have
    none, so most rows hold ``{}``); :func:`decode_substate` reads it back."""
    return {k: v for k, v in encode_substate(job).items() if v != _NEW_JOB.get(k)}


def decode_substate(d: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_substate`: the Job fields (missing keys keep their defaults)."""
    out: dict[str, Any] = {}
    if "dispatch" in d:
        out["dispatch"] = DispatchStatus(d["dispatch"])
    if d.get("deferral"):
        x = d["deferral"]
        until = parse_iso(x["until"])
        assert until is not None
        out["deferral"] = Deferral(DeferKind(x["kind"]), until, x.get("site"), parse_iso(x.get("recheck_at")))
    if d.get("hold"):
        x = d["hold"]
        out["hold"] = Hold(HoldKind(x["kind"]), x.get("rule") or "", x.get("site"), x.get("pool"),
                           x.get("allocations"))
    if "priority" in d:
        out["priority"] = Priority(d["priority"])
    out["cancel"] = d.get("cancel_requested")
    out["window_end"] = parse_iso(d.get("window_end"))
    out["start_came"] = bool(d.get("start_came", False))
    return out


def decode_placement(site: str | None, pool: str | None, agreement: str | None) -> Placement | None:
    """A placement from its three stored columns."""
    if site is None or pool is None:
        return None
    return Placement(site, pool, agreement)


def encode_usage(r: UsageRecord) -> dict[str, Any]:
    """A usage record with its energy and emissions as JSON-ready data.

    ``energy_basis`` is ``measured`` (the scheduler's energy x PUE), ``model`` (GPUs x
    power x host share x PUE) or None; ``emissions_kg`` and ``mean_intensity_g_per_kwh``
    are derived from ``emissions_g`` and are None when it is.
    """
    basis = energy_basis(r)
    mean = r.emissions_g / r.energy_kwh if r.emissions_g is not None and r.energy_kwh else None
    return {
        "id": r.id, "job_id": r.job_id, "site": r.site, "pool": r.pool, "gpu_model": r.gpu_model,
        "host_partner": r.host_partner, "requester_partner": r.requester_partner,
        "agreement": r.agreement, "project": r.project, "start": iso(r.start), "end": iso(r.end),
        "gpus": r.gpus, "gpu_seconds": r.gpu_seconds, "gpu_hours": r.gpu_seconds / 3600,
        "state": r.state, "exit_code": r.exit_code, "energy_j": r.energy_j,
        "energy_kwh": r.energy_kwh, "energy_basis": basis.value if basis else None,
        "emissions_g": r.emissions_g,
        "emissions_kg": None if r.emissions_g is None else r.emissions_g / 1000,
        "mean_intensity_g_per_kwh": mean,
        "intensity_source": r.intensity_source,
        "attestation": r.attestation,
        "account": r.account,
        "local_user": r.local_user,
    }


_NEW_JOB = {"dispatch": DispatchStatus.NONE.value, "deferral": None, "hold": None,
            "priority": Priority.NORMAL.value, "cancel_requested": None, "window_end": None,
            "start_came": False}
