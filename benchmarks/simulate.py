"""Simulator speed: 1,000,000 jobs over a 200,000-GPU federation, carbon-aware placement.

The federation is built in memory: 5 partners (uk, fr, de with a year of real intensity
data; ca and us with built-in profiles), 16 sites of one GPU pool each, 200,000 GPUs in all
(the largest a 120,000-GPU "AI Growth Zone" on the GB grid), one agreement among all
partners. The workload is the real Philly trace, copied end to end to ``--jobs`` jobs, GPU
counts × ``--size``, its arrivals compressed so the offered load is ``--util`` of the GPUs;
homes are drawn per virtual cluster in proportion to each partner's GPUs; every job may
start up to 12 h late.

Measured in the same run, pinned to one CPU:

1. Accord's simulator, carbon-aware policy (``placement.choose`` for every decision, its
   last step compiled (``placement.pick``); the broker's energy and ledger arithmetic for
   every finished job); with ``--carbon-python``, again with ``choose`` all in numpy, and
   every job's outcome compared;
2. Accord's simulator, home-site FIFO (the baseline policy), jobs placed on arrival;
3. a straightforward SimPy implementation of home-site FIFO on the same input (a process
   per job, a ``Container`` of GPUs per pool, the same choice of home pool); its mean wait
   is printed next to run 2's as a check that both simulate the same thing.

    uv run python benchmarks/simulate.py [--jobs 1000000] [--cpu 0] [--simpy-jobs N] [--replan 600]
                                         [--carbon-python] [--time-parts]
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


def federation_text() -> str:
    """The 200,000-GPU federation as TOML."""
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
               'end = 2022-12-31\nthemes = ["ai"]\nsectors = ["academia"]\ndefault_flexibility_hours = 12\n')
    for r, _, _ in PARTNERS:
        for h, _, _ in PARTNERS:
            if r != h:
                out.append(f'[[agreements.quotas]]\nrequester = "{r}"\nhost = "{h}"\nunits = 5e7\n'
                           'per = "month"\n')
    return "\n".join(out)


def workload(fed: Federation, jobs: int, size: float, util: float) -> tuple[Workload, Trace]:
    """The Philly trace scaled to ``jobs`` jobs and an offered load of ``util``."""
    path = shared_data_dir() / "traces" / "philly_sia.csv"
    trace = parse_trace(path.read_text(encoding="utf-8"), str(path), TraceFormat.PHILLY)
    tiled = scale(trace, jobs=jobs, size=size)
    capacity = sum(s.total_gpus for s in fed.sites)
    demand_rate = tiled.gpu_hours * 3600 / max(1.0, tiled.span_s)   # GPUs busy on average, unscaled
    load = util * capacity / demand_rate
    t = scale(trace, jobs=jobs, size=size, load=load)
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


def ours(fed: Federation, w: Workload, carbon: Mapping[str, IntensitySeries],
         settings: Settings, native: bool = True) -> tuple[float, float, Outcome]:
    """(wall s, CPU s, outcome) of one run of Accord's simulator."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = Simulation(fed, w, carbon, settings, native=native).run()
    return time.perf_counter() - t0, time.process_time() - c0, out


def time_parts(fed: Federation, w: Workload, carbon: Mapping[str, IntensitySeries],
               settings: Settings) -> None:
    """The carbon-aware run with timers around each decision's fast path (``_Placer.quick``)
    and the building of what the loads do not change when the cache misses
    (``_Placer._make_fixed``); the rest is the kernel's own Python and each decision's set-up.
    The timers add their own cost (two clock reads a call)."""
    from accord.domain.placement import scoring

    spent: dict[str, list[float]] = {}

    def timed(name: str) -> None:
        inner = getattr(scoring._Placer, name)
        spent[name] = [0.0, 0]
        clock = time.perf_counter

        def wrapper(*a: object, **k: object) -> object:
            t = clock()
            try:
                return inner(*a, **k)
            finally:
                spent[name][0] += clock() - t
                spent[name][1] += 1

        setattr(scoring._Placer, name, wrapper)

    for name in ("quick", "_make_fixed"):
        timed(name)
    total, _, _ = ours(fed, w, carbon, settings)
    (quick, decisions), (misses, missed) = spent["quick"], spent["_make_fixed"]
    print(f"accord, carbon-aware with timers: {total:.1f} s wall; {decisions:,} decisions in "
          f"_Placer.quick {quick:.1f} s, of which {missed:,} cache misses (_make_fixed) "
          f"{misses:.1f} s ({misses / max(missed, 1) * 1e6:.0f} us each) and the cached decisions "
          f"{quick - misses:.1f} s ({(quick - misses) / max(decisions - missed, 1) * 1e6:.1f} us each); "
          f"outside quick {total - quick:.1f} s")


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
    ap.add_argument("--skip-python", action="store_true", help="leave out home-site FIFO's Python loop")
    ap.add_argument("--time-parts", action="store_true",
                    help="only the carbon-aware run, timing the decisions' parts; nothing else")
    ap.add_argument("--carbon-python", action="store_true",
                    help="run carbon-aware again with choose() all in numpy (no compiled pick), and compare")
    args = ap.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at the start; pinned to CPU {args.cpu}")
    t0 = time.perf_counter()
    fed = parse_federation_text(federation_text(), "bench.toml")
    w, trace = workload(fed, args.jobs, args.size, args.util)
    end = datetime.fromtimestamp(float(w.submit_s[-1] + w.runtime_s.max()), UTC) + timedelta(days=3)
    carbon, notes = load_carbon(shared_data_dir() / "carbon", [z for _, _, z in PARTNERS], START, end)
    setup = time.perf_counter() - t0
    gpus = sum(s.total_gpus for s in fed.sites)
    span_d = (w.submit_s[-1] - w.submit_s[0]) / 86_400
    print(f"federation: {len(fed.sites)} sites, {gpus:,} GPUs; workload: {len(w):,} jobs from Philly "
          f"({trace.gpu_hours:,.0f} GPU-hours, arrivals over {span_d:.1f} days); set-up {setup:.1f} s")
    for n in notes:
        print(f"  carbon: {n}")

    if args.time_parts:
        time_parts(fed, w, carbon, Settings(Policy.CARBON, replan_s=args.replan))
        return 0
    if args.skip_carbon:
        carbon_s = carbon_cpu = float("nan")
    else:
        carbon_s, carbon_cpu, c = ours(fed, w, carbon, Settings(Policy.CARBON, replan_s=args.replan))
        decisions = sum(c.decisions)
        print(f"accord, carbon-aware (Python loop, compiled pick): {carbon_s:.1f} s wall "
              f"({carbon_cpu:.1f} s CPU) = "
              f"{len(w) / carbon_s:,.0f} jobs/s "
              f"({decisions:,} placement decisions, {decisions / carbon_s:,.0f}/s; deferred "
              f"{sum(c.deferred) / len(w):.0%}, abroad {sum(1 for a in c.agreement if a) / len(w):.0%}; "
              f"mean wait {mean_wait(w, c) / 3600:.2f} h; "
              f"emissions {np.nansum(c.emissions_g) / 1e6:,.0f} t); "
              f"peak RSS so far {rss_mib():,.0f} MiB")
        if args.carbon_python:
            cfg = Settings(Policy.CARBON, replan_s=args.replan)
            cp_s, cp_cpu, cp = ours(fed, w, carbon, cfg, native=False)
            same = (cp.pool == c.pool and cp.start == c.start and cp.end == c.end
                    and cp.deferred == c.deferred and cp.decisions == c.decisions
                    and cp.energy_kwh == c.energy_kwh
                    and np.array_equal(cp.emissions_g, c.emissions_g, equal_nan=True))
            print(f"accord, carbon-aware (Python loop, choose() in numpy): {cp_s:.1f} s wall "
                  f"({cp_cpu:.1f} s CPU); "
                  f"every job's pool, start, end, deferral, decisions, energy and emissions "
                  f"{'identical' if same else 'NOT identical'} to the compiled pick's")
    home = Settings(Policy.HOME, pass_s=0)
    t0 = time.perf_counter()
    tiny = Workload(w.submit_s[:3], w.gpus[:3], w.runtime_s[:3], w.requested_s[:3], w.home[:3], w.partners,
                    w.theme, w.sector, w.window_s)
    Simulation(fed, tiny, carbon, home).run()
    print(f"accord, home-site FIFO: compiled loop ready in {time.perf_counter() - t0:.1f} s (compile, "
          "or load from its cache; numba was imported by the carbon-aware run unless it was skipped)")
    home_s, home_cpu, h = ours(fed, w, carbon, home)
    print(f"accord, home-site FIFO (compiled loop): {home_s:.2f} s wall ({home_cpu:.2f} s CPU) = "
          f"{len(w) / home_s:,.0f} jobs/s; mean wait {mean_wait(w, h) / 3600:.3f} h; "
          f"emissions {np.nansum(h.emissions_g) / 1e6:,.0f} t")
    if args.skip_python:
        py_s = py_cpu = float("nan")
    else:
        py_s, py_cpu, hp = ours(fed, w, carbon, home, native=False)
        same = hp.pool == h.pool and hp.start == h.start and hp.end == h.end and hp.energy_kwh == h.energy_kwh
        print(f"accord, home-site FIFO (Python loop): {py_s:.1f} s wall ({py_cpu:.1f} s CPU); "
              f"every job's pool, start, end and energy {'identical' if same else 'NOT identical'} "
              "to the compiled loop's")
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
          f"{len(w) / home_cpu / rate_simpy:.1f}x (target >= 20x); Python loop "
          f"{len(w) / py_cpu / rate_simpy:.2f}x; accord's carbon-aware (Python loop, compiled pick) "
          f"{len(w) / carbon_cpu / rate_simpy:.2f}x")
    print(f"peak memory (ru_maxrss): {rss_mib():,.0f} MiB; load average at the end "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    target = bool(carbon_s <= 60) and len(w) >= 1_000_000
    print(f"target (1,000,000 jobs, carbon-aware, <= 60 s wall): {'met' if target else 'NOT met'} "
          f"({carbon_s:.1f} s wall, {carbon_cpu:.1f} s CPU for {len(w):,} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
