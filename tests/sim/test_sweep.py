"""Sweeps: policies × variants × seeds run here or in local worker processes give the same
results, job for job and figure for figure; seeds become replications (each figure's mean
and 95 % interval); bad ``--workers``, ``--seeds`` and ``seeds`` values, too many runs and
a worker dying are clear errors naming the option, never a traceback."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accord.cli import main
from accord.cli.simulate import MAX_WORKERS as CLI_MAX_WORKERS
from accord.domain.errors import InvalidInput
from accord.sim.executors import HERE, MAX_WORKERS, Mode, Workers, execute, parse_workers, run_sweep
from accord.sim.model import Policy
from accord.sim.replications import interval, t975
from accord.sim.runner import Results
from accord.sim.scenario import MAX_RUNS, Scenario, load_scenario
from accord.sim.sweep import inputs_of, merge, plan
from tests.sim.sweep_faults import die_on_carbon

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sim"
Capture = pytest.CaptureFixture[str]


def small(seeds: tuple[int, ...] = (1, 2)) -> Scenario:
    """The example scenario, cut to 60 jobs, two policies, two variants and ``seeds``."""
    s = load_scenario(FIXTURES / "scenario.toml")
    return dataclasses.replace(s, jobs=60, policies=(Policy.HOME, Policy.CARBON), seeds=seeds, seed=seeds[0])


def without_seconds(results: Results) -> dict[str, Any]:
    """The results as JSON, bar each run's wall-clock seconds (the one figure that differs)."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "seconds"}
        return [strip(v) for v in x] if isinstance(x, list) else x
    doc = {"scenario": results.scenario, "variants": results.variants, "notes": results.notes}
    out: dict[str, Any] = json.loads(json.dumps(strip(doc), default=float).replace("NaN", "null"))
    return out


@pytest.mark.slow
def test_local_workers_give_the_serial_results_job_for_job_and_figure_for_figure() -> None:
    s = small()
    units = plan(s)
    assert len(units) == 2 * 2 * 3   # seeds × variants × (oracle + two policies)
    here = execute(units, HERE)
    there = execute(units, parse_workers("2"))
    for u, a, b in zip(units, here, there, strict=True):
        assert np.array_equal(a.grams, b.grams, equal_nan=True), u.label       # job for job
        assert {k: v for k, v in a.figures.items() if k != "seconds"} == \
            {k: v for k, v in b.figures.items() if k != "seconds"}, u.label
    inputs = inputs_of(units[0].scenario)
    serial, parallel = merge(inputs, units, here), merge(inputs, units, there)
    assert without_seconds(serial) == without_seconds(parallel)
    assert [v["name"] for v in parallel.variants] == ["today", "growth zone"]
    assert [b["seed"] for b in parallel.variants[0]["replications"]] == [1, 2]


def test_one_seed_runs_as_before_and_says_it_has_no_interval() -> None:
    results = run_sweep(small(seeds=(4,)))
    v = results.variants[0]
    assert "replications" not in v and results.scenario["seeds"] == [4] and results.scenario["seed"] == 4
    entry = v["intervals"][1]
    assert entry["policy"] == "carbon" and entry["note"].startswith("one seed: no interval")
    f = entry["figures"]["emissions_t"]
    assert f["n"] == 1 and f["low"] is None and f["high"] is None
    assert f["mean"] == pytest.approx(v["runs"][1]["emissions_t"])


def test_seeds_are_replications_with_a_student_t_interval() -> None:
    results = run_sweep(small(seeds=(1, 2, 3)))
    v = results.variants[0]
    totals = [b["runs"][1]["emissions_t"] for b in v["replications"]]
    assert len(set(totals)) > 1   # each seed draws other homes
    f = v["intervals"][1]["figures"]["emissions_t"]
    mean, sd = float(np.mean(totals)), float(np.std(totals, ddof=1))
    assert f["mean"] == pytest.approx(mean)
    assert f["high"] - f["mean"] == pytest.approx(4.302653 * sd / math.sqrt(3))
    assert v["runs"] == v["replications"][0]["runs"]   # "runs" stays the first seed's


def test_t_quantiles_and_intervals() -> None:
    assert [round(t975(d), 4) for d in (1, 2, 10, 30, 31, 60, 120)] == \
        [12.7062, 4.3027, 2.2281, 2.0423, 2.0395, 2.0003, 1.9799]
    assert interval([]).mean is None and interval([2.0, 2.0]).low == 2.0
    with pytest.raises(ValueError, match="degrees of freedom"):
        t975(0)


def test_a_worker_dying_mid_sweep_is_an_error_naming_workers() -> None:
    with pytest.raises(InvalidInput) as e:
        execute(plan(small(seeds=(1,))), parse_workers("2"), run=die_on_carbon)
    assert e.value.problems[0].render().startswith(
        "--workers: lost a worker process mid-sweep (killed, or out of memory?) (got 2")


def simulate(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--quiet", *args])
    return int(e.value.code or 0)


@pytest.mark.slow
def test_the_cli_sweeps_seeds_on_workers_and_prints_intervals(tmp_path: Path, capsys: Capture) -> None:
    code = simulate("--scenario", str(FIXTURES / "scenario.toml"), "--jobs", "40", "--policy", "home",
                    "--policy", "carbon", "--seeds", "1-2", "--workers", "2", "--out", str(tmp_path))
    out = capsys.readouterr().out
    assert code == 0 and "mean and 95 % interval over 2 seeds (Student t, 1 degrees of freedom)" in out
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["scenario"]["seeds"] == [1, 2] and len(doc["variants"][0]["replications"]) == 2
    rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert rows[0].endswith(",seed") and len(rows) == 1 + 2 * 2 * 2
    assert "Replications: mean and 95 % interval over 2 seeds" in (tmp_path / "report.html").read_text()


def test_one_seed_on_the_console_says_there_is_no_interval(tmp_path: Path, capsys: Capture) -> None:
    assert simulate("--federation", str(FIXTURES / "federation.toml"), "--trace", str(FIXTURES / "small.swf"),
                    "--carbon", "shared:carbon", "--policy", "home", "--out", str(tmp_path)) == 0
    assert "seed 1: one seed: no interval (give several seeds" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("value", "message"), [
    ("0", "--workers: is out of range (got 0, allowed a number of local processes, 1 to 64, or tcp://"),
    ("65", "--workers: is out of range (got 65"),
    ("many", "--workers: is neither a number of processes nor a scheduler's tcp://HOST:PORT (got many"),
    ("tcp://127.0.0.1", "--workers: is neither a number"),
    ("http://127.0.0.1:8786", "--workers: is neither a number"),
    ("tcp://127.0.0.1:99999", "--workers: is neither a number"),
    ("tcp://127.0.0.1:{port}", "--workers: no Dask scheduler answers there (Connection refused) "
                               "(got tcp://127.0.0.1:"),
])
def test_bad_workers_are_named(value: str, message: str, tmp_path: Path, capsys: Capture) -> None:
    code = simulate("--scenario", str(FIXTURES / "scenario.toml"), "--jobs", "10", "--policy", "home",
                    "--workers", value.format(port=free_port()), "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and "Traceback" not in err, err


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "1-x"], "--seeds: is not a list of seeds (got 1-x, allowed distinct whole numbers"),
    (["--seeds", "1,1"], "--seeds: names no seed or one twice (got 1,1"),
    (["--seeds", "0-5000"], "--seeds: has too many seeds (got 0-5000"),
    (["--seeds", "1-2", "--seed", "3"], "--seeds: goes without --seed"),
    (["--seeds", "0-200"], "sweep: has too many runs (got 2 variant(s) × 4 policies × 201 seed(s) = 1,608, "
                           "allowed at most 1,000 runs a sweep"),
])
def test_bad_seeds_and_too_many_runs_are_named(args: list[str], message: str, tmp_path: Path,
                                               capsys: Capture) -> None:
    code = simulate("--scenario", str(FIXTURES / "scenario.toml"), *args, "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and "Traceback" not in err, err


def test_seeds_in_a_scenario_file(tmp_path: Path, capsys: Capture) -> None:
    text = (FIXTURES / "scenario.toml").read_text()
    (tmp_path / "federation.toml").write_text((FIXTURES / "federation.toml").read_text())
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text.replace("seed = 1\n", "seeds = [3, 5]\n"))
    s = load_scenario(good)
    assert s.seeds == (3, 5) and s.seed == 3
    bad.write_text(text.replace("seed = 1\n", "seeds = [2, 2]\n"))
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    assert f"{bad}:10: simulation.seeds: is not a list of seeds (got [2, 2]" in capsys.readouterr().err
    bad.write_text(text.replace("seed = 1\n", "seed = 1\nseeds = [2, 3]\n"))
    assert simulate("--scenario", str(bad), "--out", str(tmp_path / "out")) == 2
    assert f"{bad}:11: simulation.seeds: goes without seed (give one or the other)" in capsys.readouterr().err


def test_the_bounds_are_one_and_documented() -> None:
    assert MAX_WORKERS == CLI_MAX_WORKERS == 64 and MAX_RUNS == 1000
    assert parse_workers("1") == HERE and parse_workers("tcp://[::1]:8786") == Workers(
        Mode.DASK, host="::1", port=8786, text="tcp://[::1]:8786")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "design" / "simulator.md").read_text()
    assert "1 to 64" in doc and "1,000 runs" in doc
