"""``accord simulate`` end to end: a scenario with variants and policies, the outputs, and
bad input reported as file:line: field: message with exit status 2 (never a traceback)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from accord.cli import main
from accord.sim.scenario import load_scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sim"
Capture = pytest.CaptureFixture[str]


def simulate(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--quiet", *args])
    return int(e.value.code or 0)


def test_scenario_with_variants_writes_every_output(tmp_path: Path, capsys: Capture) -> None:
    scenario = str(FIXTURES / "scenario.toml")
    assert simulate("--scenario", scenario, "--jobs", "400", "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "growth zone" in printed and "carbon-reciprocity" in printed
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [v["name"] for v in doc["variants"]] == ["today", "growth zone"]
    today, growth = doc["variants"]
    assert growth["gpus"] == today["gpus"] - 128 + 128 + 120_000   # cambridge out, juelich doubled, NE in
    for v in doc["variants"]:
        assert [r["policy"] for r in v["runs"]] == ["home", "earliest", "carbon", "carbon-reciprocity"]
        for r in v["runs"]:
            assert r["completed"] + r["rejected"] == 400
            assert r["comparison"]["oracle_t"] <= r["comparison"]["emissions_t"] + 1e-9
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert len(rows) == 8 and rows[0]["policy"] == "home" and rows[0]["saving"] == "0"
    report = (tmp_path / "report.html").read_text()
    assert "<svg" in report and "<script" not in report and "http://" not in report.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert (tmp_path / "partners.csv").read_text().startswith("variant,policy,partner,")


def test_command_line_inputs_without_a_scenario(tmp_path: Path) -> None:
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"),
                    "--carbon", "shared:carbon", "--policy", "carbon", "--seed", "3", "--out", str(tmp_path))
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["scenario"]["jobs"] == 4 and doc["variants"][0]["runs"][0]["policy"] == "carbon"


def test_bad_trace_row_is_reported_with_its_line(tmp_path: Path, capsys: Capture) -> None:
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "bad.swf"),
                    "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "bad.swf:4: field 2 (submit time): is not a number (got abc" in err
    assert "Traceback" not in err


def test_bad_scenario_fields_are_reported_with_lines(tmp_path: Path, capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('policies = ["home"', 'policy_list = 1\npolicies = ["sometimes"')
                   .replace("gpus = 120000", "gpus = -5"))
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    code = simulate("--scenario", str(bad), "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert any(line.startswith(f"{bad}:11: simulation.policy_list: unknown field") for line in err), err
    assert any(line.startswith(f"{bad}:12: simulation.policies: names an unknown policy (got 'sometimes'")
               for line in err), err


def test_bad_variant_site_points_into_the_scenario(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((FIXTURES / "scenario.toml").read_text().replace("gpus = 120000", "gpus = -5")
                   .replace('remove_sites = ["cambridge"]', 'remove_sites = ["nowhere"]'))
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "variants[1].remove_sites: names no site of the federation (got 'nowhere'" in err


def test_missing_inputs_and_bad_numbers() -> None:
    assert simulate("--out", "x") == 2
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), "--load", "0", "--out", "x") == 2


def test_scenario_file_is_read_with_defaults() -> None:
    s = load_scenario(FIXTURES / "scenario.toml")
    assert s.window_h == 12 and s.shares == {"uk": 0.6, "fr": 0.25, "de": 0.15}
    assert [v.name for v in s.variants] == ["today", "growth zone"]
    assert s.trace.name == "philly_sia.csv" and s.federation == FIXTURES / "federation.toml"


def test_malformed_scenario_toml_gives_its_line(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[simulation]\nfederation = "f.toml"\ntrace = \n')
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    assert capsys.readouterr().err.startswith(f"{bad}:3: toml: malformed TOML: ")


def test_missing_trace_file_is_named(tmp_path: Path, capsys: Capture) -> None:
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(tmp_path / "none.csv"),
                    "--out", str(tmp_path))
    assert code == 2 and f"{tmp_path / 'none.csv'}: file: not found" in capsys.readouterr().err


def test_the_broker_engine_runs_the_live_broker_and_agrees_with_the_kernel(tmp_path: Path) -> None:
    """``--engine broker`` replays the trace through the live broker (fake ports); with the
    broker's own cadence (a context every pass, reconsideration every 10 min) the figures
    are the fast kernel's."""
    common = ["--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"),
              "--carbon", "shared:carbon", "--policy", "carbon", "--seed", "3", "--window-hours", "6"]
    scenario = tmp_path / "live.toml"
    fed, trace = FIXTURES / "federation.toml", FIXTURES / "small.swf"
    scenario.write_text('[simulation]\nrefresh_seconds = 60\nreplan_seconds = 600\n'
                        f'federation = "{fed}"\ntrace = "{trace}"\n')
    runs = {}
    for engine in ("fast", "broker"):
        out = tmp_path / engine
        assert simulate("--scenario", str(scenario), *common, "--engine", engine, "--out", str(out)) == 0
        doc = json.loads((out / "results.json").read_text())
        assert doc["scenario"]["engine"] == engine
        runs[engine] = doc["variants"][0]["runs"][0]
    fast, slow = runs["fast"], runs["broker"]
    assert slow["completed"] == fast["completed"] == 4
    for key in ("emissions_t", "energy_mwh", "wait_h"):
        assert slow[key] == pytest.approx(fast[key], rel=1e-9), key


def test_the_broker_engine_needs_dispatcher_passes(tmp_path: Path, capsys: Capture) -> None:
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"),
                    "--engine", "broker", "--pass-seconds", "0", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "pass_seconds" in err and "Traceback" not in err


def test_forecast_and_engine_choices_are_checked(tmp_path: Path, capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[simulation]", '[simulation]\nforecast = "crystal-ball"\nengine = "warp"'))
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "simulation.forecast" in err and "crystal-ball" in err and "history-7d" in err, err
    assert "simulation.engine" in err and "warp" in err and "broker" in err, err


def test_a_history_forecast_run_says_so(tmp_path: Path) -> None:
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"),
                    "--carbon", "shared:carbon", "--policy", "carbon", "--forecast", "history-7d",
                    "--start", "2020-03-02T00:00:00Z", "--window-hours", "12", "--out", str(tmp_path))
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["scenario"]["forecast"] == "history-7d" and doc["variants"][0]["runs"][0]["completed"] == 4


def test_bad_numbers_in_a_scenario_are_reported_not_defaulted(tmp_path: Path, capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("seed = 1", "seed = -4")
                   .replace("pass_seconds = 60", 'pass_seconds = "often"'))
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "simulation.seed" in err and "-4" in err, err
    assert "simulation.pass_seconds" in err and "often" in err, err


def test_outages_in_a_scenario_and_on_the_command_line(tmp_path: Path) -> None:
    """Juelich (de's only site) down for the first two days: under home FIFO de's jobs wait
    for it, so the mean wait rises; the outages are listed per variant in results.json, the
    scenario's in every variant, a variant's in its own only."""
    text = (FIXTURES / "scenario.toml").read_text()
    down = tmp_path / "down.toml"
    down.write_text(text.replace("[[variants]]\nname = \"today\"\n",
                                 "[[variants]]\nname = \"today\"\n\n[[variants.outages]]\nsite = \"paris\"\n"
                                 "start = 2020-01-06T00:00:00Z\nend = 2020-01-06T12:00:00Z\n", 1)
                  + '\n[[outages]]\nsite = "juelich"\nstart = 2020-01-06T00:00:00Z\n'
                  'end = 2020-01-08T00:00:00Z\n')
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    common = ("--jobs", "300", "--policy", "home")
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), *common, "--out", str(tmp_path / "a")) == 0
    assert simulate("--scenario", str(down), *common, "--out", str(tmp_path / "b")) == 0
    before, after = (json.loads((tmp_path / d / "results.json").read_text())["variants"] for d in "ab")
    juelich = {"site": "juelich", "start": "2020-01-06T00:00:00Z", "end": "2020-01-08T00:00:00Z"}
    assert after[0]["outages"] == [juelich, {"site": "paris", "start": "2020-01-06T00:00:00Z",
                                             "end": "2020-01-06T12:00:00Z"}]
    assert after[1]["outages"] == [juelich] and before[0]["outages"] == []
    assert "Sites down (they start nothing and do not answer the broker): juelich from 2020-01-06T00:00:00Z" \
        in (tmp_path / "b" / "report.html").read_text()
    for b, a in zip(before, after, strict=True):
        assert a["runs"][0]["wait_h"]["mean"] > b["runs"][0]["wait_h"]["mean"] + 0.1
    flag = ["--outage", "juelich,2020-01-06T00:00:00Z,2020-01-08T00:00:00Z"]
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), *common, *flag,
                    "--out", str(tmp_path / "c")) == 0
    by_flag = json.loads((tmp_path / "c" / "results.json").read_text())["variants"]
    assert by_flag[1]["runs"][0]["wait_h"] == after[1]["runs"][0]["wait_h"]


def test_bad_outages_are_reported_with_their_lines(tmp_path: Path, capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[[outages]]\nsite = "atlantis"\nstart = 2020-01-06T00:00:00Z\n'
                   'end = 2020-01-07T00:00:00Z\n\n[[outages]]\nsite = "paris"\nstart = "soon"\n'
                   'end = 2020-01-05T00:00:00Z\nuntil = 3\n')
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "outages[1].start" in err and "soon" in err and "outages[1].until" in err, err
    lines = text.count("\n") + 1
    assert f"bad.toml:{lines + 8}" in err or f"bad.toml:{lines + 9}" in err, err
    bad.write_text(text + '\n[[outages]]\nsite = "atlantis"\nstart = 2020-01-06T00:00:00Z\n'
                   'end = 2020-01-07T00:00:00Z\n')
    assert simulate("--scenario", str(bad), "--jobs", "10", "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "outages[0].site: names no site of the federation" in err and "atlantis" in err, err
    for flag in ("juelich,2020-01-06", "juelich,2020-01-07T00:00:00Z,2020-01-06T00:00:00Z", "juelich,x,y"):
        assert simulate("--scenario", str(FIXTURES / "scenario.toml"), "--outage", flag,
                        "--out", str(tmp_path / "out")) == 2
        assert "--outage" in capsys.readouterr().err


def test_failures_drawn_at_random_are_the_same_for_a_site_in_every_variant(tmp_path: Path,
                                                                          capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    drawn = tmp_path / "drawn.toml"
    drawn.write_text(text + "\n[failures]\nmtbf_hours = 48\nmttr_hours = 6\n")
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    common = ("--jobs", "300", "--policy", "home")
    assert simulate("--scenario", str(drawn), *common, "--out", str(tmp_path / "a")) == 0
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    today, growth = doc["variants"]
    assert doc["scenario"]["failures"] == {"mtbf_hours": 48.0, "mttr_hours": 6.0, "seed": 1}
    assert today["failures"] and today["outages"] == []
    for site in ("bristol", "paris", "juelich"):
        mine = [o for o in today["failures"] if o["site"] == site]
        assert mine and mine == [o for o in growth["failures"] if o["site"] == site]
    assert {o["site"] for o in growth["failures"]} >= {"ne-agz"} and "cambridge" not in {
        o["site"] for o in growth["failures"]}
    assert "outages drawn at random" in (tmp_path / "a" / "report.html").read_text()
    flags = ("--mtbf-hours", "48", "--mttr-hours", "6")
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), *common, *flags,
                    "--out", str(tmp_path / "b")) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["variants"][0]["failures"] == \
        today["failures"]
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), *common, *flags, "--seed", "2",
                    "--out", str(tmp_path / "c")) == 0
    assert json.loads((tmp_path / "c" / "results.json").read_text())["variants"][0]["failures"] != \
        today["failures"]
    capsys.readouterr()
    drawn.write_text(text + "\n[failures]\nmtbf_hours = -1\nmttr = 6\n")
    assert simulate("--scenario", str(drawn), "--out", str(tmp_path / "d")) == 2
    err = capsys.readouterr().err
    assert "failures.mtbf_hours" in err and "failures.mttr" in err and "failures.mttr_hours" in err, err
    assert simulate("--scenario", str(FIXTURES / "scenario.toml"), "--mtbf-hours", "5",
                    "--out", str(tmp_path / "e")) == 2
    assert "--mtbf-hours: goes with --mttr-hours" in capsys.readouterr().err


# ── issue 18: a bad --out and jobs that fit nowhere are said plainly ──────────────────
def test_an_out_that_is_a_file_or_under_one_is_refused_before_the_run(tmp_path: Path,
                                                                       capsys: Capture) -> None:
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    inputs = ("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"))
    for out, why in ((existing, "is a file, not a directory"),
                     (existing / "x" / "y", "a part of it is a file")):
        assert simulate(*inputs, "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"--out: {why} (got {out}, allowed a directory"), err
        assert "Traceback" not in err
    assert existing.read_text() == "keep me"


def test_jobs_larger_than_every_pool_are_named_and_nothing_run_is_an_error(tmp_path: Path,
                                                                           capsys: Capture) -> None:
    trace = tmp_path / "big.csv"
    trace.write_text("submit,gpus,runtime,requested,group,partner\n"
                     "2020-01-01T00:00:00Z,100000,3600,7200,team-a,uk\n"
                     "2020-01-01T00:10:00Z,5000,600,,team-b,fr\n")
    code = simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(trace),
                    "--carbon", "shared:carbon", "--out", str(tmp_path / "out"))
    out, err = capsys.readouterr()
    assert code == 2
    assert "nan" not in out and "–       –" in out       # no wait to show: a dash, not "nan"
    assert ("note: base / home: 2 of 2 job(s) could not be placed: 2 ask for more GPUs than any pool "
            "has (up to 100,000; the largest pool has 256)") in err
    assert "accord: no job could run in any variant or policy" in err
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["variants"][0]["runs"][0]["unplaced"] == {
        "jobs": 2, "too_large": 2, "largest_pool": 256, "largest_asked": 100_000, "no_pool": 0, "other": 0}
