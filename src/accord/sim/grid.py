"""The grid intensity a simulation runs on: each zone's real data wherever it exists, the
built-in typical profile only for the hours it does not cover, and a note saying which.

A zone's files are every file of the carbon directory named after it (``GB.csv``, the
publisher's yearly exports ``GB_2023_hourly.csv``, ``GB_2024_hourly.csv``..., everything in
a ``GB/`` sub-directory, or the shared data's ``gb_ci.csv``), joined into one series
(:func:`accord.adapters.carbon.files.load_zone`). Where it leaves hours of the simulated
span uncovered (before it, after it, or a missing year between files), those hours take
the zone's built-in profile and the report says which; a zone with neither has unknown
emissions, and every total says how many jobs it leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from accord.adapters.carbon.files import load_zone
from accord.adapters.carbon.profiles import ProfileSource, ZoneProfile
from accord.domain.carbon.series import Gap, IntensitySeries, IntensityUnit, fill_gaps, implausible

SHOWN_GAPS = 3


def load_carbon(directory: Path | None, zones: Iterable[str], start: datetime, end: datetime,
                unit: IntensityUnit = IntensityUnit.G_PER_KWH
                ) -> tuple[dict[str, IntensitySeries], list[str]]:
    """Each zone's intensity over [start, end) and notes on where it came from (and on
    magnitudes implausible for g/kWh: a file in another ``unit``, most likely).

    Raises:
        InvalidInput: ``directory`` is not a directory, or a zone's file is malformed.
    """
    out: dict[str, IntensitySeries] = {}
    notes: list[str] = []
    profiles = ProfileSource()
    for zone in sorted(set(zones)):
        real, paths = load_zone(directory, zone, unit) if directory is not None else (None, [])
        warning = implausible(real) if real is not None else None
        if warning:
            notes.append(f"warning: {warning}")
        profile = profiles.profile(zone) if zone in profiles.zones else None
        why = f"no file for it in {directory}" if directory is not None else "no carbon directory given"
        series, note = zone_series(zone, real, paths, profile, start, end, why)
        if series is not None:
            out[zone] = series
        if note:
            notes.append(note)
    return out, notes


def zone_series(zone: str, real: IntensitySeries | None, paths: Sequence[Path], profile: ZoneProfile | None,
                start: datetime, end: datetime, why: str) -> tuple[IntensitySeries | None, str]:
    """The zone's series over [start, end) and a note ("" when the real data cover it all)."""
    names = ", ".join(p.name for p in paths)
    if profile is None:
        return real, _without_profile(zone, real, names, start, end, why)
    source = f"{names or 'no file'} + profile:{zone} {profile.description}"
    filled, gaps = fill_gaps(real, zone, start, end, profile.value, source)
    if real is None:
        return filled, f"{zone}: built-in typical profile for the whole span ({why}; {profile.description})"
    if not gaps:
        return real, ""
    return filled, (f"{zone}: real data from {names}; the built-in typical profile for the "
                    f"{_hours(gaps)} it does not cover: {_spans(gaps)}")


def _without_profile(zone: str, real: IntensitySeries | None, names: str, start: datetime, end: datetime,
                     why: str) -> str:
    if real is None:
        return (f"{zone}: no intensity data ({why}) and no built-in profile: the emissions of jobs at its "
                "sites are unknown, and the totals say how many they leave out")
    _, gaps = fill_gaps(real, zone, start, end, lambda _t: 0.0, names)
    if not gaps:
        return ""
    return (f"{zone}: real data from {names} miss {_hours(gaps)} ({_spans(gaps)}) and there is no built-in "
            "profile: emissions of runs outside the data are unknown (counted in the totals' notes); "
            "a hole between files holds the value before it")


def _hours(gaps: Sequence[Gap]) -> str:
    return f"{sum(g.hours for g in gaps):,.1f} h"


def _spans(gaps: Sequence[Gap]) -> str:
    shown = "; ".join(f"{g.start:%Y-%m-%d %H:%M}–{g.end:%Y-%m-%d %H:%M} UTC" for g in gaps[:SHOWN_GAPS])
    more = len(gaps) - SHOWN_GAPS
    return shown + (f" and {more} more" if more > 0 else "")
