"""The real series of the shared data directory: what they hold, their time zone, the
built-in profiles derived from them, and what shifting jobs in time and space saves.

The data are read from ``$ACCORD_SHARED_DATA`` (default ``../shared/data``); when missing,
every test here fails with a message saying so. The figures are printed by
``uv run python -m accord.adapters.carbon.evaluation``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.adapters.carbon.evaluation import (
    JOB_S,
    WINDOW_S,
    ZoneFigures,
    gb_to_fr,
    year_series,
    zone_figures,
)
from accord.adapters.carbon.files import SHARED_FILES, FileSource, load_em_wide, load_series, shared_data_dir
from accord.adapters.carbon.profiles import build_profiles
from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import ShiftingResult, oracle_shifting

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> Path:
    return shared_data_dir()   # raises InvalidInput naming ACCORD_SHARED_DATA when missing


@pytest.fixture(scope="module")
def raw(data: Path) -> dict[str, IntensitySeries]:
    return {z: load_series(data / SHARED_FILES[z][0], z) for z in ("GB", "FR", "DE")}


@pytest.fixture(scope="module")
def figures(data: Path) -> dict[str, ZoneFigures]:
    return {z: zone_figures(z, data) for z in ("GB", "FR", "DE")}


# ─── what the files hold ────────────────────────────────────────────────────────────────


def test_gb_series(raw: dict[str, IntensitySeries]) -> None:
    gb = raw["GB"]
    assert len(gb.values) == 21_980 and gb.step_s == 1800 and not gb.regular
    assert gb.start == utc(2019, 12, 20) and gb.starts[-1] == utc(2021, 1, 9, 23, 30)
    assert gb.values[0] == 120.99546661944396
    # from 2020-10-31 the source switches to 15-minute values
    assert gb.value_at(utc(2020, 10, 30, 23, 45)) == 167.21313692344845
    assert gb.value_at(utc(2020, 10, 31, 0, 20)) == 160.49555034091915


def test_fr_and_de_series(raw: dict[str, IntensitySeries]) -> None:
    fr, de = raw["FR"], raw["DE"]
    assert len(fr.values) == 18_574 and fr.regular and fr.step_s == 1800
    assert fr.starts[-1] == utc(2021, 1, 9, 22, 30) and fr.values[0] == 42.34123797146737
    assert len(de.values) == 37_147 and de.step_s == 900 and not de.regular
    assert de.starts[-1] == utc(2021, 1, 9, 23) and de.values[0] == 218.29003068829462
    # two missing quarter-hours on 2020-12-19: the value before each is held 30 minutes
    assert de.value_at(utc(2020, 12, 19, 23, 20)) == de.value_at(utc(2020, 12, 19, 23))


def test_electricity_maps_sample(data: Path) -> None:
    by_zone = load_em_wide(data / "carbon" / "em_sample_4zones_2020-02.csv")
    assert sorted(by_zone) == ["AU-VIC", "CA-ON", "IN-MH", "US-CAL-CISO"]
    cal = by_zone["US-CAL-CISO"]
    assert len(cal.values) == 96 and cal.start == utc(2020, 2, 12) and cal.end == utc(2020, 2, 16)
    assert cal.values[0] == 256.35 and by_zone["CA-ON"].values[-1] == 30.68


def test_file_source_on_the_shared_data(data: Path) -> None:
    s = FileSource.shared(data).intensity("FR", utc(2020, 6, 1, 10, 10), utc(2020, 6, 1, 12))
    assert s.starts[0] == utc(2020, 6, 1, 10) and len(s.values) == 4 and s.source.endswith("fr_ci.csv")


# ─── time zone: the files' naive times are UTC ──────────────────────────────────────────


def test_no_daylight_saving_artefacts(raw: dict[str, IntensitySeries]) -> None:
    """Local wall-clock times would skip an hour on 2020-03-29 and repeat one on 2020-10-25."""
    for s in raw.values():
        for day in (utc(2020, 3, 29), utc(2020, 10, 25)):
            inside = [t for t in s.starts if day <= t < day + timedelta(hours=4)]
            assert len(inside) == 4 * 3600 // s.step_s, s.zone
    for s in raw.values():
        assert len(set(s.starts)) == len(s.starts)


def test_midday_solar_dip_does_not_move_with_daylight_saving(raw: dict[str, IntensitySeries]) -> None:
    """Germany's solar dip sits at the same clock hour in winter and summer: the clock is
    not local time (which shifts by an hour in summer); its position, 12:00 ± 1, fits UTC
    (solar noon in Germany is about 11:20 UTC)."""
    de = raw["DE"]
    for months in ((1, 2), (6, 7)):
        by_hour: dict[int, list[float]] = defaultdict(list)
        for t, v in zip(de.starts, de.values, strict=True):
            if t.year == 2020 and t.month in months and 8 <= t.hour <= 16:
                by_hour[t.hour].append(v)
        dip = min(by_hour, key=lambda h: sum(by_hour[h]) / len(by_hour[h]))
        assert 11 <= dip <= 13, (months, dip)


def test_em_sample_is_utc(data: Path) -> None:
    """CAISO's intensity is lowest around solar noon: 12:00 PST = 20:00 UTC."""
    cal = load_em_wide(data / "carbon" / "em_sample_4zones_2020-02.csv")["US-CAL-CISO"]
    by_hour: dict[int, list[float]] = defaultdict(list)
    for t, v in zip(cal.starts, cal.values, strict=True):
        by_hour[t.hour].append(v)
    low = min(by_hour, key=lambda h: sum(by_hour[h]))
    assert 18 <= low <= 22


# ─── built-in profiles ──────────────────────────────────────────────────────────────────


def test_bundled_profiles_are_what_the_script_builds(data: Path) -> None:
    committed = json.loads((ROOT / "src" / "accord" / "data" / "carbon_profiles.json").read_text("utf-8"))
    assert committed == build_profiles(data), "run: uv run python scripts/make_carbon_profiles.py"
    assert committed["zones"]["GB"]["annual_mean"] == pytest.approx(212.9, abs=0.05)
    assert set(committed["zones"]["US-CAL-CISO"]["months"]) == {"2"}


# ─── the real-data check ────────────────────────────────────────────────────────────────


def brute_force(s: IntensitySeries, k: int, w: int, lo: int, hi: int) -> ShiftingResult:
    """Every submit slot in [lo, hi), every start of its window, slot sums from scratch."""
    v = s.values
    rel = paid = now_total = 0.0
    for i in range(lo, hi):
        now = sum(v[i:i + k])
        best = min(sum(v[j:j + k]) for j in range(i, i + w + 1))
        rel += (now - best) / now
        paid, now_total = paid + best, now_total + now
    return ShiftingResult(hi - lo, rel / (hi - lo), 1 - paid / now_total)


def test_oracle_matches_brute_force_on_a_year_of_gb(data: Path) -> None:
    s = year_series("GB", data)
    t0 = time.perf_counter()
    fast = oracle_shifting(s, JOB_S, WINDOW_S, utc(2020, 1, 1), utc(2021, 1, 1))
    assert time.perf_counter() - t0 < 1.0
    lo = s.starts.index(utc(2020, 1, 1))
    slow = brute_force(s, JOB_S // 1800, WINDOW_S // 1800, lo, lo + fast.decisions)
    assert fast.decisions == 366 * 48
    assert fast.mean_relative_saving == pytest.approx(slow.mean_relative_saving, abs=1e-9)
    assert fast.aggregate_saving == pytest.approx(slow.aggregate_saving, abs=1e-9)


def test_temporal_shifting_gb_is_about_26_percent(figures: dict[str, ZoneFigures]) -> None:
    gb = figures["GB"]
    assert gb.oracle.aggregate_saving == pytest.approx(0.264, abs=0.01)       # measured 26.4%
    assert gb.oracle.mean_relative_saving == pytest.approx(0.246, abs=0.01)   # measured 24.6%


def test_temporal_shifting_fr_and_de(figures: dict[str, ZoneFigures]) -> None:
    assert figures["FR"].oracle.aggregate_saving == pytest.approx(0.163, abs=0.01)
    assert figures["DE"].oracle.aggregate_saving == pytest.approx(0.223, abs=0.01)


def test_policy_with_a_perfect_forecast_reaches_the_oracle(figures: dict[str, ZoneFigures]) -> None:
    for f in figures.values():
        assert f.perfect_forecast.decisions == f.oracle.decisions
        assert f.perfect_forecast.mean_relative_saving >= 0.95 * f.oracle.mean_relative_saving
        assert f.perfect_forecast.aggregate_saving == pytest.approx(f.oracle.aggregate_saving, abs=1e-9)


def test_policy_with_a_history_forecast_saves_something(figures: dict[str, ZoneFigures]) -> None:
    """Measured: GB 15.0%, FR 8.1%, DE 14.4% aggregate. Only a sane floor is asserted."""
    for f in figures.values():
        h = f.history_forecast
        assert 0.03 < h.aggregate_saving < f.oracle.aggregate_saving, f.zone
        assert 0.02 < h.mean_relative_saving < f.oracle.mean_relative_saving, f.zone


def test_gb_job_run_in_france_saves_about_74_percent(data: Path) -> None:
    r = gb_to_fr(data)
    assert r.decisions == 366 * 48
    assert r.aggregate_saving == pytest.approx(0.735, abs=0.01)         # measured 73.5%
    assert r.mean_relative_saving == pytest.approx(0.722, abs=0.01)     # measured 72.2%
