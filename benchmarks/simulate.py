"""Simulator speed: 1,000,000 jobs over a 200,000-GPU federation, carbon-aware placement.

The federation is built in memory: 5 partners (uk, fr, de with a year of real intensity
data; ca and us with built-in profiles), 16 sites of one GPU pool each, 200,000 GPUs in all
(the largest a 120,000-GPU "AI Growth Zone" on the GB grid), one agreement among all
partners. The workload is the real Philly trace, copied end to end to ``--jobs`` jobs, GPU
counts × ``--size``, its arrivals compressed so the offered load is ``--util`` of the GPUs;
homes are drawn per virtual cluster in proportion to each partner's GPUs; every job may
start up to 12 h late.

Measured in the same run, pinned to one CPU:

1. Accord's simulator, carbon-aware policy: the kernel's compiled loop (``sim/native.py``;
   per decision the domain's standing table, ``placement.table.fill_table``, from a cache of
   recent ones, and ``placement.pick``; the broker's energy and ledger arithmetic for every
   finished job), with its cache-miss rate (tables filled / decisions); then the same
   source interpreted on the first ``--interpreted-jobs`` jobs, every job's outcome compared
   (``--skip-python`` leaves that out);
2. Accord's simulator, home-site FIFO (the baseline policy), jobs placed on arrival;
3. a straightforward SimPy implementation of home-site FIFO on the same input (a process
   per job, a ``Container`` of GPUs per pool, the same choice of home pool); its mean wait
   is printed next to run 2's as a check that both simulate the same thing.

    uv run python benchmarks/simulate.py [--jobs 1000000] [--cpu 0] [--simpy-jobs N] [--replan 600]
                                         [--skip-python] [--interpreted-jobs N]
                                         [--arrivals dense|real] [--trace philly|pods]

``--arrivals real`` keeps the trace's own arrival times (copies shifted in time end to end);
``--trace pods`` replays the Alibaba GPU 2023 pods instead of Philly.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accord.adapters.carbon.files import shared_data_dir
from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.domain.placement.place import pool_keys
from accord.domain.traces.trace import HomeRule, Trace, TraceFormat, assign_homes, parse_trace, scale
from accord.sim.kernel import Simulation
from accord.sim.model import Outcome, Policy, Settings, Workload
from accord.sim.runner import load_carbon

START = datetime(2020, 3, 2, tzinfo=UTC)
PARTNERS = (("uk", "GB", "GB"), ("fr", "FR", "FR"), ("de", "DE", "DE"), ("ca", "CA", "CA-ON"),
            ("us", "US", "US-CAL-CISO"))
SITES = (("uk", 120_000, 1000, 1.1), ("uk", 8_000, 700, 1.2), ("uk", 4_000, 400, 1.3),
         ("fr", 16_000, 700, 1.3), ("fr", 6_000, 700, 1.2), ("fr", 2_000, 400, 1.4),
         ("de", 10_000, 700, 1.2), ("de", 4_000, 700, 1.3), ("de", 2_000, 400, 1.3),
         ("ca", 6_000, 700, 1.3), ("ca", 2_000, 400, 1.3), ("ca", 1_000, 700, 1.4),
         ("us", 12_000, 700, 1.1), ("us", 4_000, 400, 1.2), ("us", 2_000, 700, 1.3), ("us", 1_000, 400, 1.3))


def federation_text(until: int = 2022) -> str:
    """The 200,000-GPU federation as TOML (its agreement in force to the end of ``until``)."""
    out = ['[federation]\nname = "bench"\nreference_unit = "H100-hour"\nthemes = ["ai"]\n'
           '[[gpu_models]]\nname = "H100"\n[[exchange_rates]]\ngpu_model = "H100"\n'
           "units_per_gpu_hour = 1.0\nvalid_from = 2019-01-01\n"]
    for pid, country, _ in PARTNERS:
        out.append(f'[[partners]]\nid = "{pid}"\nname = "{pid}"\ncountry = "{country}"\n')
    zone = {p: z for p, _, z in PARTNERS}
    for i, (pid, gpus, watts, pue) in enumerate(SITES):
        out.append(f'[[sites]]\nid = "{pid}-{i:02d}"\nname = "site {i}"\npartner = "{pid}"\n'
                   f'grid_zone = "{zone[pid]}"\npue = {pue}\nbackend = "local"\n[[sites.pools]]\nid = "p"\n'
                   f'gpu_model = "H100"\ngpus = {gpus}\npower_w = {watts}\n')
    parties = ", ".join(f'"{p}"' for p, _, _ in PARTNERS)
    out.append(f'[[agreements]]\nid = "all"\nname = "all"\nparties = [{parties}]\nstart = 2019-01-01\n'
               f'end = {until}-12-31\nthemes = ["ai"]\nsectors = ["academia"]\n'
               'default_flexibility_hours = 12\n')
    for r, _, _ in PARTNERS:
        for h, _, _ in PARTNERS:
            if r != h:
                out.append(f'[[agreements.quotas]]\nrequester = "{r}"\nhost = "{h}"\nunits = 5e7\n'
                           'per = "month"\n')
    return "\n".join(out)


TRACES = {"philly": ("philly_sia.csv", TraceFormat.PHILLY),
          "pods": ("alibaba_gpu2023_pods.csv", TraceFormat.ALIBABA)}


def read_trace(name: str) -> Trace:
    """The Philly trace, or the Alibaba 2023 pods (the loader skips, and counts, the pods
    with no GPU or that never ran)."""
    file, fmt = TRACES[name]
    path = shared_data_dir() / "traces" / file
    return parse_trace(path.read_text(encoding="utf-8"), str(path), fmt)


def workload(fed: Federation, jobs: int, size: float, util: float, real: bool = False,
             name: str = "philly") -> tuple[Workload, Trace]:
    """The trace copied end to end to ``jobs`` jobs; its arrivals compressed to an offered
    load of ``util`` (dense), or at its own times (``real``)."""
    trace = read_trace(name)
    tiled = scale(trace, jobs=jobs, size=size)
    if real:
        t = tiled
    else:
        capacity = sum(s.total_gpus for s in fed.sites)
        demand_rate = tiled.gpu_hours * 3600 / max(1.0, tiled.span_s)   # GPUs busy on average, unscaled
        t = scale(trace, jobs=jobs, size=size, load=util * capacity / demand_rate)
    shares = {p.id: float(sum(s.total_gpus for s in fed.sites if s.partner == p.id)) for p in fed.partners}
    home, partners = assign_homes(t, shares, HomeRule.GROUP, 1, [p.id for p in fed.partners])
    return Workload(t.submit_s + START.timestamp(), t.gpus, t.runtime_s, t.requested_s, home, partners, "ai",
                    "academia", 12 * 3600.0), t


def simpy_home_fifo(fed: Federation, w: Workload) -> tuple[float, float, float]:
    """Home-site FIFO in SimPy: per job a process that waits for its submit time, picks its
    home partner's pool with the least (GPUs short + GPUs queued) / pool size, then takes
    its GPUs from the pool's Container (first come, first served) for its run time.
    Returns (wall s, CPU s, mean wait in s)."""
    env = simpy.Environment(initial_time=float(w.submit_s[0]))
    keys = pool_keys(fed)
    sites = {s.id: s for s in fed.sites}
    pools = [sites[k[0]].pool(k[1]) for k in keys]
    partner_of = [sites[k[0]].partner for k in keys]
    box = [simpy.Container(env, capacity=p.gpus, init=p.gpus) for p in pools]
    queued = [0] * len(pools)
    home_pools = {p: [i for i, q in enumerate(partner_of) if q == p] for p in w.partners}
    waits: list[float] = []

    def job(submit: float, gpus: int, run: float, home: str) -> simpy.events.ProcessGenerator:
        yield env.timeout(submit - env.now)
        k = min(home_pools[home], key=lambda i: (max(0, gpus - box[i].level) + queued[i]) / pools[i].gpus)
        queued[k] += gpus
        yield box[k].get(gpus)
        queued[k] -= gpus
        waits.append(env.now - submit)
        yield env.timeout(run)
        yield box[k].put(gpus)

    t0, c0 = time.perf_counter(), time.process_time()
    for s, g, r, h in zip(w.submit_s.tolist(), w.gpus.tolist(), w.runtime_s.tolist(), w.home.tolist(),
                          strict=True):
        env.process(job(s, g, r, w.partners[h]))
    env.run()
    return time.perf_counter() - t0, time.process_time() - c0, float(np.mean(waits))


# decisions that missed choose()'s cache (_Placer._make_fixed calls): how the code before the one kernel
# (its Python loop, run with this script against an older tree) is measured; the kernel calls none
MISSES = [0]


def count_misses() -> None:
    """Count the calls of ``_Placer._make_fixed`` (the standing-terms cache's misses) in
    :data:`MISSES`."""
    from accord.domain.placement import scoring

    inner = scoring._Placer._make_fixed

    def counted(self: Any) -> Any:
        MISSES[0] += 1
        return inner(self)

    setattr(scoring._Placer, "_make_fixed", counted)  # noqa: B010


def ours(fed: Federation, w: Workload, carbon: Mapping[str, IntensitySeries],
         settings: Settings, compiled: bool = True) -> tuple[float, float, Outcome]:
    """(wall s, CPU s, outcome) of one run of Accord's simulator; the decisions that missed
    the standing-terms cache (the compiled loop's tables filled, or the Python loop's
    ``_make_fixed`` calls) and which loop ran go into :data:`LAST`."""
    before = MISSES[0]
    t0, c0 = time.perf_counter(), time.process_time()
    sim = Simulation(fed, w, carbon, settings, compiled=compiled)
    out = sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    LAST["misses"] = MISSES[0] - before + int(getattr(sim, "fills", 0))
    LAST["loop"] = "compiled loop" if compiled else "the same loop interpreted"
    return wall, cpu, out


LAST: dict[str, Any] = {}


def check_interpreted(fed: Federation, w: Workload, carbon: Mapping[str, IntensitySeries], settings: Settings,
                      jobs: int) -> None:
    """Run ``settings`` on the first ``jobs`` jobs compiled and interpreted (the same
    source), and say whether every job's outcome is the same."""
    m = min(jobs, len(w))
    part = Workload(w.submit_s[:m], w.gpus[:m], w.runtime_s[:m], w.requested_s[:m], w.home[:m], w.partners,
                    w.theme, w.sector, w.window_s)
    _, _, c = ours(fed, part, carbon, settings)
    s, cpu, p = ours(fed, part, carbon, settings, compiled=False)
    same = (p.pool == c.pool and p.start == c.start and p.end == c.end and p.deferred == c.deferred
            and p.decisions == c.decisions and p.agreement == c.agreement and p.energy_kwh == c.energy_kwh
            and np.array_equal(p.emissions_g, c.emissions_g, equal_nan=True))
    print(f"  the same loop interpreted, first {m:,} jobs: {s:.1f} s wall ({cpu:.1f} s CPU); "
          "every job's pool, "
          f"agreement, start, end, deferral, decisions, energy and emissions "
          f"{'identical' if same else 'NOT identical'} to the compiled loop's")


def miss_text(out: Outcome) -> str:
    decisions = sum(out.decisions)
    misses = int(LAST["misses"])
    return f"cache misses {misses:,} of {decisions:,} decisions ({misses / max(decisions, 1):.1%})"


def mean_wait(w: Workload, out: Outcome) -> float:
    start = np.array(out.start)
    return float(np.nanmean(start - w.submit_s))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--simpy-jobs", type=int, help="jobs for the SimPy baseline (default: --jobs)")
    ap.add_argument("--size", type=float, default=2.0, help="GPU-count factor on the trace")
    ap.add_argument("--util", type=float, default=0.7, help="offered load as a share of the GPUs")
    ap.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    ap.add_argument("--replan", type=float, default=0.0,
                    help="reconsider deferred jobs every this many seconds in the carbon-aware run "
                         "(the live broker: 600; default 0, off)")
    ap.add_argument("--skip-carbon", action="store_true", help="leave out the carbon-aware run")
    ap.add_argument("--skip-python", action="store_true",
                    help="leave out the check of the compiled loop against the same source interpreted")
    ap.add_argument("--interpreted-jobs", type=int, default=3000,
                    help="jobs for that check (the first ones; default 3,000)")
    ap.add_argument("--arrivals", choices=("dense", "real"), default="dense",
                    help="dense: arrivals compressed to --util of the GPUs; real: the trace's own times, "
                         "copies end to end")
    ap.add_argument("--trace", choices=sorted(TRACES), default="philly",
                    help="philly, or the Alibaba GPU 2023 pods (pods: the pods that ran, with a GPU)")
    args = ap.parse_args(argv)
    count_misses()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at the start; pinned to CPU {args.cpu}")
    t0 = time.perf_counter()
    real = args.arrivals == "real"
    fed = parse_federation_text(federation_text(), "bench.toml")
    w, trace = workload(fed, args.jobs, args.size, args.util, real, args.trace)
    end = datetime.fromtimestamp(float(w.submit_s[-1] + w.runtime_s.max()), UTC) + timedelta(days=3)
    fed = parse_federation_text(federation_text(max(2022, end.year + 1)), "bench.toml")
    carbon, notes = load_carbon(shared_data_dir() / "carbon", [z for _, _, z in PARTNERS], START, end)
    setup = time.perf_counter() - t0
    gpus = sum(s.total_gpus for s in fed.sites)
    span_d = (w.submit_s[-1] - w.submit_s[0]) / 86_400
    print(f"federation: {len(fed.sites)} sites, {gpus:,} GPUs; workload: {len(w):,} jobs from {args.trace} "
          f"({trace.gpu_hours:,.0f} GPU-hours, {args.arrivals} arrivals over {span_d:.1f} days); "
          f"set-up {setup:.1f} s")
    if trace.skipped:
        print("  trace rows skipped (per copy x copies): " + ", ".join(f"{k}: {v:,}" for k, v in
                                                                      sorted(trace.skipped.items())))
    for n in trace.notes:
        print(f"  trace: {n}")
    for n in notes:
        print(f"  carbon: {n}")

    t0 = time.perf_counter()
    tiny = Workload(w.submit_s[:3], w.gpus[:3], w.runtime_s[:3], w.requested_s[:3], w.home[:3], w.partners,
                    w.theme, w.sector, w.window_s)
    for policy in (Policy.CARBON, Policy.HOME):
        Simulation(fed, tiny, carbon, Settings(policy)).run()
    print(f"accord: compiled code ready in {time.perf_counter() - t0:.1f} s (import numba; compile, or load "
          "from its cache), before the timed runs")
    if args.skip_carbon:
        carbon_s = carbon_cpu = float("nan")
    else:
        carbon_s, carbon_cpu, c = ours(fed, w, carbon, Settings(Policy.CARBON, replan_s=args.replan))
        decisions = sum(c.decisions)
        print(f"accord, carbon-aware ({LAST['loop']}): {carbon_s:.1f} s wall "
              f"({carbon_cpu:.1f} s CPU) = "
              f"{len(w) / carbon_s:,.0f} jobs/s "
              f"({decisions:,} placement decisions, {decisions / carbon_s:,.0f}/s; deferred "
              f"{sum(c.deferred) / len(w):.0%}, abroad {sum(1 for a in c.agreement if a) / len(w):.0%}; "
              f"mean wait {mean_wait(w, c) / 3600:.2f} h; "
              f"emissions {np.nansum(c.emissions_g) / 1e6:,.0f} t; {miss_text(c)}); "
              f"peak RSS so far {rss_mib():,.0f} MiB")
        LAST["carbon"] = LAST["loop"]
        if not args.skip_python:
            check_interpreted(fed, w, carbon, Settings(Policy.CARBON, replan_s=args.replan),
                              args.interpreted_jobs)
    home = Settings(Policy.HOME, pass_s=0)
    home_s, home_cpu, h = ours(fed, w, carbon, home)
    print(f"accord, home-site FIFO (compiled loop): {home_s:.2f} s wall ({home_cpu:.2f} s CPU) = "
          f"{len(w) / home_s:,.0f} jobs/s; mean wait {mean_wait(w, h) / 3600:.3f} h; "
          f"emissions {np.nansum(h.emissions_g) / 1e6:,.0f} t")
    m = args.simpy_jobs or len(w)
    sw = w if m >= len(w) else Workload(w.submit_s[:m], w.gpus[:m], w.runtime_s[:m], w.requested_s[:m],
                                         w.home[:m], w.partners, w.theme, w.sector, w.window_s)
    simpy_s, simpy_cpu, simpy_wait = simpy_home_fifo(fed, sw)
    print(f"SimPy, home-site FIFO: {m:,} jobs in {simpy_s:.1f} s wall ({simpy_cpu:.1f} s CPU) = "
          f"{m / simpy_s:,.0f} jobs/s; mean wait "
          f"{simpy_wait / 3600:.3f} h")
    if m < len(w):
        _, _, h = ours(fed, sw, carbon, Settings(Policy.HOME, pass_s=0))
    ours_wait = mean_wait(sw, h)
    gap = abs(ours_wait - simpy_wait) / max(simpy_wait, 1e-9)
    print(f"  mean wait of accord's home-site FIFO on those jobs: {ours_wait / 3600:.4f} h vs SimPy's "
          f"{simpy_wait / 3600:.4f} h ({gap:.2%} apart)")
    rate_simpy = m / simpy_cpu
    print("ratio (jobs per CPU second) against SimPy's home-site FIFO: accord's home-site FIFO, compiled "
          "loop "
          f"{len(w) / home_cpu / rate_simpy:.1f}x (target >= 20x); "
          f"accord's carbon-aware ({LAST.get('carbon', '-')}) "
          f"{len(w) / carbon_cpu / rate_simpy:.2f}x")
    print(f"peak memory (ru_maxrss): {rss_mib():,.0f} MiB; load average at the end "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    limit = 60 if real else 10
    target = bool(carbon_s <= limit) and len(w) >= 1_000_000
    print(f"target (1,000,000 jobs, carbon-aware, {args.arrivals} arrivals, <= {limit} s wall): "
          f"{'met' if target else 'NOT met'} "
          f"({carbon_s:.1f} s wall, {carbon_cpu:.1f} s CPU for {len(w):,} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
