"""The real-data check: what temporal and spatial shifting save on the shared 2020 series.

    uv run python -m accord.adapters.carbon.evaluation [DATA_DIR]

For each of GB, FR and DE (Let's Wait Awhile series, 2020): 1-hour jobs submitted at every
slot of 2020 (GB and FR every 30 min; DE every 15 min, its own resolution) may start any
time in the next 24 hours. Reported: the oracle (perfect knowledge) saving; the policy that
decides at submit time with a perfect forecast and pays the actual; the same policy with
the 7-day same-time-of-day history forecast; and, for GB, running each job in FR at the
same moment instead. Savings are given both as the mean of per-job relative savings and as
the aggregate (1 − total paid / total if run at once).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accord.adapters.carbon.files import SHARED_FILES, load_series, shared_data_dir
from accord.domain.carbon.series import IntensitySeries, resample
from accord.domain.carbon.shifting import (
    Forecast,
    ShiftingResult,
    oracle_shifting,
    policy_shifting,
    spatial_shifting,
)
from accord.domain.errors import InvalidInput

YEAR_START = datetime(2020, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2021, 1, 1, tzinfo=UTC)
JOB_S = 3600
WINDOW_S = 86_400
RESOLUTION_S = {"GB": 1800, "FR": 1800, "DE": 900}


@dataclass(frozen=True, slots=True)
class ZoneFigures:
    """The shifting figures of one zone over 2020."""

    zone: str
    step_s: int
    oracle: ShiftingResult
    perfect_forecast: ShiftingResult
    history_forecast: ShiftingResult
    oracle_seconds: float


def year_series(zone: str, data_dir: Path | None = None, step_s: int | None = None) -> IntensitySeries:
    """``zone``'s shared series from 8 days before 2020 (history for the forecast) to 25 h
    after it (the last window), resampled to a regular grid.

    Raises:
        InvalidInput: no shared data directory, or a malformed file.
    """
    rel, fmt = SHARED_FILES[zone]
    s = load_series((data_dir or shared_data_dir()) / rel, zone, fmt)
    s = s.slice(YEAR_START - timedelta(days=8), YEAR_END + timedelta(seconds=WINDOW_S + JOB_S))
    return resample(s, step_s or RESOLUTION_S[zone])


def zone_figures(zone: str, data_dir: Path | None = None) -> ZoneFigures:
    """The oracle and policy figures for ``zone`` (1-hour jobs, 24-hour window, 2020).

    Raises:
        InvalidInput: as :func:`year_series`.
    """
    s = year_series(zone, data_dir)
    t0 = time.perf_counter()
    oracle = oracle_shifting(s, JOB_S, WINDOW_S, YEAR_START, YEAR_END)
    elapsed = time.perf_counter() - t0
    perfect = policy_shifting(s, JOB_S, WINDOW_S, Forecast.PERFECT, YEAR_START, YEAR_END)
    history = policy_shifting(s, JOB_S, WINDOW_S, Forecast.HISTORY_7D, YEAR_START, YEAR_END)
    return ZoneFigures(zone, s.step_s, oracle, perfect, history, elapsed)


def gb_to_fr(data_dir: Path | None = None) -> ShiftingResult:
    """Running each 1-hour GB job of 2020 in FR at the same moment, on a 30-minute grid.

    Raises:
        InvalidInput: as :func:`year_series`.
    """
    return spatial_shifting(year_series("GB", data_dir), year_series("FR", data_dir), JOB_S,
                            YEAR_START, YEAR_END)


def report(data_dir: Path | None = None) -> str:
    """The figures as a Markdown table.

    Raises:
        InvalidInput: as :func:`year_series`.
    """
    lines = [f"1-hour jobs, 24-hour window, submit times {YEAR_START.date()} .. {YEAR_END.date()} (UTC)",
             "", "| zone | grid | decisions | oracle mean / aggregate | perfect-forecast policy "
             "| 7-day history policy | oracle time |", "|---|---|---|---|---|---|---|"]
    for zone in RESOLUTION_S:
        f = zone_figures(zone, data_dir)
        lines.append(f"| {zone} | {f.step_s // 60} min | {f.oracle.decisions} | {_pair(f.oracle)} | "
                     f"{_pair(f.perfect_forecast)} | {_pair(f.history_forecast)} | "
                     f"{f.oracle_seconds * 1000:.0f} ms |")
    spatial = gb_to_fr(data_dir)
    lines += ["", f"GB job run in FR at the same moment ({spatial.decisions} submit times, 30 min): "
                  f"{_pair(spatial)} (mean / aggregate)",
              "", "history forecast: per slot, the mean of the same time of day on the 7 previous days"]
    return "\n".join(lines)


def _pair(r: ShiftingResult) -> str:
    return f"{r.mean_relative_saving:.1%} / {r.aggregate_saving:.1%}"


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit status 2 when the shared data cannot be read."""
    args = sys.argv[1:] if argv is None else argv
    try:
        print(report(Path(args[0]) if args else None))
    except InvalidInput as exc:
        print(f"evaluation: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
