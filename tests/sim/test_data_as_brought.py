"""``accord simulate`` on data as users bring it (issue 22), end to end: bad rows are
file:line errors (exit 2, no traceback) or counted skips under ``--skip-bad-rows``; the SWF
options; column mapping; homes without groups; grid files that stop short, yearly files,
unknown zones; rejected jobs' reasons and the job set the saving is over."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accord.cli import main
from accord.sim.scenario import load_scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sim"
FEDERATION = str(FIXTURES / "federation.toml")
Capture = pytest.CaptureFixture[str]
SWF_HEAD = "; Version: 2.2\n; UnixStartTime: 1578268800\n"   # 2020-01-06T00:00:00Z
SWF_ROWS = ("1 0 0 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1\n"
            "2 60 0 1800 4 -1 -1 4 3600 -1 0 2 1 -1 2 1 -1 -1\n"
            "3 120 0 600 2 -1 -1 2 3600 -1 1 3 1 -1 1 2 -1 -1\n")


def simulate(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--quiet", *args])
    return int(e.value.code or 0)


def results(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "results.json").read_text())
    return doc


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


@pytest.mark.parametrize("policy", ["home", "carbon"])
def test_nan_in_a_trace_is_a_located_error_with_any_policy(tmp_path: Path, capsys: Capture,
                                                           policy: str) -> None:
    trace = write(tmp_path, "t.swf", SWF_HEAD + SWF_ROWS + "4 nan 0 60 2 -1 -1 2 60 -1 1 3 1 -1 1 1 -1 -1\n")
    code = simulate("--federation", FEDERATION, "--trace", trace, "--policy", policy,
                    "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and f"{trace}:6: field 2 (submit time): is not a finite number (got nan" in err
    assert "Traceback" not in err and not (tmp_path / "o" / "results.json").exists()


def test_skip_bad_rows_runs_and_reports_them(tmp_path: Path) -> None:
    trace = write(tmp_path, "t.swf", SWF_HEAD + SWF_ROWS + "4 60 0 inf 2 -1 -1 2 60 -1 1 3 1 -1 1 1 -1 -1\n")
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--skip-bad-rows", "--out", str(out)) == 0
    doc = results(out)
    assert doc["scenario"]["jobs"] == 3
    assert any(n.startswith(f"1 bad row(s) skipped (--skip-bad-rows), e.g. {trace}:6: field 4 (run time)")
               for n in doc["notes"]), doc["notes"]


def test_swf_options_on_the_command_line(tmp_path: Path) -> None:
    trace = write(tmp_path, "t.swf", SWF_HEAD + SWF_ROWS)
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--procs-per-gpu", "2", "--swf-status",
                    "completed", "--queue", "1", "--partition", "1", "--out", str(out)) == 0
    doc = results(out)
    assert doc["scenario"]["jobs"] == 1 and doc["scenario"]["gpu_hours"] == 4.0   # job 1: 8 procs / 2
    assert doc["scenario"]["start"] == "2020-01-06T00:00:00+00:00"               # UnixStartTime
    assert any("trace rows skipped:" in n and "in another partition (--partition): 1" in n
               and "failed (status 0; --swf-status completed): 1" in n for n in doc["notes"]), doc["notes"]


def test_unix_start_time_sets_the_start_unless_given(tmp_path: Path) -> None:
    trace = write(tmp_path, "t.swf", SWF_HEAD.replace("1578268800", "1583107200") + SWF_ROWS)
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--out", str(out)) == 0
    doc = results(out)
    assert doc["scenario"]["start"] == "2020-03-02T00:00:00+00:00"
    assert any("the trace's own start (its UnixStartTime header" in n for n in doc["notes"])
    assert simulate("--federation", FEDERATION, "--trace", trace, "--start", "2020-01-07T00:00:00Z",
                    "--out", str(out)) == 0
    assert results(out)["scenario"]["start"] == "2020-01-07T00:00:00+00:00"


def test_generic_csv_with_its_own_names_and_hours_and_no_groups(tmp_path: Path) -> None:
    rows = "".join(f"{i / 10},{0.5 + i % 3},{1 + i % 4}\n" for i in range(40))
    trace = write(tmp_path, "jobs.csv", "arrival_time,length,cpus\n" + rows)
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--columns",
                    "submit=arrival_time,runtime=length,gpus=cpus", "--time-unit", "h",
                    "--out", str(out)) == 0
    doc = results(out)
    assert doc["scenario"]["jobs"] == 40
    assert len([p for p, n in doc["scenario"]["homes"].items() if n]) > 1          # homes spread
    assert any(n.startswith("the trace has no groups") and "drawn on its own" in n
               for n in doc["notes"]), doc["notes"]


def em_export(zone: str, start: datetime, hours: int, value: float) -> str:
    head = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
            "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
            "Data Estimated,Data Estimation Method\n")
    return head + "".join(f"{start + timedelta(hours=h):%Y-%m-%d %H:%M:%S},X,X,{zone},{value},{value},1,1,x,"
                          "false,\n" for h in range(hours))


def test_grid_files_that_stop_short_are_used_and_the_gap_named(tmp_path: Path) -> None:
    carbon = tmp_path / "carbon"
    carbon.mkdir()
    t0 = datetime(2020, 1, 6, tzinfo=UTC)
    write(carbon, "GB_2020_hourly.csv", em_export("GB", t0, 24, 200.0))
    trace = write(tmp_path, "t.swf", SWF_HEAD + SWF_ROWS)
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--carbon", str(carbon),
                    "--out", str(out)) == 0
    notes = results(out)["notes"]
    assert any(n.startswith("GB: real data from GB_2020_hourly.csv; the built-in typical profile for the ")
               and "2020-01-07 00:00–" in n for n in notes), notes
    assert any(n.startswith("FR: built-in typical profile for the whole span (no file for it in")
               for n in notes), notes


def test_unknown_emissions_are_never_a_silent_total(tmp_path: Path, capsys: Capture) -> None:
    fed = write(tmp_path, "fed.toml", (FIXTURES / "federation.toml").read_text().replace(
        'grid_zone = "DE"', 'grid_zone = "NO-NO1"'))
    trace = write(tmp_path, "t.swf", SWF_HEAD + SWF_ROWS)
    out = tmp_path / "o"
    assert simulate("--federation", fed, "--trace", trace, "--homes", "de=1", "--policy", "home",
                    "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "0.00+?" in printed and "+?: the total leaves out up to 3 completed job(s)" in printed
    notes = results(out)["notes"]
    assert any(n.startswith("NO-NO1: no intensity data") for n in notes)
    assert "3 jobs unknown" in (out / "report.html").read_text()


def test_saving_is_printed_beside_the_emissions_of_the_same_jobs(tmp_path: Path, capsys: Capture) -> None:
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", str(FIXTURES / "small.swf"), "--carbon",
                    "shared:carbon", "--policy", "home", "--policy", "carbon", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "compared" in printed and "over the 'compared' jobs" in printed
    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    doc = results(out)
    for row, run in zip(rows, doc["variants"][0]["runs"], strict=True):
        assert int(row["compared"]) == run["comparison"]["jobs"]
        assert float(row["compared_t"]) == pytest.approx(run["comparison"]["emissions_t"], rel=1e-5)


def test_rejected_jobs_have_their_reason_in_the_report(tmp_path: Path) -> None:
    trace = write(tmp_path, "jobs.csv", "submit,gpus,runtime,group\n0,1,60,a\n10,100000,60,a\n")
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--out", str(out)) == 0
    report = (out / "report.html").read_text()
    assert "1 job(s) rejected: 1 asks for more GPUs than any pool has (up to 100,000" in report
    row = next(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert row["rejected_too_large"] == "1" and row["rejected_other"] == "0"


def test_scenario_file_takes_the_data_options(tmp_path: Path, capsys: Capture) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'[simulation]\nfederation = "{FEDERATION}"\ntrace = "t.swf"\n'
                        'carbon_unit = "lb/MWh"\n[trace]\nskip_bad_rows = true\n'
                        'swf_status = "completed"\nqueues = [1]\n'
                        'partitions = [1, 2]\ntime_unit = "h"\nprocs_per_gpu = 2\n'
                        'columns = { submit = "arrival" }\n[homes]\nby = "auto"\n')
    s = load_scenario(scenario)
    assert (s.skip_bad_rows, s.swf_status.value, s.queues, s.partitions, s.time_unit.value, s.columns,
            s.carbon_unit.value, s.home_rule.value, s.start) == (
        True, "completed", frozenset({1}), frozenset({1, 2}), "h", (("submit", "arrival"),), "lb/MWh",
        "auto", None)
    scenario.write_text(f'[simulation]\nfederation = "{FEDERATION}"\ntrace = "t.swf"\n'
                        '[trace]\nqueues = "one"\ncolumns = { submit = 3 }\n')
    assert simulate("--scenario", str(scenario), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert f"{scenario}:5: trace.queues: must be a list of SWF numbers (got 'one'" in err, err
    assert f"{scenario}:6: trace.columns: must map Accord's column names to the file's" in err, err


def test_bad_command_line_data_options(tmp_path: Path, capsys: Capture) -> None:
    common = ["--federation", FEDERATION, "--trace", str(FIXTURES / "small.swf"), "--out", str(tmp_path)]
    assert simulate(*common, "--queue", "one") == 2
    assert simulate(*common, "--columns", "submit") == 2
    assert simulate(*common, "--procs-per-gpu", "0") == 2
    err = capsys.readouterr().err
    assert "--queue: is not a list of whole numbers (got one" in err
    assert "--columns: is not a list of ours=yours (got submit" in err
    assert "--procs-per-gpu: is out of range (got 0" in err


def test_jobs_no_pool_may_take_are_told_apart(tmp_path: Path) -> None:
    """Before any agreement is in force, a German job too large for Juelich may run nowhere."""
    trace = write(tmp_path, "jobs.csv", "submit,gpus,runtime,group,partner\n0,200,60,a,de\n10,1,60,a,de\n")
    out = tmp_path / "o"
    assert simulate("--federation", FEDERATION, "--trace", trace, "--homes-by", "column", "--start",
                    "2018-01-01T00:00:00Z", "--out", str(out)) == 0
    u = results(out)["variants"][0]["runs"][0]["unplaced"]
    assert (u["jobs"], u["too_large"], u["no_pool"], u["other"]) == (1, 0, 1, 0)
    report = (out / "report.html").read_text()
    assert "1 job(s) rejected: 1 may run at no pool (none of their partner" in report
