"""The carbon file formats: good files load, every bad row is located, times are UTC."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import accord.adapters.carbon.formats as formats
from accord.adapters.carbon.files import (
    ENV_VAR,
    FileSource,
    ZoneFile,
    load_ci_csv,
    load_em_export,
    load_em_wide,
    load_gb_api_json,
    load_series,
    shared_data_dir,
)
from accord.adapters.carbon.formats import (
    CarbonFormat,
    merge_series,
    parse_ci_csv,
    parse_em_api_json,
    parse_em_export,
    sniff_format,
)
from accord.domain.carbon.series import IntensityBasis, series
from accord.domain.errors import InvalidInput, Unavailable

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "carbon"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rendered(exc: InvalidInput) -> list[str]:
    return [p.render() for p in exc.problems]


def test_doctests_of_the_formats_module() -> None:
    assert doctest.testmod(formats).failed == 0


# ─── Time,Carbon Intensity ──────────────────────────────────────────────────────────────


def test_ci_csv_bad_rows_are_each_located() -> None:
    with pytest.raises(InvalidInput) as e:
        load_ci_csv(FIX / "ci_bad_rows.csv", "GB")
    src = str(FIX / "ci_bad_rows.csv")
    assert rendered(e.value) == [
        f"{src}:3: Carbon Intensity: not an intensity (got '-4', allowed {formats.ALLOWED_VALUE})",
        f"{src}:4: Carbon Intensity: not an intensity (got 'high', allowed {formats.ALLOWED_VALUE})",
        f"{src}:5: Time: not a time (got '2020-03-01 25:00:00', allowed an ISO time such as "
        "2020-01-01 00:30:00 or 2020-01-01T00:30:00Z)",
        f"{src}:6: row: wrong number of fields (got 2020-03-01 01:30:00, allowed Time,Carbon Intensity)",
        f"{src}:9: Carbon Intensity: not an intensity (got '3000', allowed {formats.ALLOWED_VALUE})",
        f"{src}:8: time: not after the previous row (got 2020-03-01T01:00:00+00:00, allowed a time "
        "after 2020-03-01T01:30:00+00:00 (line 7))",
    ]


def test_ci_csv_header_and_gaps() -> None:
    with pytest.raises(InvalidInput, match=r"x.csv:1: header: not a carbon-intensity CSV \(got Time,CI"):
        parse_ci_csv("Time,CI\n", "x.csv", "GB")
    text = "Time,Carbon Intensity\n2020-01-01 00:00:00,1\n2020-01-01 09:00:00,2\n"
    with pytest.raises(InvalidInput, match=r"x.csv:3: time: a gap of 9 h since the previous row"):
        parse_ci_csv(text, "x.csv", "GB")
    assert parse_ci_csv(text, "x.csv", "GB", max_gap_s=10 * 3600).step_s == 9 * 3600
    with pytest.raises(InvalidInput, match="no data rows"):
        parse_ci_csv("Time,Carbon Intensity\n", "x.csv", "GB")


def test_ci_csv_times_are_utc_unless_told_otherwise() -> None:
    text = "Time,Carbon Intensity\n2020-07-01 12:00:00,100\n2020-07-01 14:30:00+02:00,110\n"
    s = parse_ci_csv(text, "x.csv", "DE")
    assert s.starts == (utc(2020, 7, 1, 12), utc(2020, 7, 1, 12, 30))
    assert all(t.tzinfo is UTC for t in s.starts)
    london = ZoneInfo("Europe/London")
    s = parse_ci_csv("Time,Carbon Intensity\n2020-07-01 12:00:00,100\n2020-07-01 12:30:00,110\n",
                     "x.csv", "GB", assume_tz=london)
    assert s.starts == (utc(2020, 7, 1, 11), utc(2020, 7, 1, 11, 30))   # BST = UTC+1
    explicit = parse_ci_csv("Time,Carbon Intensity\n2020-07-01T11:00:00Z,100\n2020-07-01T13:30:00+02:00,1\n",
                            "x.csv", "GB")
    assert explicit.starts == (utc(2020, 7, 1, 11), utc(2020, 7, 1, 11, 30))


def test_local_times_that_a_clock_change_makes_ambiguous_are_refused() -> None:
    london = ZoneInfo("Europe/London")
    spring = "Time,Carbon Intensity\n2020-03-29 00:30:00,1\n2020-03-29 01:30:00,2\n2020-03-29 02:00:00,3\n"
    with pytest.raises(InvalidInput, match=r"x.csv:3: Time: does not exist, or exists twice"):
        parse_ci_csv(spring, "x.csv", "GB", assume_tz=london)
    autumn = "Time,Carbon Intensity\n2020-10-25 00:30:00,1\n2020-10-25 01:30:00,2\n"
    with pytest.raises(InvalidInput, match=r"x.csv:3: Time: does not exist, or exists twice"):
        parse_ci_csv(autumn, "x.csv", "GB", assume_tz=london)
    assert len(parse_ci_csv(spring, "x.csv", "GB").values) == 3   # as UTC, all fine


# ─── Electricity Maps export ────────────────────────────────────────────────────────────


def test_em_export_picks_a_zone_and_a_basis() -> None:
    path = FIX / "em_export_FR_DE_2021-06-01.csv"
    with pytest.raises(InvalidInput, match=r"the file holds several zones; name one .*got DE,FR"):
        load_em_export(path)
    fr = load_em_export(path, "FR")
    assert fr.zone == "FR" and fr.starts[0] == utc(2021, 6, 1) and fr.step_s == 3600
    assert fr.values == (31.08, 30.41, 29.87, 32.66)
    assert "lifecycle; 1 of 4 rows estimated" in fr.source
    de = load_em_export(path, "DE", IntensityBasis.DIRECT)
    assert de.values == (301.77, 309.40) and "direct" in de.source
    with pytest.raises(InvalidInput, match="no rows for this zone"):
        load_em_export(path, "GB")


def test_em_export_bad_rows_and_headers() -> None:
    path = FIX / "em_export_bad.csv"
    with pytest.raises(InvalidInput) as e:
        load_em_export(path, "FR")
    assert [(p.line, p.where) for p in e.value.problems] == [
        (3, "Carbon Intensity gCO₂eq/kWh (LCA)"), (4, "Datetime (UTC)")]
    assert e.value.problems[1].got == "'01/06/2021 02:00'"
    ascii_header = ("Datetime (UTC),Zone Id,Carbon Intensity gCO2eq/kWh (Life cycle)\n"
                    "2021-06-01 00:00:00,FR,31\n")
    assert parse_em_export(ascii_header, "x.csv").values == (31.0,)
    with pytest.raises(InvalidInput, match=r"missing columns \(got Datetime \(UTC\),Zone Id, allowed "):
        parse_em_export("Datetime (UTC),Zone Id\n", "x.csv")


# ─── date,time,<zone>... ────────────────────────────────────────────────────────────────


def test_em_wide_bad_rows() -> None:
    with pytest.raises(InvalidInput) as e:
        load_em_wide(FIX / "em_wide_bad.csv")
    assert [(p.line, p.where, p.got) for p in e.value.problems] == [
        (4, "date,time", "13/12/20,2:00:00"),
        (5, "row", "2/12/20,3:00:00,385.44"),
        (3, "CA-ON", "'n/a'"),
    ]
    good = formats.parse_em_wide("date,time,A,B\n2/12/20,0:00:00,1,2\n2/12/2020,1:00,3,4\n", "x")
    assert good["B"].values == (2.0, 4.0) and good["A"].starts[1] == utc(2020, 2, 12, 1)


# ─── API answers saved to files ─────────────────────────────────────────────────────────


def test_gb_api_json_uses_actual_else_forecast() -> None:
    s = load_gb_api_json(FIX / "gb_api_2021-06-01.json")
    assert s.zone == "GB" and s.step_s == 1800 and len(s.values) == 7
    assert s.starts[0] == utc(2021, 6, 1, 9, 30) and s.end == utc(2021, 6, 1, 13)
    assert s.values[:2] == (168.0, 160.0) and s.values[-2:] == (139.0, 137.0)
    assert "2 of 7 half-hours forecast, not actual" in s.source


def test_gb_api_json_bad_entries() -> None:
    with pytest.raises(InvalidInput) as e:
        load_gb_api_json(FIX / "gb_api_bad.json")
    assert [(p.where, p.got) for p in e.value.problems] == [
        ("data[0].intensity.actual/forecast", "'high'"),
        ("data[1].from", "'June 1st'"),
        ("data[2].intensity.actual/forecast", "null"),
        ("data[3].intensity.actual/forecast", "-5"),
    ]
    assert all(p.source == str(FIX / "gb_api_bad.json") for p in e.value.problems)
    with pytest.raises(InvalidInput, match="malformed JSON"):
        formats.parse_gb_api_json("{", "x.json")
    with pytest.raises(InvalidInput, match="data: missing or not a list"):
        formats.parse_gb_api_json('{"error": "x"}', "x.json")


def test_em_api_json_skips_hours_without_data() -> None:
    s = load_series(FIX / "em_history_DE.json", "DE")
    assert s.zone == "DE" and len(s.values) == 23 and s.values[0] == 412.0
    assert s.starts[-1] == utc(2024, 3, 1, 11) and "1 hours without data skipped" in s.source
    with pytest.raises(InvalidInput, match=r"data\[0\].carbonIntensity: not an intensity"):
        parse_em_api_json('{"zone":"FR","data":[{"datetime":"2021-06-01T00:00:00Z","carbonIntensity":"x"}]}',
                          "x.json")


def test_sniffing_and_unknown_formats(tmp_path: Path) -> None:
    assert sniff_format("Time,Carbon Intensity\n") is CarbonFormat.CI_CSV
    assert sniff_format((FIX / "em_export_bad.csv").read_text(encoding="utf-8")) is CarbonFormat.EM_EXPORT
    assert sniff_format('{"data":[{"intensity":{}}]}') is CarbonFormat.GB_API_JSON
    assert sniff_format('{"zone":"DE","history":[]}') is CarbonFormat.EM_API_JSON
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"odd.csv:1: format: not a carbon-intensity format"):
        load_series(odd, "GB")
    with pytest.raises(InvalidInput, match="not found"):
        load_series(tmp_path / "missing.csv", "GB")


def test_merge_series_keeps_the_first_on_overlap() -> None:
    a = series("FR", utc(2021, 1, 1), 3600, [1, 2])
    b = series("FR", utc(2021, 1, 1, 1), 3600, [9, 3])
    m = merge_series([a, b], "m")
    assert m.values == (1.0, 2.0, 3.0) and m.step_s == 3600
    with pytest.raises(InvalidInput, match="one zone"):
        merge_series([a, series("DE", utc(2021, 1, 1), 3600, [1])], "m")


# ─── location of the shared data; file source ───────────────────────────────────────────


def test_shared_data_dir_from_the_environment(tmp_path: Path) -> None:
    assert shared_data_dir({ENV_VAR: str(tmp_path)}) == tmp_path
    with pytest.raises(InvalidInput) as e:
        shared_data_dir({ENV_VAR: str(tmp_path / "nope")})
    assert e.value.problems[0].where == ENV_VAR and "carbon/gb_ci.csv" in (e.value.problems[0].allowed or "")


def test_file_source_answers_slices_and_says_why_not(tmp_path: Path) -> None:
    path = tmp_path / "gb.csv"
    path.write_text("Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 00:30:00,200\n"
                    "2020-01-01 01:00:00,300\n", encoding="utf-8")
    src = FileSource({"GB": ZoneFile(path), "FR": ZoneFile(tmp_path / "fr.csv")})
    s = src.intensity("GB", utc(2020, 1, 1, 0, 40), utc(2020, 1, 1, 1, 10))
    assert s.values == (200.0, 300.0) and s.source == str(path)
    with pytest.raises(Unavailable, match="no carbon file for zone 'DE'; files cover: GB, FR"):
        src.intensity("DE", utc(2020, 1, 1), utc(2020, 1, 1, 1))
    with pytest.raises(Unavailable, match="not readable"):
        src.intensity("FR", utc(2020, 1, 1), utc(2020, 1, 1, 1))
    with pytest.raises(Unavailable, match="not \\[2020-01-02"):
        src.intensity("GB", utc(2020, 1, 2), utc(2020, 1, 2, 1))
