"""``accord simulate``: replay a trace over a federation and compare placement policies.

Either the inputs on the command line::

    accord simulate --federation F --trace T --carbon DIR --policy P [--policy P2] [--seed S] --out DIR

or a scenario file (several policies and federation variants in one run; options given on
the command line as well override the file's)::

    accord simulate --scenario scenario.toml --out DIR

Writes ``results.json``, ``summary.csv``, ``partners.csv`` and ``report.html`` into DIR
(created if missing; checked before the run) and prints the summary, with a note for each
run whose jobs could not all be placed, saying why. Bad input gives
``file:line: field: message`` and exit status 2, as does a scenario in which no job could
run at all (the outputs are written all the same, to see why).

``accord trace from-sacct FILE`` turns Slurm accounting (``sacct --parsable2``) into a
trace the simulator reads (the Standard Workload Format).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from accord.cli.common import EXIT_INPUT, Command
from accord.domain.carbon.series import IntensityUnit
from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import AccordError, InvalidInput, Problem
from accord.domain.traces.trace import HomeRule, SwfStatus, TimeUnit, TraceFormat
from accord.sim.model import POLICY_HELP, Engine, Failures, Outage, Policy
from accord.sim.scenario import MAX_RUNS, Scenario, load_scenario, resolve_path

MAX_WORKERS = 64   # accord.sim.executors.MAX_WORKERS (not imported: it pulls in the simulator)

if TYPE_CHECKING:
    from accord.sim.runner import Results


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", type=Path, help="a scenario TOML file (docs/design/simulator.md)")
    p.add_argument("--federation", help="federation TOML file")
    p.add_argument("--trace", help="job trace (Philly CSV, Alibaba pod list, SWF, generic CSV); "
                                    "'shared:traces/...' reads the shared data directory")
    p.add_argument("--format", choices=[f.value for f in TraceFormat], help="trace format (default: sniffed)")
    p.add_argument("--carbon", help="directory of grid intensity files ('shared:carbon' for the shared "
                                     "data); per zone GB.csv, yearly GB_2024_hourly.csv..., or GB/*")
    p.add_argument("--carbon-unit", choices=[u.value for u in IntensityUnit],
                   help="the unit of the intensity files (default g/kWh)")
    p.add_argument("--policy", action="append", choices=[x.value for x in Policy],
                   help="; ".join(f"{k.value}: {v}" for k, v in POLICY_HELP.items()) + " (repeatable)")
    _trace_arguments(p)
    p.add_argument("--seed", type=int, help="the seed homes (and random outages) are drawn from")
    p.add_argument("--seeds", help="replications: run everything once per seed, e.g. 1-10 or 1,2,7; the "
                                   "report gives each figure's mean and 95 %% interval")
    p.add_argument("--workers", default="1",
                   help=f"run the sweep's runs in parallel: N local processes (1 to {MAX_WORKERS}; "
                        "default 1, this process), or tcp://HOST:PORT of a Dask scheduler (accord[cluster])")
    p.add_argument("--jobs", type=int, help="simulate this many jobs (the first, or copies of the trace)")
    p.add_argument("--load", type=float, help="arrival-rate factor (2: twice as many jobs per hour)")
    p.add_argument("--size", type=float, help="GPU-count factor")
    p.add_argument("--start", help="when the first job is submitted (ISO time; default: an SWF trace's "
                                    "UnixStartTime, else 2020-01-06)")
    p.add_argument("--window-hours", type=float, help="every job may start this late (its deadline)")
    p.add_argument("--homes", help="home partner shares, e.g. uk=0.6,fr=0.4 (default: by GPUs owned)")
    p.add_argument("--homes-by", choices=[h.value for h in HomeRule],
                   help="draw homes per trace group or job; auto (default): by group when the trace has "
                        "groups, else by job")
    p.add_argument("--pass-seconds", type=float, help="dispatcher pass interval (0: place on arrival)")
    p.add_argument("--backfill", action="store_true", help="EASY backfilling at every pool")
    p.add_argument("--forecast", choices=[f.value for f in Forecast],
                   help="what placement's forecasts are: perfect (the actual intensity, default: the "
                        "oracle), history-7d (each slot's mean at that time of day over the 7 days "
                        "before) or profile (the zone's built-in typical month x hour value: no feed)")
    p.add_argument("--engine", choices=[e.value for e in Engine],
                   help="fast: the simulator's kernel (default); broker: the live broker through fake "
                        "ports, slow, to check the kernel on small traces")
    p.add_argument("--outage", action="append", metavar="SITE,START,END",
                   help="site SITE does not answer from START to END (ISO times), in every variant "
                        "that has it; repeatable")
    p.add_argument("--mtbf-hours", type=float, help="draw outages at random for every site: the mean "
                                                   "time between them (with --mttr-hours)")
    p.add_argument("--mttr-hours", type=float, help="the mean length of a drawn outage")
    p.add_argument("--out", type=Path, required=True, help="directory for the report and data")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _trace_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip trace rows with a bad field, counted and quoted in the report (default: "
                        "every bad row is an error)")
    p.add_argument("--procs-per-gpu", type=int, help="SWF (and generic CSV) processors per GPU (default 1)")
    p.add_argument("--swf-status", choices=[x.value for x in SwfStatus],
                   help="ran (default): replay completed, failed and cancelled jobs for the time they ran; "
                        "completed: only completed jobs")
    p.add_argument("--queue", help="SWF: only these queues (field 15), e.g. 1,3")
    p.add_argument("--partition", help="SWF: only these partitions (field 16), e.g. 2")
    p.add_argument("--columns", help="CSV: Accord's column names to yours, e.g. "
                                      "submit=arrival_time,runtime=length,gpus=cpus")
    p.add_argument("--time-unit", choices=[u.value for u in TimeUnit],
                   help="generic CSV: the unit of numeric submit times and durations (default s)")


def run(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    """Run the command; its exit status (problems are printed, never raised)."""
    from accord.sim.executors import parse_workers, run_sweep
    from accord.sim.report import summary_rows

    err = stderr or sys.stderr
    try:
        workers = parse_workers(args.workers)
        scenario = scenario_from_args(args)
        out_dir(args.out)
        bar = None if args.quiet else ProgressBar(err)
        t0 = time.perf_counter()
        results = run_sweep(scenario, workers, bar)
        if bar is not None:
            bar.done()
        paths = _write(results, args.out)
    except InvalidInput as exc:
        for problem in exc.problems:
            print(problem.render(), file=err)
        return EXIT_INPUT
    except AccordError as exc:
        print(f"accord: {exc}", file=err)
        return EXIT_INPUT
    for note in results.notes:
        print(f"note: {note}", file=err)
    _print_summary(summary_rows(results), results.scenario["seeds"])
    _print_intervals(results)
    print(f"{time.perf_counter() - t0:.1f} s; wrote " + ", ".join(str(p) for p in paths))
    return _unplaced(results.variants, err)


OUT_ALLOWED = "a directory (created if missing) for report.html, results.json, summary.csv, partners.csv"


def out_dir(path: Path) -> None:
    """Make sure the outputs can be written into ``path`` (created if missing) before a run.

    Raises:
        InvalidInput: at ``--out``: it is a file, a part of it is a file, or it cannot be
            created or written.
    """
    if path.exists() and not path.is_dir():
        raise InvalidInput([Problem("--out", "is a file, not a directory", str(path), OUT_ALLOWED)])
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a part of it is a file" if isinstance(exc, (NotADirectoryError, FileExistsError)) \
            else f"cannot be created ({exc.strerror or exc})"
        raise InvalidInput([Problem("--out", why, str(path), OUT_ALLOWED)]) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput([Problem("--out", "is not writable", str(path), OUT_ALLOWED)])


def _write(results: Results, out: Path) -> list[Path]:
    """Write the outputs into ``out``.

    Raises:
        InvalidInput: at ``--out``: a file cannot be written (e.g. the disk is full).
    """
    from accord.sim.report import write_outputs

    try:
        return list(write_outputs(results, out))
    except OSError as exc:
        raise InvalidInput([Problem("--out", f"cannot write {exc.filename or out}: {exc.strerror or exc}",
                                    str(out), OUT_ALLOWED)]) from None


def _print_summary(rows: list[dict[str, Any]], seeds: list[int]) -> None:
    """The summary table: all completed jobs' emissions (marked when some are unknown), then
    the saving over the jobs every run of the variant completed with known emissions,
    beside those jobs' own emissions, so the saving and the total it is read from match.
    With several seeds, one row per seed (the means and intervals follow)."""
    if len(seeds) > 1:
        print(f"{len(seeds)} seeds: each run once per seed; the rows are seed {seeds[0]}'s (results.json and "
              "summary.csv have every seed's)")
        rows = [r for r in rows if r["seed"] == seeds[0]]
    print(f"{'variant':<20} {'policy':<19} {'done':>8} {'t CO2e':>11} {'compared':>8} {'t CO2e':>10} "
          f"{'saving':>7} {'of oracle':>9} {'wait h':>7} {'p95 h':>7}")
    unknown = 0
    for row in rows:
        unknown = max(unknown, row["emissions_unknown"])
        total = f"{row['emissions_t']:.2f}" + ("+?" if row["emissions_unknown"] else "")
        print(f"{row['variant'][:20]:<20} {row['policy']:<19} {row['completed']:>8,} {total:>11} "
              f"{row['compared']:>8,} {row['compared_t']:>10.2f} {_pct(row['saving']):>7} "
              f"{_pct(row['share_of_achievable']):>9} {_hours(row['wait_mean_h']):>7} "
              f"{_hours(row['wait_p95_h']):>7}")
    print("saving and of oracle: over the 'compared' jobs (done in every run of the variant, emissions "
          "known), whose emissions are the second t CO2e")
    if unknown:
        print(f"+?: the total leaves out up to {unknown:,} completed job(s) whose emissions are unknown (no "
              "intensity data for their zone and hours; see the notes)")


def _print_intervals(results: Results) -> None:
    """Each figure's mean and 95 % interval over the seeds, or plainly that one seed has none."""
    from accord.sim.replications import FIGURES, ONE_SEED

    seeds = results.scenario["seeds"]
    if len(seeds) < 2:
        print(f"seed {seeds[0]}: {ONE_SEED}")
        return
    shown = ("emissions_t", "saving", "share_of_achievable", "wait_mean_h", "wait_p95_h")
    labels = dict(FIGURES)
    print(f"mean and 95 % interval over {len(seeds)} seeds (Student t, {len(seeds) - 1} degrees of freedom):")
    print(f"{'variant':<20} {'policy':<19} " + " ".join(f"{labels[k]:>24}" for k in shown))
    for v in results.variants:
        for entry in v["intervals"]:
            cells = [_interval(entry["figures"][k], k in ("saving", "share_of_achievable")) for k in shown]
            print(f"{v['name'][:20]:<20} {entry['policy']:<19} " + " ".join(f"{c:>24}" for c in cells))


def _interval(f: dict[str, Any], percent: bool) -> str:
    """``mean [low, high]``; ``mean (n=1)`` when only one seed gave a number; ``–`` with none."""
    def text(x: float) -> str:
        return f"{x:.1%}" if percent else f"{x:.3g}"
    if f["mean"] is None:
        return "–"
    if f["low"] is None:
        return f"{text(f['mean'])} (n={f['n']})"
    return f"{text(f['mean'])} [{text(f['low'])}, {text(f['high'])}]"


def _unplaced(variants: list[dict[str, Any]], err: TextIO) -> int:
    """Say, for each run, how many jobs could not be placed and why; the exit status: 0,
    or :data:`EXIT_INPUT` when no job of any run could run."""
    from accord.sim.report import unplaced_reasons

    ran = 0
    for v in variants:
        for block in v.get("replications") or [{"seed": None, "runs": v["runs"]}]:
            seed = "" if block["seed"] is None else f" / seed {block['seed']}"
            for r in block["runs"]:
                ran += r["completed"]
                u = r["unplaced"]
                if u["jobs"]:
                    print(f"note: {v['name']} / {r['policy']}{seed}: {u['jobs']:,} of {r['jobs']:,} job(s) "
                          f"could not be placed: {'; '.join(unplaced_reasons(u))}", file=err)
    if ran == 0:
        print("accord: no job could run in any variant or policy (see the notes above); the outputs "
              "were written all the same", file=err)
        return EXIT_INPUT
    return 0


def _pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.0%}"


def _hours(v: float | None) -> str:
    """Hours to two places; "–" when there is no figure (no job ran)."""
    return "–" if v is None or v != v else f"{v:.2f}"


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario file's settings (if given) with the command line's on top.

    Raises:
        InvalidInput: a missing required input, or a bad option or file.
    """
    base = load_scenario(args.scenario) if args.scenario else None
    here = Path.cwd()
    problems = [Problem(f"--{name}", "is required without --scenario", allowed="a path")
                for name in ("federation", "trace") if base is None and getattr(args, name) is None]
    if problems:
        raise InvalidInput(problems)
    changes: dict[str, Any] = {}
    for name in ("federation", "trace", "carbon"):
        if getattr(args, name):
            changes[name] = resolve_path(getattr(args, name), here)
    changes.update(_seed_changes(args))
    simple = {"seed": "seed", "jobs": "jobs", "load": "load", "size": "size", "pass_seconds": "pass_s"}
    for arg, key in simple.items():
        if getattr(args, arg) is not None:
            changes[key] = getattr(args, arg)
    if args.policy:
        changes["policies"] = tuple(dict.fromkeys(Policy(p) for p in args.policy))
    if args.format:
        changes["trace_format"] = TraceFormat(args.format)
    if args.window_hours is not None:
        changes["window_h"] = args.window_hours
    if args.backfill:
        changes["backfill"] = True
    if args.engine:
        changes["engine"] = Engine(args.engine)
    if args.forecast:
        changes["forecast"] = Forecast(args.forecast)
    if args.homes_by:
        changes["home_rule"] = HomeRule(args.homes_by)
    if args.homes:
        changes["shares"] = _shares(args.homes)
    changes.update(_trace_changes(args))
    if args.start:
        changes["start"] = _start(args.start)
    if args.outage:
        changes["outages"] = (*(base.outages if base else ()), *_outages(args.outage))
    if args.mtbf_hours is not None or args.mttr_hours is not None:
        changes["failures"] = _failures(args, base)
    _check_numbers(changes)
    if base is None:
        return Scenario(**{"federation": Path(), "trace": Path(), "carbon": None, **changes})
    return dataclasses.replace(base, **changes)


def _seed_changes(args: argparse.Namespace) -> dict[str, Any]:
    """``--seed`` (one run a variant and policy) or ``--seeds`` (replications).

    Raises:
        InvalidInput: both given, or a bad ``--seeds``.
    """
    if args.seeds is None:
        return {} if args.seed is None else {"seeds": ()}
    if args.seed is not None:
        raise InvalidInput([Problem("--seeds", "goes without --seed", args.seeds,
                                    "--seed S for one run, or --seeds for replications")])
    seeds = _seed_list(args.seeds)
    return {"seeds": seeds, "seed": seeds[0]}


def _seed_list(text: str) -> tuple[int, ...]:
    """``--seeds``: ``1-10``, ``1,2,7`` or both (``1-3,9``).

    Raises:
        InvalidInput: not such a list, a seed repeated, or more than MAX_RUNS seeds.
    """
    allowed = f"distinct whole numbers >= 0 and ranges, e.g. 1-10 or 1,2,7 (at most {MAX_RUNS:,})"
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidInput([Problem("--seeds", "is not a list of seeds", text, allowed)])
        out += range(int(low), int(high if dash else low) + 1)
        if len(out) > MAX_RUNS:
            raise InvalidInput([Problem("--seeds", "has too many seeds", text, allowed)])
    if not out or len(set(out)) != len(out):
        raise InvalidInput([Problem("--seeds", "names no seed or one twice", text, allowed)])
    return tuple(out)


def _trace_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The trace and carbon options given on the command line.

    Raises:
        InvalidInput: a bad list of queues or partitions, a bad column mapping, or a
            processor count below 1.
    """
    out: dict[str, Any] = {}
    if args.skip_bad_rows:
        out["skip_bad_rows"] = True
    if args.procs_per_gpu is not None:
        if args.procs_per_gpu < 1:
            raise InvalidInput([Problem("--procs-per-gpu", "is out of range", str(args.procs_per_gpu),
                                        "a whole number >= 1")])
        out["procs_per_gpu"] = args.procs_per_gpu
    if args.swf_status:
        out["swf_status"] = SwfStatus(args.swf_status)
    for flag, key in (("queue", "queues"), ("partition", "partitions")):
        if getattr(args, flag):
            out[key] = _numbers(getattr(args, flag), f"--{flag}")
    if args.columns:
        out["columns"] = _mapping(args.columns)
    if args.time_unit:
        out["time_unit"] = TimeUnit(args.time_unit)
    if args.carbon_unit:
        out["carbon_unit"] = IntensityUnit(args.carbon_unit)
    return out


def _numbers(text: str, flag: str) -> frozenset[int]:
    try:
        return frozenset(int(x) for x in text.split(","))
    except ValueError:
        raise InvalidInput([Problem(flag, "is not a list of whole numbers", text, "e.g. 1,3")]) from None


def _mapping(text: str) -> tuple[tuple[str, str], ...]:
    pairs = [part.partition("=") for part in text.split(",")]
    if not all(a.strip() and sep and b.strip() for a, sep, b in pairs):
        raise InvalidInput([Problem("--columns", "is not a list of ours=yours", text,
                                    "e.g. submit=arrival_time,runtime=length,gpus=cpus")])
    return tuple((a.strip().lower(), b.strip()) for a, _, b in pairs)


def _check_numbers(changes: dict[str, Any]) -> None:
    problems = []
    for key, flag, low in (("jobs", "--jobs", 1), ("load", "--load", 0), ("size", "--size", 0),
                           ("pass_s", "--pass-seconds", -1e-9), ("window_h", "--window-hours", -1e-9)):
        v = changes.get(key)
        if v is not None and not v > low:
            problems.append(Problem(flag, "is out of range", str(v), f"a number > {max(low, 0):g}"))
    if problems:
        raise InvalidInput(problems)


def _shares(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InvalidInput([Problem("--homes", "is not a list of partner=weight", text,
                                        "e.g. uk=0.6,fr=0.4")]) from None
    return out


def _start(text: str, flag: str = "--start") -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput([Problem(flag, "is not a time", text, "e.g. 2020-01-06T00:00:00Z")]) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _failures(args: argparse.Namespace, base: Scenario | None) -> Failures:
    if args.mtbf_hours is None or args.mttr_hours is None:
        raise InvalidInput([Problem("--mtbf-hours", "goes with --mttr-hours", None,
                                    "both, e.g. --mtbf-hours 720 --mttr-hours 6")])
    problems = [Problem(flag, "is out of range", str(v), "a number of hours > 0")
                for flag, v in (("--mtbf-hours", args.mtbf_hours), ("--mttr-hours", args.mttr_hours))
                if not (v > 0 and v < float("inf"))]
    if problems:
        raise InvalidInput(problems)
    seed = args.seed if args.seed is not None else base.seed if base else 1
    return Failures(args.mtbf_hours * 3600, args.mttr_hours * 3600, seed)


def _outages(texts: list[str]) -> list[Outage]:
    out = []
    for text in texts:
        site, start, end = ([*text.split(","), "", ""])[:3]
        if text.count(",") != 2 or not site:
            raise InvalidInput([Problem("--outage", "is not SITE,START,END", text,
                                        "e.g. jeanzay,2020-01-08T06:00:00Z,2020-01-09T18:00:00Z")])
        a, b = _start(start, "--outage"), _start(end, "--outage")
        if b <= a:
            raise InvalidInput([Problem("--outage", "ends before it starts", text, "an END after START")])
        out.append(Outage(site, a.timestamp(), b.timestamp()))
    return out


class ProgressBar:
    """A one-line progress bar on a terminal stream (a line per run elsewhere)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.label = ""
        self.t0 = time.perf_counter()

    def __call__(self, label: str, done: int, total: int) -> None:
        if label != self.label:
            if self.label and self.tty:
                self.stream.write("\n")
            self.label, self.t0 = label, time.perf_counter()
            if not self.tty:   # a sweep's progress counts runs (and oracles), a run's jobs
                unit = "runs and oracles" if label.startswith("sweep on ") else "jobs"
                self.stream.write(f"simulating {label}: {total:,} {unit}\n")
        if not self.tty:
            return
        frac = done / total if total else 1.0
        fill = int(frac * self.width)
        rate = done / max(1e-9, time.perf_counter() - self.t0)
        speed = f"{done:,} of {total:,}" if label.startswith("sweep on ") else f"{rate:,.0f} jobs/s"
        self.stream.write(f"\r{label[:40]:<40} [{'#' * fill}{'.' * (self.width - fill)}] {frac:4.0%} {speed}")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.label:
            self.stream.write("\n")


def _from_sacct_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="sacct output file, or - for standard input")
    parser.add_argument("--out", type=Path, help="SWF file to write (default: standard output)")


def run_trace(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    """Convert; the exit status (2 with every problem printed when the input is wrong)."""
    from accord.domain.traces.sacct_swf import sacct_to_swf

    err = stderr or sys.stderr
    source = "<stdin>" if args.input == "-" else args.input
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
        converted = sacct_to_swf(text, source)
    except OSError as exc:
        print(f"{source}: cannot read: {exc.strerror or exc}", file=err)
        return 2
    except UnicodeDecodeError:
        print(f"{source}: is not UTF-8 text (sacct --parsable2 output expected)", file=err)
        return 2
    except InvalidInput as exc:
        for problem in exc.problems:
            print(problem.render(), file=err)
        return 2
    if args.out is None:
        sys.stdout.write(converted.text)
    else:
        args.out.write_text(converted.text, encoding="utf-8")
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(converted.skipped.items())) or "none"
    print(f"{converted.jobs} job(s) written{'' if args.out is None else ' to ' + str(args.out)}; "
          f"skipped: {skipped}", file=err)
    return 0


# ---------------------------------------------------------------------------- the commands
COMMANDS = (
    Command("simulate", "replay a job trace over a federation to compare placement policies",
            _simulate_arguments, offline=run, shared=False,
            description="``accord simulate``: replay a trace over a federation and compare placement "
                        "policies."),
    Command("trace", "convert job logs for the simulator", shared=False, verbs_dest="trace_cmd",
            verbs_metavar=None, verbs=(
                Command("from-sacct", "Slurm 'sacct --parsable2' output to the Standard Workload Format",
                        _from_sacct_arguments, offline=run_trace, shared=False,
                        description="Columns needed (any order, header line included): "
                                    "JobID,User,Submit,Start,End,Timelimit,AllocTRES,State; run sacct "
                                    "with TZ=UTC. The SWF written counts GPUs as processors."),)),
)
