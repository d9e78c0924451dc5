"""Parsers for the carbon-intensity formats users bring, text in, series out.

* ``CI_CSV`` — ``Time,Carbon Intensity`` (Let's Wait Awhile, Wiesner et al. 2021). Times
  carry no zone; they are UTC (see docs/design/carbon.md for how that was checked), and
  ``assume_tz`` reads other files' local times.
* ``EM_EXPORT`` — the Electricity Maps hourly export (``Datetime (UTC),Country,Zone Name,
  Zone Id,Carbon Intensity gCO₂eq/kWh (direct),... (LCA),...``), life-cycle by default.
* ``EM_WIDE`` — ``date,time,<zone>,<zone>...`` with US dates (``2/12/20,0:00:00``), UTC.
* ``GB_API_JSON`` — api.carbonintensity.org.uk ``/intensity/{from}/{to}``: ``actual``,
  else ``forecast``.
* ``EM_API_JSON`` — Electricity Maps v3 ``/carbon-intensity/history`` (``history``) and
  ``/past-range`` (``data``) answers.

Every fault becomes a :class:`~accord.domain.errors.Problem` naming the file, line (JSON:
the element's path), field, bad value and what is allowed; all faults of a file are raised
together as one :class:`~accord.domain.errors.InvalidInput`.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from typing import Any

from accord.domain.carbon.series import MAX_PROBLEMS, IntensityBasis, IntensitySeries, IntensityUnit
from accord.domain.errors import InvalidInput, Problem

MAX_INTENSITY = 2000.0  # g/kWh; the dirtiest real grids stay near 1,100 (lignite-heavy)
DEFAULT_MAX_GAP_S = 6 * 3600  # a value held longer than this is a hole in the data, not a step
ALLOWED_VALUE = f"a number of gCO2eq/kWh from 0 to {MAX_INTENSITY:g} (a file in other units: --carbon-unit)"

CI_HEADER = ("Time", "Carbon Intensity")
EM_TIME = "Datetime (UTC)"
EM_ZONE = "Zone Id"
EM_COLUMNS = {  # normalised header -> basis; the glyph ₂ and "Life cycle" vary between exports
    "carbon intensity gco2eq/kwh (lca)": IntensityBasis.LIFECYCLE,
    "carbon intensity gco2eq/kwh (life cycle)": IntensityBasis.LIFECYCLE,
    "carbon intensity gco2eq/kwh (direct)": IntensityBasis.DIRECT,
}


class CarbonFormat(enum.Enum):
    """The file formats Accord reads intensities from."""

    CI_CSV = "ci-csv"
    EM_EXPORT = "em-export"
    EM_WIDE = "em-wide"
    GB_API_JSON = "gb-api-json"
    EM_API_JSON = "em-api-json"


@dataclass
class _Collector:
    """Points read so far and the problems found, for one series."""

    source: str
    zone: str
    unit: IntensityUnit = IntensityUnit.G_PER_KWH
    points: list[tuple[int | None, datetime, float]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, where: str, message: str, got: object, allowed: str, line: int | None) -> None:
        self.problems.append(Problem(where, message, None if got is None else str(got), allowed,
                                     self.source, line))

    def value(self, raw: object, where: str, line: int | None) -> float | None:
        v = math.nan
        if isinstance(raw, int | float | str) and not isinstance(raw, bool):
            try:
                v = float(raw) * self.unit.factor
            except ValueError:
                pass
        if not (math.isfinite(v) and 0 <= v <= MAX_INTENSITY):
            allowed = ALLOWED_VALUE if self.unit is IntensityUnit.G_PER_KWH else (
                f"a number of {self.unit.value} from 0 to {MAX_INTENSITY / self.unit.factor:,.0f}")
            self.problem(where, "not an intensity", repr(raw) if raw is not None else "null", allowed, line)
            return None
        return v

    def add(self, line: int | None, t: datetime | None, v: float | None) -> None:
        if t is not None and v is not None:
            self.points.append((line, t, v))


def parse_ci_csv(text: str, source: str, zone: str, assume_tz: tzinfo = UTC,
                 max_gap_s: int = DEFAULT_MAX_GAP_S, *,
                 unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> IntensitySeries:
    """Read a ``Time,Carbon Intensity`` CSV. Times without an offset are in ``assume_tz``.

    >>> parse_ci_csv("Time,Carbon Intensity\\n2020-01-01 00:00:00,120.5\\n"
    ...              "2020-01-01 00:30:00,130\\n", "gb.csv", "GB").values
    (120.5, 130.0)

    Raises:
        InvalidInput: a wrong header, or rows with a bad time or value, out of order, or
            with gaps over ``max_gap_s``; each located by file and line.
    """
    c = _Collector(source, zone, unit)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CI_HEADER:
        c.problem("header", "not a carbon-intensity CSV", ",".join(header or []), ",".join(CI_HEADER), 1)
        raise InvalidInput(c.problems)
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != 2:
            c.problem("row", "wrong number of fields", ",".join(row), "Time,Carbon Intensity", line)
            continue
        t = _time(c, row[0].strip(), "Time", line, assume_tz)
        c.add(line, t, c.value(row[1].strip(), "Carbon Intensity", line))
    return _build(c, max_gap_s)


def parse_em_export(text: str, source: str, zone: str | None = None,
                    basis: IntensityBasis = IntensityBasis.LIFECYCLE,
                    max_gap_s: int = DEFAULT_MAX_GAP_S, *,
                    unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> IntensitySeries:
    """Read an Electricity Maps export (hourly, daily, ...); ``zone`` picks one ``Zone Id``
    from a file holding several. Estimated rows are used and counted in ``source``.

    Raises:
        InvalidInput: missing columns, several zones and no ``zone``, or bad rows.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = {_norm(h): h for h in reader.fieldnames or []}
    column = next((raw for n, raw in fields.items() if EM_COLUMNS.get(n) is basis), None)
    missing = [n for n, ok in ((EM_TIME, _norm(EM_TIME) in fields), (EM_ZONE, _norm(EM_ZONE) in fields),
                               (f"Carbon Intensity gCO₂eq/kWh ({basis.value})", column)) if not ok]
    if missing or column is None:
        raise InvalidInput([Problem("header", "not an Electricity Maps export: missing columns",
                                    ",".join(reader.fieldnames or []), ", ".join(missing), source, 1)])
    time_col, zone_col = fields[_norm(EM_TIME)], fields[_norm(EM_ZONE)]
    rows = [(reader.line_num, r) for r in reader]
    zones = sorted({(r.get(zone_col) or "").strip() for _, r in rows})
    if zone is None and len(zones) != 1:
        raise InvalidInput([Problem(EM_ZONE, "the file holds several zones; name one", ",".join(zones),
                                    f"one of {', '.join(zones)}", source, 1)])
    chosen = zone if zone is not None else zones[0]
    c = _Collector(source, chosen, unit)
    estimated = 0
    for line, r in rows:
        if (r.get(zone_col) or "").strip() != chosen:
            continue
        estimated += (r.get(fields.get(_norm("Data Estimated"), ""), "") or "").strip().lower() == "true"
        t = _time(c, (r.get(time_col) or "").strip(), EM_TIME, line, UTC)
        c.add(line, t, c.value((r.get(column) or "").strip(), column, line))
    if not c.points and not c.problems:
        c.problem(EM_ZONE, "no rows for this zone", chosen, f"one of {', '.join(zones)}", None)
    s = _build(c, max_gap_s)
    return _with_source(s, f"{source} (Electricity Maps export, {basis.value}; "
                           f"{estimated} of {len(s.values)} rows estimated)")


def parse_em_wide(text: str, source: str, max_gap_s: int = DEFAULT_MAX_GAP_S, *,
                  unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> dict[str, IntensitySeries]:
    """Read ``date,time,<zone>...`` (``2/12/20,0:00:00,256.35,...``; UTC), one series per zone.

    Raises:
        InvalidInput: a wrong header, or rows with a bad date, time or value.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in next(reader, [])]
    if len(header) < 3 or [h.lower() for h in header[:2]] != ["date", "time"] or not all(header[2:]):
        raise InvalidInput([Problem("header", "not a date,time,<zone>... CSV", ",".join(header),
                                    "date,time,<zone id>,<zone id>...", source, 1)])
    cs = {z: _Collector(source, z, unit) for z in header[2:]}
    first = cs[header[2]]
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            first.problem("row", f"has {len(row)} fields", ",".join(row), f"{len(header)} fields", line)
            continue
        t = _us_time(first, row[0].strip(), row[1].strip(), line)
        for z, raw in zip(header[2:], row[2:], strict=True):
            cs[z].add(line, t, cs[z].value(raw.strip(), z, line))
    problems = [p for c in cs.values() for p in c.problems]
    if problems:
        raise InvalidInput(problems[:MAX_PROBLEMS])
    return {z: _build(c, max_gap_s) for z, c in cs.items()}


def parse_gb_api_json(text: str, source: str, max_gap_s: int = DEFAULT_MAX_GAP_S, *,
                      unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> IntensitySeries:
    """Read a GB Carbon Intensity API answer: ``{"data": [{"from", "to", "intensity":
    {"forecast", "actual", "index"}}]}``, using ``actual`` and, where it is null, ``forecast``.

    >>> parse_gb_api_json('{"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",'
    ...                   '"intensity":{"forecast":266,"actual":null,"index":"moderate"}}]}', "x").values
    (266.0,)

    Raises:
        InvalidInput: not JSON, not that shape, or an entry without a usable time or value.
    """
    doc = _json(text, source)
    c = _Collector(source, "GB", unit)
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise InvalidInput([Problem("data", "missing or not a list", type(data).__name__,
                                    '{"data": [{"from": ..., "to": ..., "intensity": {...}}]}', source)])
    forecasts = 0
    for i, entry in enumerate(data):
        where = f"data[{i}]"
        e = entry if isinstance(entry, dict) else {}
        intensity = e.get("intensity")
        if not isinstance(intensity, dict):
            intensity = {}
        t = _time(c, e.get("from"), f"{where}.from", None, UTC)
        raw = intensity.get("actual")
        if raw is None:
            raw, forecasts = intensity.get("forecast"), forecasts + 1
        c.add(None, t, c.value(raw, f"{where}.intensity.actual/forecast", None))
    s = _build(c, max_gap_s)
    return _with_source(s, f"{source} ({forecasts} of {len(s.values)} half-hours forecast, not actual)"
                        if forecasts else source)


def parse_em_api_json(text: str, source: str, max_gap_s: int = DEFAULT_MAX_GAP_S, *,
                      unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> IntensitySeries:
    """Read an Electricity Maps v3 answer: ``{"zone": "DE", "history"|"data": [{"datetime":
    "2019-05-21T00:00:00.000Z", "carbonIntensity": 302, ...}]}``. Null intensities (hours the
    service has no data for) are skipped and counted in ``source``.

    Raises:
        InvalidInput: not JSON, not that shape, or an entry with a bad time or value.
    """
    doc = _json(text, source)
    if not isinstance(doc, dict):
        doc = {}
    key = "history" if "history" in doc else "data"
    entries = doc.get(key)
    if not isinstance(entries, list):
        raise InvalidInput([Problem(key, "missing or not a list", type(entries).__name__,
                                    '{"zone": ..., "history" or "data": [...]}', source)])
    zone = doc.get("zone") or next((e.get("zone") for e in entries if isinstance(e, dict)), None)
    c = _Collector(source, str(zone or ""), unit)
    if not zone:
        c.problem("zone", "missing", None, "a zone id, e.g. DE", None)
    missing = 0
    for i, entry in enumerate(entries):
        e = entry if isinstance(entry, dict) else {}
        if "carbonIntensity" in e and e["carbonIntensity"] is None:
            missing += 1
            continue
        t = _time(c, e.get("datetime"), f"{key}[{i}].datetime", None, UTC)
        c.add(None, t, c.value(e.get("carbonIntensity"), f"{key}[{i}].carbonIntensity", None))
    s = _build(c, max_gap_s)
    return _with_source(s, f"{source} ({missing} hours without data skipped)" if missing else source)


def merge_series(parts: Sequence[IntensitySeries], source: str) -> IntensitySeries:
    """One series from overlapping pieces of the same zone (first piece wins on a clash).

    Raises:
        InvalidInput: no pieces, or pieces of different zones.
    """
    if not parts or len({p.zone for p in parts}) != 1:
        raise InvalidInput([Problem("parts", "need pieces of one zone", str([p.zone for p in parts]),
                                    "one zone, at least one piece", source)])
    points: dict[datetime, float] = {}
    for p in parts:
        for t, v in zip(p.starts, p.values, strict=True):
            points.setdefault(t, v)
    starts = tuple(sorted(points))
    return IntensitySeries(parts[0].zone, starts, tuple(points[t] for t in starts),
                           _step(starts, parts[0].step_s), source)


def sniff_format(text: str) -> CarbonFormat | None:
    """Which format a file's text looks like, from its first line; None if none.

    >>> sniff_format('date,time,US-CAL-CISO\\n')
    <CarbonFormat.EM_WIDE: 'em-wide'>
    """
    head = text.lstrip("\ufeff")[:2000]
    first = head.splitlines()[0] if head else ""
    if head.lstrip().startswith("{"):
        return CarbonFormat.GB_API_JSON if '"intensity"' in head else CarbonFormat.EM_API_JSON
    cells = [h.strip() for h in first.split(",")]
    if tuple(cells) == CI_HEADER:
        return CarbonFormat.CI_CSV
    if cells and _norm(cells[0]) == _norm(EM_TIME):
        return CarbonFormat.EM_EXPORT
    if [h.lower() for h in cells[:2]] == ["date", "time"]:
        return CarbonFormat.EM_WIDE
    return None


# ─── internals ───────────────────────────────────────────────────────────────────────────


def _build(c: _Collector, max_gap_s: int) -> IntensitySeries:
    """The series from the collected points, after checking order and gaps."""
    points = c.points
    for (line0, t0, _), (line, t, _) in pairwise(points):
        gap = (t - t0).total_seconds()
        if gap <= 0:
            c.problem("time", "not after the previous row", t.isoformat(),
                      f"a time after {t0.isoformat()} (line {line0})", line)
        elif gap > max_gap_s:
            c.problem("time", f"a gap of {gap / 3600:g} h since the previous row", t.isoformat(),
                      f"at most {max_gap_s / 3600:g} h between rows", line)
    if not points and not c.problems:
        c.problem("rows", "no data rows", 0, "at least one row", None)
    if c.problems:
        raise InvalidInput(c.problems[:MAX_PROBLEMS])
    starts = tuple(t for _, t, _ in points)
    return IntensitySeries(c.zone, starts, tuple(v for _, _, v in points), _step(starts, 3600), c.source)


def _step(starts: Sequence[datetime], default: int) -> int:
    """The most common spacing in seconds (ties: the shorter); ``default`` for one point."""
    gaps = Counter(int((b - a).total_seconds()) for a, b in pairwise(starts))
    if not gaps:
        return default
    top = max(gaps.values())
    return min(g for g, n in gaps.items() if n == top)


def _time(c: _Collector, raw: object, where: str, line: int | None, assume_tz: tzinfo) -> datetime | None:
    """An ISO time, converted to UTC; naive times are read in ``assume_tz``."""
    allowed = "an ISO time such as 2020-01-01 00:30:00 or 2020-01-01T00:30:00Z"
    if not isinstance(raw, str):
        c.problem(where, "missing or not text", repr(raw), allowed, line)
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        c.problem(where, "not a time", repr(raw), allowed, line)
        return None
    if t.tzinfo is None:
        local = _localize(t, assume_tz)
        if local is None:
            c.problem(where, f"does not exist, or exists twice, in {assume_tz} (a daylight-saving "
                      "change)", raw, "a time with an explicit UTC offset", line)
            return None
        t = local
    return t.astimezone(UTC)


def _localize(naive: datetime, tz: tzinfo) -> datetime | None:
    """``naive`` as a time in ``tz``, or None where a clock change makes it ambiguous or absent."""
    early, late = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        return None
    if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return early


def _us_time(c: _Collector, date: str, time: str, line: int) -> datetime | None:
    for fmt in ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%m/%d/%y %H:%M", "%m/%d/%Y %H:%M"):
        try:
            return datetime.strptime(f"{date} {time}", fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    c.problem("date,time", "not a US date and time", f"{date},{time}", "M/D/YY,H:MM:SS in UTC", line)
    return None


def _json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem("json", f"malformed JSON: {exc.msg}", text[:80], "a JSON document",
                                    source, exc.lineno)]) from exc


def _norm(header: str) -> str:
    return " ".join(header.replace("₂", "2").lower().split())


def _with_source(s: IntensitySeries, source: str) -> IntensitySeries:
    return IntensitySeries(s.zone, s.starts, s.values, s.step_s, source)

