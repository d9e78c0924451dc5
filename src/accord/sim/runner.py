"""A scenario's inputs and runs: load them (once, :func:`prepare`), simulate one policy on one
federation variant (:func:`simulate`).

The shell around the kernel: it reads the files (federation, trace, intensity data) and
builds the workload; :mod:`accord.sim.sweep` runs every (variant, policy, seed) with it and
scores the runs against the oracle.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from accord.adapters.carbon.files import read_text
from accord.adapters.carbon.profiles import ProfileSource
from accord.adapters.federation_file import load_federation
from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Federation
from accord.domain.jobs.spec import MAX_TIME_LIMIT_S
from accord.domain.placement.place import pool_keys
from accord.domain.traces.trace import (
    HomeRule,
    Trace,
    TraceFormat,
    assign_homes,
    home_rule,
    parse_trace,
    scale,
    sniff_trace,
)
from accord.sim.broker_engine import BrokerEngine
from accord.sim.grid import load_carbon as load_carbon
from accord.sim.kernel import Simulation
from accord.sim.metrics import Run
from accord.sim.model import Engine, Outage, Policy, Settings, Workload, draw_outages, utc_text
from accord.sim.scenario import (
    DEFAULT_START,
    Scenario,
    apply_variant,
    check_outages,
    locate,
    replication_seeds,
    trace_options,
)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Results:
    """Every run's figures, per variant, and notes on the inputs (JSON-ready)."""

    scenario: dict[str, Any]
    variants: list[dict[str, Any]]
    notes: list[str]


def load_trace(s: Scenario) -> Trace:
    """The scenario's trace, parsed and scaled.

    Raises:
        InvalidInput: unreadable, of an unknown format, or with bad rows (file:line each).
    """
    text = read_text(s.trace)
    fmt = s.trace_format or sniff_trace(text) or (TraceFormat.CSV if s.columns else None)
    if fmt is None:
        first = text.splitlines()[0][:80] if text else "(empty)"
        raise InvalidInput([Problem("format", "not a trace format Accord reads", first,
                                    "philly, alibaba, swf, csv (see docs/design/simulator.md)",
                                    str(s.trace), 1)])
    trace = parse_trace(text, str(s.trace), fmt, options=trace_options(s))
    return scale(trace, jobs=s.jobs, load=s.load, size=s.size)


def workload(s: Scenario, trace: Trace, fed: Federation) -> Workload:
    """Jobs with their home partners, submit times from the scenario's start, and specs.

    Raises:
        InvalidInput: home shares that do not fit the federation.
    """
    shares = s.shares or {p.id: float(sum(x.total_gpus for x in fed.sites if x.partner == p.id))
                          for p in fed.partners}
    home, partners = assign_homes(trace, shares, s.home_rule, s.seed, [p.id for p in fed.partners])
    theme = s.theme or (fed.themes[0] if fed.themes else None)
    submit = trace.submit_s + start_of(s, trace).timestamp()
    window = None if s.window_h is None else s.window_h * 3600
    return Workload(submit, trace.gpus, trace.runtime_s, trace.requested_s, home, partners, theme, s.sector,
                    window)


def federations(s: Scenario) -> list[tuple[str, Federation, tuple[Outage, ...]]]:
    """The federation of each variant (the file itself for a variant that changes nothing)
    and the outages of its runs.

    Raises:
        InvalidInput: a bad federation file or variant, or an outage of a site it does not
            have (with file and line).
    """
    base = load_federation(s.federation)
    doc = tomllib.loads(s.federation.read_text(encoding="utf-8"))
    out = []
    for v in s.variants:
        fed = base
        if v.add_sites or v.remove_sites or v.pools:
            try:
                fed = apply_variant(doc, v)
            except InvalidInput as exc:
                raise locate(exc, s.text, s.source) if s.text else exc from None
        out.append((v.name, fed, check_outages(s, v, fed, base)))
    return out


def start_of(s: Scenario, trace: Trace) -> datetime:
    """When the first job is submitted: the scenario's ``start``, else the trace's own
    (an SWF ``UnixStartTime``), else :data:`~accord.sim.scenario.DEFAULT_START`."""
    if s.start is not None:
        return s.start
    return datetime.fromtimestamp(trace.origin_s, UTC) if trace.origin_s is not None else DEFAULT_START


def trace_notes(s: Scenario, trace: Trace) -> list[str]:
    """What the report must say about the trace: its own notes, rows skipped, where its
    start came from, and how homes were drawn when it has no groups."""
    notes = list(trace.notes)
    if trace.skipped:
        skipped = ", ".join(f"{k}: {v:,}" for k, v in sorted(trace.skipped.items()))
        notes.append(f"trace rows skipped: {skipped}")
    if s.start is None and trace.origin_s is not None:
        notes.append(f"the first job is submitted at {start_of(s, trace).isoformat()}, the trace's own "
                     "start (its UnixStartTime header; --start overrides it)")
    if not trace.has_groups and s.home_rule is not HomeRule.COLUMN:
        rule = home_rule(trace, s.home_rule)
        notes.append("the trace has no groups (no group column, or SWF user ids all -1): " + (
            "each job's home partner was drawn on its own (--homes-by auto: by job when there are no groups)"
            if rule is HomeRule.JOB else
            "with homes by group every job has the same home partner (--homes-by job spreads them)"))
    return notes


@dataclass(frozen=True, slots=True, eq=False)
class Inputs:
    """A scenario's inputs, read once: each variant's federation and outages, the trace, the
    intensity data, the span it covers (epoch seconds) and what the report must say."""

    scenario: Scenario
    variants: tuple[tuple[str, Federation, tuple[Outage, ...]], ...]
    trace: Trace
    carbon: Mapping[str, IntensitySeries]
    notes: tuple[str, ...]
    first_s: float
    end_s: float

    def workload(self, seed: int) -> Workload:
        """The jobs, with home partners drawn from ``seed``."""
        return workload(replace(self.scenario, seed=seed), self.trace, self.variants[0][1])

    def drawn(self, fed: Federation, seed: int) -> tuple[Outage, ...]:
        """The outages drawn at random for ``fed``'s sites in the replication of ``seed``
        (from ``[failures] seed`` when it is pinned)."""
        f = self.scenario.failures
        if f is None:
            return ()
        f = f if f.pinned else replace(f, seed=seed)
        return draw_outages(f, (x.id for x in fed.sites), self.first_s, self.end_s)


def prepare(s: Scenario) -> Inputs:
    """Read the scenario's files and check them.

    Raises:
        InvalidInput: any bad input file (with file and line).
    """
    variants = federations(s)
    trace = load_trace(s)
    work = workload(s, trace, variants[0][1])
    # the intensity must cover the submissions, two days more (the windows) and the longest
    # run; runs that outlast it have unknown emissions, counted as such
    first, last = float(work.submit_s[0]), float(work.submit_s[-1])
    span_end = datetime.fromtimestamp(last + float(work.requested_s.max()), UTC) + timedelta(days=2)
    zones = {site.grid_zone for _, fed, _ in variants for site in fed.sites if site.grid_zone}
    carbon, notes = load_carbon(s.carbon, zones, datetime.fromtimestamp(first, UTC), span_end, s.carbon_unit)
    notes += trace_notes(s, trace)
    longest = int(np.count_nonzero(trace.requested_s >= MAX_TIME_LIMIT_S))
    if longest:
        notes.append(f"{longest} job(s) run the broker's longest time limit, 30 days (longer ones are "
                     "cut there, as a site ends a job at its limit)")
    return Inputs(s, tuple(variants), trace, carbon, tuple(notes), first, span_end.timestamp())


def simulate(name: str, fed: Federation, work: Workload, carbon: Mapping[str, IntensitySeries],
             settings: Settings, progress: Progress | None = None, engine: Engine = Engine.FAST) -> Run:
    """One run of one policy over one federation, by the fast kernel or the live broker.

    Raises:
        InvalidInput: the broker engine with ``pass_s`` 0 (the broker places in passes).
    """
    label = f"{name} / {settings.policy.value}"
    tick = None if progress is None else (lambda i, n: progress(label, i, n))
    t0 = time.perf_counter()
    if engine is Engine.BROKER:
        slow = BrokerEngine(fed, work, carbon, settings, tick)
        outcome = slow.run()
        history = slow.history()
    else:
        sim = Simulation(fed, work, carbon, settings, tick)
        outcome = sim.run()
        history = sim.ledger.history
    return Run(name, settings.policy, fed, pool_keys(fed), work, outcome, tuple(history),
               time.perf_counter() - t0)


def run_settings(s: Scenario, policy: Policy, outages: tuple[Outage, ...]) -> Settings:
    """The settings of ``s``'s run of ``policy`` with ``outages``."""
    profiles = ProfileSource() if s.forecast is Forecast.PROFILE else None
    return Settings(policy, s.pass_s, s.refresh_s, s.backfill, s.backfill_depth, s.replan_s, s.forecast,
                    outages, profiles)


def listed(outages: tuple[Outage, ...]) -> list[dict[str, str]]:
    return [{"site": o.site, "start": utc_text(o.start_s), "end": utc_text(o.end_s)} for o in outages]


def describe(s: Scenario, trace: Trace, work: Workload) -> dict[str, Any]:
    """The scenario's inputs, for the report."""
    return {"source": s.source, "federation": str(s.federation), "trace": str(s.trace),
            "carbon": str(s.carbon) if s.carbon else None,
            "start": datetime.fromtimestamp(float(work.submit_s[0]), UTC).isoformat(), "seed": s.seed,
            "seeds": list(replication_seeds(s)),
            "policies": [p.value for p in s.policies], "jobs": len(work), "gpu_hours": trace.gpu_hours,
            "load": s.load, "size": s.size, "pass_seconds": s.pass_s, "backfill": s.backfill,
            "engine": s.engine.value, "replan_seconds": s.replan_s, "forecast": s.forecast.value,
            "window_hours": s.window_h, "theme": work.theme,
            "failures": None if s.failures is None else {
                "mtbf_hours": s.failures.mtbf_s / 3600, "mttr_hours": s.failures.mttr_s / 3600,
                "seed": s.failures.seed},
            "homes": {p: int((work.home == i).sum()) for i, p in enumerate(work.partners)}}
