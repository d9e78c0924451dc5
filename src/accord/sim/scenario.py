"""Scenario files: which federation, trace, carbon data, policies and variants to simulate.

A scenario is TOML (``docs/design/simulator.md`` documents every key)::

    [simulation]
    federation = "federation.toml"      # relative to the scenario file
    trace = "shared:traces/philly_sia.csv"   # "shared:" = the shared data directory
    carbon = "shared:carbon"            # a directory of intensity files
    start = 2020-01-06T00:00:00Z        # when the trace's first job is submitted (default:
                                        # an SWF's UnixStartTime, else 2020-01-06)
    carbon_unit = "g/kWh"               # or "lb/MWh", "kg/MWh", "kg/kWh"
    policies = ["home", "carbon"]
    seed = 1                            # or seeds = [1, 2, 3]: replications, every policy and
                                        # variant once per seed (at most MAX_RUNS runs in all)

    [trace]      jobs, load, size, format, round_minutes, procs_per_gpu, skip_bad_rows,
                 swf_status, queues, partitions, time_unit, columns = { submit = "arrival_time" }
    [homes]      by = "group" | "job" | "column"; shares = { uk = 0.6, fr = 0.4 }
    [jobs]       theme, sector, window_hours

    [[outages]]                         # a site that does not answer for a while (every variant)
    site = "jeanzay"
    start = 2020-01-08T06:00:00Z
    end = 2020-01-09T18:00:00Z

    [failures]                          # outages drawn at random for every site, as well
    mtbf_hours = 720                    # mean time between failures, per site
    mttr_hours = 6                      # mean time to repair

    [[variants]]                        # federation variants (capacity planning)
    name = "growth zone"
    remove_sites = ["juelich"]
    pools = { "bristol/h100" = 512 }    # resize pools
    [[variants.add_sites]]              # a site as in a federation file, with its pools
    [[variants.outages]]                # outages of this variant only (site, start, end)

Every problem is reported with the scenario file's line, like the federation file's.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accord.adapters.carbon.files import shared_data_dir
from accord.adapters.federation_file import locate_lines
from accord.domain.carbon.series import IntensityUnit
from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Federation
from accord.domain.federation.schema import parse_federation
from accord.domain.fieldreader import FieldReader
from accord.domain.traces.trace import HomeRule, SwfStatus, TimeUnit, TraceFormat, TraceOptions
from accord.sim.model import Engine, Failures, Outage, Policy

SECTIONS = ("simulation", "trace", "homes", "jobs", "variants", "outages", "failures")
SIM_KEYS = ("federation", "trace", "carbon", "start", "seed", "seeds", "policies", "pass_seconds",
            "refresh_seconds", "replan_seconds", "backfill", "backfill_depth", "engine", "forecast",
            "carbon_unit")
TRACE_KEYS = ("jobs", "load", "size", "format", "round_minutes", "procs_per_gpu", "skip_bad_rows",
              "swf_status", "queues", "partitions", "time_unit", "columns")
HOME_KEYS = ("by", "shares")
JOB_KEYS = ("theme", "sector", "window_hours")
VARIANT_KEYS = ("name", "add_sites", "remove_sites", "pools", "outages")
OUTAGE_KEYS = ("site", "start", "end")
FAILURE_KEYS = ("mtbf_hours", "mttr_hours", "seed")
MAX_RUNS = 1000   # runs per sweep (variants × policies × seeds): docs/design/simulator.md, "Sweeps"
DEFAULT_START = datetime(2020, 1, 6, tzinfo=UTC)   # a Monday inside the shared intensity data
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class Variant:
    """A change to the federation: sites added (federation-file tables) or removed, pools
    resized (``site/pool`` → GPUs); and outages of its sites in its runs."""

    name: str
    add_sites: tuple[Mapping[str, Any], ...] = ()
    remove_sites: tuple[str, ...] = ()
    pools: Mapping[str, int] = field(default_factory=dict)
    index: int = -1   # its place in the scenario file's [[variants]] (for messages)
    outages: tuple[Outage, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one ``accord simulate`` run needs to know (paths resolved)."""

    federation: Path
    trace: Path
    carbon: Path | None
    start: datetime | None = None      # None: the trace's own (SWF UnixStartTime), else DEFAULT_START
    seed: int = 1
    seeds: tuple[int, ...] = ()        # replications (a sweep): each seed a run of every (variant, policy)
    policies: tuple[Policy, ...] = (Policy.HOME,)
    pass_s: float = 60.0
    refresh_s: float = 1800.0
    replan_s: float = 0.0
    engine: Engine = Engine.FAST
    forecast: Forecast = Forecast.PERFECT
    backfill: bool = False
    backfill_depth: int = 100
    jobs: int | None = None
    load: float = 1.0
    size: float = 1.0
    trace_format: TraceFormat | None = None
    round_s: int = 1800
    procs_per_gpu: int = 1
    skip_bad_rows: bool = False
    swf_status: SwfStatus = SwfStatus.RAN
    queues: frozenset[int] = frozenset()
    partitions: frozenset[int] = frozenset()
    columns: tuple[tuple[str, str], ...] = ()
    time_unit: TimeUnit = TimeUnit.SECONDS
    carbon_unit: IntensityUnit = IntensityUnit.G_PER_KWH
    home_rule: HomeRule = HomeRule.AUTO
    shares: Mapping[str, float] = field(default_factory=dict)
    theme: str | None = None
    sector: str | None = None
    window_h: float | None = None
    variants: tuple[Variant, ...] = (Variant("base"),)
    outages: tuple[Outage, ...] = ()   # in every variant that has the site
    failures: Failures | None = None   # outages drawn at random for every site
    source: str = "<command line>"
    text: str = ""


def replication_seeds(s: Scenario) -> tuple[int, ...]:
    """The seeds the scenario is run with: its ``seeds``, else its one ``seed``."""
    return s.seeds or (s.seed,)


def trace_options(s: Scenario) -> TraceOptions:
    """How the scenario's trace is read."""
    return TraceOptions(s.round_s, s.procs_per_gpu, s.skip_bad_rows, s.swf_status, s.queues, s.partitions,
                        s.columns, s.time_unit)


def resolve_path(raw: str, base: Path) -> Path:
    """``shared:REL`` in the shared data directory, else relative to ``base``.

    Raises:
        InvalidInput: ``shared:`` with no shared data directory.
    """
    if raw.startswith("shared:"):
        return shared_data_dir() / raw.removeprefix("shared:")
    p = Path(raw).expanduser()
    return p if p.is_absolute() else base / p


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file.

    Raises:
        InvalidInput: unreadable, not TOML, or any bad field (each with its line).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput([Problem("scenario", f"cannot read: {exc.strerror or exc}", source,
                                    "a scenario TOML file", source)]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _TOML_POS.search(str(exc))
        message = _TOML_POS.sub("", str(exc)).strip()
        raise InvalidInput([Problem("toml", f"malformed TOML: {message}", source=source,
                                    line=int(where.group(1)) if where else None)]) from None
    try:
        return parse_scenario(doc, path.parent, source, text)
    except InvalidInput as exc:
        raise locate(exc, text, source) from None


def locate(exc: InvalidInput, text: str, source: str) -> InvalidInput:
    """``exc`` with each problem's file and line in ``text``."""
    lines = locate_lines(text)
    out = []
    for p in exc.problems:
        path, line = p.where, None
        while path and line is None:
            line = lines.get(path)
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        out.append(replace(p, source=p.source or source, line=p.line or line))
    return InvalidInput(out)


def parse_scenario(doc: Mapping[str, Any], base: Path, source: str, text: str = "") -> Scenario:
    """Build a scenario from a parsed TOML document (paths relative to ``base``).

    Raises:
        InvalidInput: every problem found, each naming its field.
    """
    r = FieldReader()
    r.unknown_keys(doc, "", SECTIONS)
    sim, tr = r.table(doc, "simulation", ""), r.table(doc, "trace", "")
    homes, jobs = r.table(doc, "homes", ""), r.table(doc, "jobs", "")
    r.unknown_keys(sim, "simulation", SIM_KEYS)
    r.unknown_keys(tr, "trace", TRACE_KEYS)
    r.unknown_keys(homes, "homes", HOME_KEYS)
    r.unknown_keys(jobs, "jobs", JOB_KEYS)
    fed = r.text(sim, "federation", "simulation")
    trace = r.text(sim, "trace", "simulation")
    carbon = r.text(sim, "carbon", "simulation", required=False)
    policies = _policies(r, sim.get("policies", ["home"]))
    start = _start(r, sim.get("start"))
    variants = tuple(_variant(r, v, i) for i, v in enumerate(r.tables(doc, "variants", "")))
    variants = variants or (Variant("base"),)
    outages = outage_list(r, doc, "")
    seed = int(_num(r, sim, "seed", "simulation", 1, 0))
    seeds = _seeds(r, sim)
    failures = _failures(r, r.table(doc, "failures", ""), seed) if "failures" in doc else None
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        r.add("variants", "variant names must be unique", ", ".join(names), "distinct names")
    shares = _shares(r, homes.get("shares", {}))
    if fed is None or trace is None:
        raise InvalidInput(r.problems)
    scenario = Scenario(
        federation=resolve_path(fed, base), trace=resolve_path(trace, base),
        carbon=resolve_path(carbon, base) if carbon else None, start=start,
        seed=seeds[0] if seeds else seed, seeds=seeds, policies=policies,
        pass_s=_num(r, sim, "pass_seconds", "simulation", 60.0, 0), refresh_s=_num(
            r, sim, "refresh_seconds", "simulation", 1800.0, 60),
        replan_s=_num(r, sim, "replan_seconds", "simulation", 0.0, 0),
        engine=r.choice(sim, "engine", "simulation", Engine, default=Engine.FAST) or Engine.FAST,
        forecast=r.choice(sim, "forecast", "simulation", Forecast,
                          default=Forecast.PERFECT) or Forecast.PERFECT,
        backfill=_flag(r, sim, "backfill", "simulation"),
        backfill_depth=int(_num(r, sim, "backfill_depth", "simulation", 100, 1)),
        **_trace_table(r, tr),
        carbon_unit=r.choice(sim, "carbon_unit", "simulation", IntensityUnit,
                             default=IntensityUnit.G_PER_KWH) or IntensityUnit.G_PER_KWH,
        home_rule=r.choice(homes, "by", "homes", HomeRule, default=HomeRule.AUTO) or HomeRule.AUTO,
        shares=shares, theme=r.text(jobs, "theme", "jobs", required=False),
        sector=r.text(jobs, "sector", "jobs", required=False),
        window_h=r.number(jobs, "window_hours", "jobs", minimum=0, maximum=24 * 30, required=False),
        variants=variants, outages=outages, failures=failures, source=source, text=text)
    if r.problems:   # every field is read before any problem is reported
        raise InvalidInput(r.problems)
    return scenario


def _trace_table(r: FieldReader, tr: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[trace]`` table's settings, as :class:`Scenario` fields (problems go to ``r``)."""
    return {
        "jobs": r.integer(tr, "jobs", "trace", minimum=1) if "jobs" in tr else None,
        "load": _num(r, tr, "load", "trace", 1.0, 1e-6), "size": _num(r, tr, "size", "trace", 1.0, 1e-6),
        "trace_format": r.choice(tr, "format", "trace", TraceFormat) if "format" in tr else None,
        "round_s": int(_num(r, tr, "round_minutes", "trace", 30, 1) * 60),
        "procs_per_gpu": int(_num(r, tr, "procs_per_gpu", "trace", 1, 1)),
        "skip_bad_rows": _flag(r, tr, "skip_bad_rows", "trace"),
        "swf_status": r.choice(tr, "swf_status", "trace", SwfStatus, default=SwfStatus.RAN) or SwfStatus.RAN,
        "queues": _ids(r, tr, "queues"), "partitions": _ids(r, tr, "partitions"), "columns": _columns(r, tr),
        "time_unit": r.choice(tr, "time_unit", "trace", TimeUnit,
                              default=TimeUnit.SECONDS) or TimeUnit.SECONDS,
    }


def _num(r: FieldReader, table: Mapping[str, Any], key: str, path: str, default: float,
         minimum: float) -> float:
    value = r.number(table, key, path, minimum=minimum, required=False, default=default)
    return default if value is None else value


def _flag(r: FieldReader, table: Mapping[str, Any], key: str, path: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        r.add(f"{path}.{key}", "must be true or false", value, "true, false")
        return False
    return value


def _policies(r: FieldReader, raw: object) -> tuple[Policy, ...]:
    allowed = ", ".join(p.value for p in Policy)
    if not isinstance(raw, list) or not raw:
        r.add("simulation.policies", "must be a non-empty list of policies", raw, allowed)
        return (Policy.HOME,)
    out = []
    for item in raw:
        try:
            out.append(Policy(item))
        except ValueError:
            r.add("simulation.policies", "names an unknown policy", item, allowed)
    return tuple(dict.fromkeys(out))


def _seeds(r: FieldReader, sim: Mapping[str, Any]) -> tuple[int, ...]:
    """``seeds``: distinct whole numbers >= 0, at most :data:`MAX_RUNS`; not with ``seed``."""
    if "seeds" not in sim:
        return ()
    raw = sim["seeds"]
    allowed = f"a list of 1 to {MAX_RUNS:,} distinct whole numbers >= 0, e.g. [1, 2, 3] (not with seed)"
    ok = isinstance(raw, list) and 0 < len(raw) <= MAX_RUNS and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in raw)
    if not ok or len(set(raw)) != len(raw) or "seed" in sim:
        why = "is not a list of seeds" if not ok or len(set(raw)) != len(raw) else \
            "goes without seed (give one or the other)"
        r.add("simulation.seeds", why, raw, allowed)
        return ()
    return tuple(raw)


def _start(r: FieldReader, raw: object) -> datetime | None:
    if raw is None:
        return None
    return _time(r, raw, "simulation.start") or DEFAULT_START


def _ids(r: FieldReader, table: Mapping[str, Any], key: str) -> frozenset[int]:
    raw = table.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        r.add(f"trace.{key}", "must be a list of SWF numbers", raw, "e.g. [1, 3]")
        return frozenset()
    return frozenset(raw)


def _columns(r: FieldReader, table: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = table.get("columns", {})
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) and v for v in raw.values()):
        r.add("trace.columns", "must map Accord's column names to the file's", raw,
              '{ submit = "arrival_time", runtime = "length", gpus = "cpus" }')
        return ()
    return tuple((str(k), v) for k, v in raw.items())


def _time(r: FieldReader, raw: object, where: str) -> datetime | None:
    """A TOML date-time or ISO string as a UTC time (naive: UTC); None (and a problem) if not."""
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            pass
    if not isinstance(raw, datetime):
        r.add(where, "is not a time" if raw is not None else "is required", raw, "e.g. 2020-01-06T00:00:00Z")
        return None
    return raw if raw.tzinfo else raw.replace(tzinfo=UTC)


def _shares(r: FieldReader, raw: object) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in raw.values()):
        r.add("homes.shares", "must map partner ids to weights >= 0", raw, 'e.g. { uk = 0.6, fr = 0.4 }')
        return {}
    return {str(k): float(v) for k, v in raw.items()}


def _variant(r: FieldReader, v: Mapping[str, Any], i: int) -> Variant:
    path = f"variants[{i}]"
    r.unknown_keys(v, path, VARIANT_KEYS)
    name = r.text(v, "name", path) or f"variant {i + 1}"
    pools = v.get("pools", {})
    if not isinstance(pools, Mapping) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in pools.values()):
        r.add(f"{path}.pools", "must map 'site/pool' to a GPU count >= 0", pools, '{ "bristol/h100" = 512 }')
        pools = {}
    return Variant(name, tuple(r.tables(v, "add_sites", path)), r.strings(v, "remove_sites", path),
                   {str(k): int(n) for k, n in pools.items()}, i, outage_list(r, v, path))


def outage_list(r: FieldReader, parent: Mapping[str, Any], path: str) -> tuple[Outage, ...]:
    """The ``outages`` tables under ``parent`` (problems go to ``r``, each with its path)."""
    out = []
    where = f"{path}.outages" if path else "outages"
    for i, t in enumerate(r.tables(parent, "outages", path)):
        at = f"{where}[{i}]"
        r.unknown_keys(t, at, OUTAGE_KEYS)
        site = r.text(t, "site", at)
        start, end = (_time(r, t.get(k), f"{at}.{k}") for k in ("start", "end"))
        if start is not None and end is not None and end <= start:
            r.add(f"{at}.end", "must be after the start", t.get("end"), f"a time after {t.get('start')}")
        elif site is not None and start is not None and end is not None:
            out.append(Outage(site, start.timestamp(), end.timestamp()))
    return tuple(out)


def _failures(r: FieldReader, t: Mapping[str, Any], seed: int) -> Failures | None:
    r.unknown_keys(t, "failures", FAILURE_KEYS)
    mtbf = r.number(t, "mtbf_hours", "failures", minimum=0.01)
    mttr = r.number(t, "mttr_hours", "failures", minimum=0.001)
    own = r.integer(t, "seed", "failures", minimum=0) if "seed" in t else seed
    if mtbf is None or mttr is None or own is None:
        return None
    return Failures(mtbf * 3600, mttr * 3600, own, pinned="seed" in t)


def check_outages(s: Scenario, variant: Variant, fed: Federation, base: Federation) -> tuple[Outage, ...]:
    """The outages of ``variant``'s runs: the scenario's for sites it has, and its own.

    Raises:
        InvalidInput: a scenario outage names no site of the base federation, or a variant's
            names none of the variant's (with the scenario file's line).
    """
    r = FieldReader()
    ids, base_ids = {x.id for x in fed.sites}, {x.id for x in base.sites}
    for i, o in enumerate(s.outages):
        if o.site not in base_ids:
            r.add(f"outages[{i}].site", "names no site of the federation", o.site,
                  ", ".join(sorted(base_ids)))
    for i, o in enumerate(variant.outages):
        if o.site not in ids:
            r.add(f"variants[{variant.index}].outages[{i}].site", "names no site of the variant's federation",
                  o.site, ", ".join(sorted(ids)))
    if r.problems:
        raise locate(InvalidInput(r.problems), s.text, s.source) if s.text else InvalidInput(r.problems)
    return tuple(o for o in s.outages if o.site in ids) + variant.outages


def apply_variant(base_doc: Mapping[str, Any], variant: Variant) -> Federation:
    """The federation of ``base_doc`` (a parsed federation file) changed by ``variant``.

    Raises:
        InvalidInput: a removed site or resized pool that does not exist, or an added site
            the federation schema refuses (paths point into the scenario's variant).
    """
    r = FieldReader()
    path = f"variants[{variant.index}]"
    sites = [dict(s) for s in base_doc.get("sites", [])]
    ids = [s.get("id") for s in sites]
    for sid in variant.remove_sites:
        if sid not in ids:
            r.add(f"{path}.remove_sites", "names no site of the federation", sid, ", ".join(map(str, ids)))
    sites = [s for s in sites if s.get("id") not in variant.remove_sites]
    for key, gpus in variant.pools.items():
        _resize(r, sites, key, gpus, f"{path}.pools")
    kept = len(sites)
    sites += [dict(s) for s in variant.add_sites]
    if r.problems:
        raise InvalidInput(r.problems)
    try:
        return parse_federation({**base_doc, "sites": sites})
    except InvalidInput as exc:
        raise InvalidInput([_into_variant(p, kept, path) for p in exc.problems]) from None


def _resize(r: FieldReader, sites: Sequence[dict[str, Any]], key: str, gpus: int, where: str) -> None:
    site_id, _, pool_id = key.partition("/")
    for s in sites:
        if s.get("id") != site_id:
            continue
        pools = [dict(p) for p in s.get("pools", [])]
        for p in pools:
            if p.get("id") == pool_id:
                p["gpus"] = gpus
                s["pools"] = pools
                return
    r.add(where, "names no pool of the federation", key, "'site/pool' of an existing pool")


def _into_variant(p: Problem, kept: int, path: str) -> Problem:
    """A federation problem about an added site, pointed at the variant's table."""
    where = p.where
    if where.startswith("sites["):
        index = int(where[6:where.index("]")])
        if index >= kept:
            where = f"{path}.add_sites[{index - kept}]{where[where.index(']') + 1:]}"
            return replace(p, where=where)
    return replace(p, where=f"{path}: {where}")
