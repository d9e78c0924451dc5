"""Carbon-intensity files: loaders by path, the shared-data location, and a file source.

The real series Accord is tested and calibrated on live outside the repository (they are
not ours to redistribute): ``ACCORD_SHARED_DATA`` names the directory, else the first of
``<repo>/../shared/data`` and ``/work/shared/data`` that exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from accord.adapters.carbon.formats import (
    DEFAULT_MAX_GAP_S,
    CarbonFormat,
    merge_series,
    parse_ci_csv,
    parse_em_api_json,
    parse_em_export,
    parse_em_wide,
    parse_gb_api_json,
    sniff_format,
)
from accord.domain.carbon.series import IntensityBasis, IntensitySeries, IntensityUnit
from accord.domain.errors import InvalidInput, Problem, Unavailable

ENV_VAR = "ACCORD_SHARED_DATA"
DEFAULT_SHARED_DATA = Path("/work/shared/data")
REPO_SHARED_DATA = Path(__file__).resolve().parents[4].parent / "shared" / "data"

# The real series in the shared data directory, by zone (Electricity Maps zone ids).
SHARED_FILES: dict[str, tuple[str, CarbonFormat]] = {
    "GB": ("carbon/gb_ci.csv", CarbonFormat.CI_CSV),
    "FR": ("carbon/fr_ci.csv", CarbonFormat.CI_CSV),
    "DE": ("carbon/ger_ci.csv", CarbonFormat.CI_CSV),
    "US-CAL-CISO": ("carbon/em_sample_4zones_2020-02.csv", CarbonFormat.EM_WIDE),
    "CA-ON": ("carbon/em_sample_4zones_2020-02.csv", CarbonFormat.EM_WIDE),
    "AU-VIC": ("carbon/em_sample_4zones_2020-02.csv", CarbonFormat.EM_WIDE),
    "IN-MH": ("carbon/em_sample_4zones_2020-02.csv", CarbonFormat.EM_WIDE),
}


def shared_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The shared data directory: ``$ACCORD_SHARED_DATA``, else ``<repo>/../shared/data``,
    else ``/work/shared/data``.

    Raises:
        InvalidInput: the variable names a missing directory, or none of the defaults exists.
    """
    env = os.environ if env is None else env
    if env.get(ENV_VAR):
        chosen = Path(env[ENV_VAR])
        if chosen.is_dir():
            return chosen
        raise InvalidInput([Problem(ENV_VAR, "not a directory", str(chosen),
                                    "the shared data directory (holding carbon/gb_ci.csv ...)")])
    for candidate in (REPO_SHARED_DATA, DEFAULT_SHARED_DATA):
        if candidate.is_dir():
            return candidate
    raise InvalidInput([Problem(ENV_VAR, "the shared data directory was not found",
                                f"{REPO_SHARED_DATA} and {DEFAULT_SHARED_DATA} do not exist",
                                f"set {ENV_VAR} to the directory holding carbon/gb_ci.csv")])


def read_text(path: Path | str) -> str:
    """A file's text (UTF-8).

    Raises:
        InvalidInput: the file is missing or unreadable.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput([Problem("file", "not found", str(path), "an existing file",
                                    str(path))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem("file", f"cannot read: {exc}", str(path),
                                    "a readable UTF-8 file", str(path))]) from exc


def load_ci_csv(path: Path | str, zone: str, assume_tz: tzinfo = UTC,
                max_gap_s: int = DEFAULT_MAX_GAP_S) -> IntensitySeries:
    """Load a ``Time,Carbon Intensity`` CSV (times in UTC unless ``assume_tz`` says otherwise).

    Raises:
        InvalidInput: see :func:`accord.adapters.carbon.formats.parse_ci_csv`.
    """
    return parse_ci_csv(read_text(path), str(path), zone, assume_tz, max_gap_s)


def load_em_export(path: Path | str, zone: str | None = None,
                   basis: IntensityBasis = IntensityBasis.LIFECYCLE) -> IntensitySeries:
    """Load an Electricity Maps export CSV.

    Raises:
        InvalidInput: see :func:`accord.adapters.carbon.formats.parse_em_export`.
    """
    return parse_em_export(read_text(path), str(path), zone, basis)


def load_em_wide(path: Path | str) -> dict[str, IntensitySeries]:
    """Load a ``date,time,<zone>...`` CSV, one series per zone.

    Raises:
        InvalidInput: see :func:`accord.adapters.carbon.formats.parse_em_wide`.
    """
    return parse_em_wide(read_text(path), str(path))


def load_gb_api_json(path: Path | str) -> IntensitySeries:
    """Load a saved GB Carbon Intensity API answer.

    Raises:
        InvalidInput: see :func:`accord.adapters.carbon.formats.parse_gb_api_json`.
    """
    return parse_gb_api_json(read_text(path), str(path))


def load_em_api_json(path: Path | str) -> IntensitySeries:
    """Load a saved Electricity Maps API answer.

    Raises:
        InvalidInput: see :func:`accord.adapters.carbon.formats.parse_em_api_json`.
    """
    return parse_em_api_json(read_text(path), str(path))


def load_series(path: Path | str, zone: str, fmt: CarbonFormat | None = None, *,
                unit: IntensityUnit = IntensityUnit.G_PER_KWH) -> IntensitySeries:
    """Load ``zone``'s series from a file in any supported format (sniffed when not given),
    its values in ``unit`` (converted to g/kWh).

    Raises:
        InvalidInput: unreadable, an unknown format, no such zone in it, or bad content.
    """
    text = read_text(path)
    fmt = fmt or sniff_format(text)
    source = str(path)
    if fmt is CarbonFormat.CI_CSV:
        return parse_ci_csv(text, source, zone, unit=unit)
    if fmt is CarbonFormat.EM_EXPORT:
        return parse_em_export(text, source, zone, unit=unit)
    if fmt is CarbonFormat.GB_API_JSON:
        return parse_gb_api_json(text, source, unit=unit)
    if fmt is CarbonFormat.EM_API_JSON:
        return parse_em_api_json(text, source, unit=unit)
    if fmt is CarbonFormat.EM_WIDE:
        by_zone = parse_em_wide(text, source, unit=unit)
        if zone in by_zone:
            return by_zone[zone]
        raise InvalidInput([Problem("zone", "not a column of this file", zone,
                                    ", ".join(by_zone), source, 1)])
    first_line = text.splitlines()[0][:80] if text else ""
    raise InvalidInput([Problem("format", "not a carbon-intensity format Accord reads", first_line,
                                ", ".join(f.value for f in CarbonFormat), source, 1)])


SUFFIXES = (".csv", ".json")


def zone_files(directory: Path, zone: str) -> list[Path]:
    """The files in ``directory`` (and its sub-directory named after the zone) holding
    ``zone``'s intensity, in name order: ``GB.csv``, ``gb.json``, the publisher's yearly
    exports (``GB_2024_hourly.csv``, ``GB_2023.csv``), everything in ``GB/``, or the shared
    data's name for the zone (``gb_ci.csv``).

    Raises:
        InvalidInput: ``directory`` is not a directory.
    """
    if not directory.is_dir():
        raise InvalidInput([Problem("carbon", "not a directory", str(directory),
                                    "a directory of intensity files (e.g. the shared data's carbon/)")])
    named = re.compile(rf"{re.escape(zone)}(?:_\d{{4}}(?:_[a-z0-9]+)?)?", re.IGNORECASE)
    found = [p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
             and named.fullmatch(p.stem)]
    sub = next((d for d in directory.iterdir() if d.is_dir() and d.name.lower() == zone.lower()), None)
    if sub is not None:
        found += [p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES]
    if not found and zone in SHARED_FILES:
        rel = SHARED_FILES[zone][0]
        found = [c for c in (directory / Path(rel).name, directory / rel) if c.is_file()][:1]
    return sorted(found, key=lambda p: (p.parent != directory, p.name))


def load_zone(directory: Path, zone: str, unit: IntensityUnit = IntensityUnit.G_PER_KWH
              ) -> tuple[IntensitySeries | None, list[Path]]:
    """``zone``'s series from every file :func:`zone_files` finds (yearly files joined;
    where two overlap, the first by name wins), and those files; (None, []) if none.

    Raises:
        InvalidInput: a file is malformed (file and line), or not a directory.
    """
    paths = zone_files(directory, zone)
    if not paths:
        return None, []
    parts = [load_series(p, zone, unit=unit) for p in paths]
    if len(parts) == 1:
        return parts[0], paths
    return merge_series(parts, ", ".join(p.name for p in paths)), paths


@dataclass(frozen=True, slots=True)
class ZoneFile:
    """Where a zone's series is, and in which format (None: sniff it)."""

    path: Path
    fmt: CarbonFormat | None = None


class FileSource:
    """A :class:`~accord.ports.CarbonSource` answering from files, one per zone. Files are
    parsed once and kept (keyed by path and modification time)."""

    def __init__(self, files: Mapping[str, ZoneFile]) -> None:
        self._files = dict(files)
        self._cache: dict[tuple[str, Path, float], IntensitySeries] = {}

    @classmethod
    def shared(cls, data_dir: Path | None = None) -> FileSource:
        """The real series of the shared data directory (see :func:`shared_data_dir`).

        Raises:
            InvalidInput: no shared data directory.
        """
        root = data_dir or shared_data_dir()
        return cls({z: ZoneFile(root / rel, fmt) for z, (rel, fmt) in SHARED_FILES.items()})

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones this source has a file for."""
        return tuple(self._files)

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The zone's series covering [start, end), from its file.

        Raises:
            Unavailable: no file for the zone, the file is missing, or it does not cover the span.
            InvalidInput: naive or reversed times, or the file is malformed (with file and line).
        """
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise InvalidInput([Problem("span", "need UTC-aware times with start < end",
                                        f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
        zf = self._files.get(zone)
        if zf is None:
            raise Unavailable(f"no carbon file for zone {zone!r}; files cover: {', '.join(self._files)}")
        try:
            mtime = zf.path.stat().st_mtime
        except OSError as exc:
            raise Unavailable(f"carbon file for {zone} not readable: {zf.path}: {exc.strerror}") from exc
        key = (zone, zf.path, mtime)
        if key not in self._cache:
            self._cache[key] = load_series(zf.path, zone, zf.fmt)
        s = self._cache[key]
        if not s.covers(start, end):
            raise Unavailable(f"{zf.path} covers {zone} from {s.start.isoformat()} to "
                              f"{s.end.isoformat()}, not [{start.isoformat()}, {end.isoformat()})")
        return s.slice(start, end)
