"""Grid files as users bring them (issue 22): real data wherever it exists and the built-in
profile only for the gap, said where; the publisher's yearly file names joined per zone; a
unit option for lb/MWh; a warning for implausible magnitudes; unknown emissions named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.adapters.carbon.files import load_series, load_zone, zone_files
from accord.adapters.carbon.formats import merge_series
from accord.adapters.carbon.profiles import ProfileSource
from accord.domain.carbon.series import IntensityUnit, fill_gaps, implausible, series
from accord.domain.errors import InvalidInput
from accord.sim.grid import load_carbon

EM_HEADER = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
             "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
             "Data Estimated,Data Estimation Method\n")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def em_export(zone: str, start: datetime, hours: int, value: float) -> str:
    rows = [f"{(start + timedelta(hours=h)):%Y-%m-%d %H:%M:%S},X,X,{zone},{value},{value},50,40,src,false,\n"
            for h in range(hours)]
    return EM_HEADER + "".join(rows)


def ci_csv(start: datetime, hours: int, value: float) -> str:
    return "Time,Carbon Intensity\n" + "".join(
        f"{(start + timedelta(hours=h)):%Y-%m-%d %H:%M:%S},{value}\n" for h in range(hours))


def test_fill_gaps_keeps_real_values_and_fills_only_the_holes() -> None:
    real = series("GB", T0 + timedelta(hours=2), 1800, [100.0] * 4)     # 02:00..04:00
    s, gaps = fill_gaps(real, "GB", T0, T0 + timedelta(hours=6), lambda t: 7.0, "x")
    assert s.value_at(T0 + timedelta(hours=3)) == 100.0
    assert s.value_at(T0) == 7.0 and s.value_at(T0 + timedelta(hours=5)) == 7.0
    assert [(g.start, g.end) for g in gaps] == [(T0, T0 + timedelta(hours=2)),
                                                (T0 + timedelta(hours=4), T0 + timedelta(hours=6))]
    assert s.regular and s.step_s == 1800


def test_fill_gaps_fills_a_missing_stretch_between_files() -> None:
    a = series("GB", T0, 3600, [100.0] * 2)
    b = series("GB", T0 + timedelta(hours=5), 3600, [200.0] * 2)
    joined = merge_series([a, b], "a+b")
    s, gaps = fill_gaps(joined, "GB", T0, T0 + timedelta(hours=7), lambda t: 7.0, "x")
    assert [g.hours for g in gaps] == [3.0]
    assert s.value_at(T0 + timedelta(hours=3)) == 7.0 and s.value_at(T0 + timedelta(hours=6)) == 200.0


def test_a_year_that_stops_a_day_short_is_used_and_only_the_day_filled(tmp_path: Path) -> None:
    (tmp_path / "GB_2024_hourly.csv").write_text(em_export("GB", T0, 24 * 9, 123.0), encoding="utf-8")
    end = T0 + timedelta(days=10)
    carbon, notes = load_carbon(tmp_path, ["GB"], T0, end)
    gb = carbon["GB"]
    assert gb.value_at(T0 + timedelta(days=8, hours=5)) == 123.0          # the real data kept
    profile = ProfileSource().profile("GB")
    t = T0 + timedelta(days=9, hours=5)
    assert gb.value_at(t) == profile.value(t)                             # the profile only after it
    assert notes == ["GB: real data from GB_2024_hourly.csv; the built-in typical profile for the 24.0 h it "
                     "does not cover: 2024-01-10 00:00–2024-01-11 00:00 UTC"]


def test_yearly_files_of_a_zone_are_joined(tmp_path: Path) -> None:
    (tmp_path / "GB_2023_hourly.csv").write_text(em_export("GB", T0 - timedelta(hours=48), 48, 50.0))
    (tmp_path / "GB_2024_hourly.csv").write_text(em_export("GB", T0, 48, 150.0))
    (tmp_path / "FR_2024_hourly.csv").write_text(em_export("FR", T0, 48, 30.0))
    assert [p.name for p in zone_files(tmp_path, "GB")] == ["GB_2023_hourly.csv", "GB_2024_hourly.csv"]
    s, paths = load_zone(tmp_path, "GB")
    assert s is not None and len(paths) == 2
    assert s.covers(T0 - timedelta(hours=48), T0 + timedelta(hours=48))
    carbon, notes = load_carbon(tmp_path, ["GB"], T0 - timedelta(hours=40), T0 + timedelta(hours=40))
    assert notes == [] and carbon["GB"].value_at(T0 - timedelta(hours=1)) == 50.0


def test_a_zone_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "DE").mkdir()
    (tmp_path / "DE" / "2024.csv").write_text(ci_csv(T0, 24, 300.0))
    s, _ = load_zone(tmp_path, "DE")
    assert s is not None and s.values[0] == 300.0


def test_a_zone_without_data_or_profile_is_named_unknown(tmp_path: Path) -> None:
    carbon, notes = load_carbon(tmp_path, ["NO-NO1"], T0, T0 + timedelta(days=1))
    assert "NO-NO1" not in carbon
    assert notes[0].startswith("NO-NO1: no intensity data (no file for it in ")
    assert "emissions of jobs at its sites are unknown" in notes[0]


def test_real_data_without_a_profile_says_which_hours_are_unknown(tmp_path: Path) -> None:
    (tmp_path / "NO-NO1_2024_hourly.csv").write_text(em_export("NO-NO1", T0, 24, 20.0))
    carbon, notes = load_carbon(tmp_path, ["NO-NO1"], T0, T0 + timedelta(days=2))
    assert carbon["NO-NO1"].values[0] == 20.0
    assert "miss 24.0 h (2024-01-02 00:00–2024-01-03 00:00 UTC)" in notes[0] and "unknown" in notes[0]


def test_pounds_per_mwh_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "GB.csv"
    path.write_text(ci_csv(T0, 3, 2400.0))          # a coal plant's marginal rate in lb/MWh
    with pytest.raises(InvalidInput) as e:
        load_series(path, "GB")
    assert "--carbon-unit" in e.value.problems[0].render()
    s = load_series(path, "GB", unit=IntensityUnit.LB_PER_MWH)
    assert s.values[0] == pytest.approx(2400 * 0.45359237)
    carbon, _ = load_carbon(tmp_path, ["GB"], T0, T0 + timedelta(hours=3), IntensityUnit.LB_PER_MWH)
    assert carbon["GB"].values[0] == pytest.approx(1088.6, abs=0.1)


def test_implausible_magnitudes_are_warned(tmp_path: Path) -> None:
    assert implausible(series("GB", T0, 3600, [250.0])) is None
    (tmp_path / "GB.csv").write_text(ci_csv(T0, 3, 0.21))          # kg/kWh
    (tmp_path / "FR.csv").write_text(ci_csv(T0, 3, 1500))          # lb/MWh
    _, notes = load_carbon(tmp_path, ["GB", "FR"], T0, T0 + timedelta(hours=3))
    assert notes[0].startswith("warning: FR: mean 1,500 g/kWh is above the dirtiest real grids")
    assert "--carbon-unit lb/MWh" in notes[0]
    assert notes[1].startswith("warning: GB: mean 0.21 g/kWh is implausibly low") and "kg/kWh" in notes[1]
