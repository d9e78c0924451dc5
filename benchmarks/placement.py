"""Placement speed: decisions per second for a federation of 50 sites x 48 start slots.

The federation is built in memory: 8 partners, 50 sites (one GPU pool each) spread over 10
grid zones, one multilateral agreement granting every partner a quota at every other
(default flexibility 24 h). Forecasts come from the standard fallback chain with the shared
data: the real 2020 series for GB, FR and DE, built-in profiles for the 7 other zones. Every
job may run at any of the 50 sites and has a 24-hour window, so each decision weighs
50 x 48 = 2,400 (site, start) candidates.

Measured in the same run:

1. ``place()`` with a context (one context per dispatcher "pass"; building it is timed
   separately), pinned to one CPU core;
2. the baseline: the same decisions by a straightforward loop that scores every (site, start)
   candidate, calling ``carbon.integrate`` for each. Both must choose the same (site, pool,
   start); the script counts any disagreement.

    uv run python benchmarks/placement.py [--decisions 20000] [--baseline 300] [--passes 10]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.test_placement_reference import Choice, naive_choice

from accord.adapters.carbon.chain import standard_chain
from accord.adapters.carbon.files import shared_data_dir
from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import HOUR_S, IntensitySeries, series
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.place import place
from accord.domain.placement.records import MAX_START_SLOTS, PoolLoad
from accord.ports import CarbonSource
from accord.service.placement_context import build_context

PARTNERS = (("uk", "GB", ("GB",)), ("fr", "FR", ("FR",)), ("de", "DE", ("DE",)),
            ("us", "US", ("US-CAL-CISO", "US")), ("ca", "CA", ("CA-ON", "CA-QC")),
            ("kr", "KR", ("KR",)), ("au", "AU", ("AU-VIC",)), ("in", "IN", ("IN-MH",)))
MODELS = (("H100", 700, 1.0), ("A100", 400, 0.5), ("GH200", 1000, 1.1))
DURATIONS_H = (1, 2, 4)
FIRST_PASS = datetime(2020, 3, 2, 9, 17, tzinfo=UTC)

def federation_text(sites: int = 50) -> str:
    """A federation of ``sites`` sites over the partners above, as TOML."""
    out = ['[federation]\nname = "bench"\nreference_unit = "H100-hour"\nthemes = ["climate"]\n']
    for name, watts, rate in MODELS:
        out.append(f'[[gpu_models]]\nname = "{name}"\ntdp_w = {watts}\n'
                   f'[[exchange_rates]]\ngpu_model = "{name}"\nunits_per_gpu_hour = {rate}\n'
                   "valid_from = 2019-01-01\n")
    for pid, country, _ in PARTNERS:
        out.append(f'[[partners]]\nid = "{pid}"\nname = "{pid}"\ncountry = "{country}"\n')
    zones = [(pid, z) for pid, _, zs in PARTNERS for z in zs]
    for i in range(sites):
        pid, zone = zones[i % len(zones)]
        model, watts, _ = MODELS[i % len(MODELS)]
        out.append(f'[[sites]]\nid = "s{i:02d}"\nname = "site {i}"\npartner = "{pid}"\n'
                   f'grid_zone = "{zone}"\npue = {1.1 + (i % 5) * 0.05:.2f}\nbackend = "local"\n'
                   f'[[sites.pools]]\nid = "p"\ngpu_model = "{model}"\ngpus = {8 * (1 + i % 8)}\n'
                   f"power_w = {watts}\n")
    parties = ", ".join(f'"{p}"' for p, _, _ in PARTNERS)
    out.append(f'[[agreements]]\nid = "all"\nname = "all"\nparties = [{parties}]\nstart = 2019-01-01\n'
               'end = 2030-12-31\nthemes = ["climate"]\nsectors = ["academia"]\n'
               "default_flexibility_hours = 24\n")
    for r, _, _ in PARTNERS:
        for h, _, _ in PARTNERS:
            if r != h:
                out.append(f'[[agreements.quotas]]\nrequester = "{r}"\nhost = "{h}"\nunits = 5000\n'
                           'per = "month"\n')
    return "\n".join(out)


def jobs(n: int, rng: random.Random) -> list[JobSpec]:
    """``n`` job shapes; deadlines are set per pass (a window of 24 to 36 h)."""
    return [JobSpec(name=f"j{i}", gpus=rng.randint(1, 8), time_limit_s=rng.choice(DURATIONS_H) * HOUR_S,
                    command=("true",), partner=rng.choice(PARTNERS)[0], theme="climate")
            for i in range(n)]


def with_deadline(spec: JobSpec, at: datetime, rng: random.Random) -> JobSpec:
    window = timedelta(hours=24 + rng.random() * 12)
    return JobSpec(spec.name, spec.gpus, spec.time_limit_s, spec.command, partner=spec.partner,
                   theme=spec.theme, deadline=at + timedelta(seconds=spec.time_limit_s) + window)


def loads(fed: Federation, rng: random.Random) -> dict[tuple[str, str], PoolLoad]:
    return {(s.id, p.id): PoolLoad(rng.randint(0, p.gpus), rng.randint(0, 2 * p.gpus))
            for s in fed.sites for p in s.pools}


# ─── the run ─────────────────────────────────────────────────────────────────────────────


Sample = tuple[JobSpec, dict[tuple[str, str], PoolLoad], datetime, PlacementContext, Choice]


@dataclass(frozen=True, slots=True)
class Pass:
    """One dispatcher pass: its time, jobs, loads, and the ledger figures its context reads."""

    at: datetime
    specs: list[JobSpec]
    loads: dict[tuple[str, str], PoolLoad]
    used: dict[tuple[str, str, str], Decimal]
    balances: dict[str, dict[str, Decimal]]

    def quota_used(self, agreement: str, requester: str, host: str, period: str) -> Decimal:
        return self.used[(agreement, requester, host)]


def passes(fed: Federation, count: int, per_pass: int, rng: random.Random) -> list[Pass]:
    """``count`` passes 17 days apart through 2020, ``per_pass`` jobs each; quota use is
    random up to a little over the quota, so some pools are refused for quota."""
    shapes = jobs(2_000, rng)
    out = []
    for k in range(count):
        at = FIRST_PASS + timedelta(days=17 * k, minutes=7 * k)
        used = {(a.id, q.requester, q.host): Decimal(rng.randint(0, 5200))
                for a in fed.agreements for q in a.quotas}
        balances = {a.id: {p: Decimal(rng.randint(-500, 500)) for p, _, _ in PARTNERS}
                    for a in fed.agreements}
        out.append(Pass(at, [with_deadline(rng.choice(shapes), at, rng) for _ in range(per_pass)],
                        loads(fed, rng), used, balances))
    return out


def run(fed: Federation, chain: CarbonSource, plan: list[Pass], keep: int,
        samples: list[Sample]) -> tuple[float, list[float], int, int]:
    """Build each pass's context (timed apart), then decide its jobs as a dispatcher pass
    would: decide, act on the decision, forget it. Returns (decision seconds, context
    seconds per pass, deferred, placed abroad); keeps ``keep`` samples for the baseline."""
    home = {s.id: s.partner for s in fed.sites}
    decide_s = 0.0
    build_s: list[float] = []
    deferred = abroad = 0
    for k, pa in enumerate(plan):
        t0 = time.perf_counter()
        ctx = build_context(fed, chain, pa.at, quota_used=pa.quota_used, balance=pa.balances.__getitem__)
        build_s.append(time.perf_counter() - t0)
        wanted = keep * (k + 1) // len(plan) - len(samples)
        t0 = time.perf_counter()
        for spec in pa.specs:
            c = place(spec, fed, pa.loads, pa.at, context=ctx).chosen
            assert c is not None and c.start is not None
            deferred += c.start > pa.at
            abroad += home[c.site] != spec.partner
            if wanted > 0:
                wanted -= 1
                samples.append((spec, pa.loads, pa.at, ctx, (c.site, c.pool, c.start)))
        decide_s += time.perf_counter() - t0
    return decide_s, build_s, deferred, abroad


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--baseline", type=int, default=300, help="decisions for the naive baseline")
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs of all passes, fresh contexts each")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpu", type=int, help="pin to this CPU (the run is single-threaded either way)")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    fed = parse_federation_text(federation_text(50), "bench.toml")
    chain = standard_chain(shared_data=shared_data_dir())
    plan = passes(fed, args.passes, max(1, args.decisions // args.passes), random.Random(args.seed))
    done = sum(len(p.specs) for p in plan)
    samples: list[Sample] = []
    runs = [run(fed, chain, plan, args.baseline if r == 0 else 0, samples) for r in range(args.repeat)]
    rates = sorted(done / r[0] for r in runs)
    _, build_s, deferred, abroad = runs[0]
    print(f"federation: {len(fed.sites)} sites, {len({s.grid_zone for s in fed.sites})} zones, "
          f"{MAX_START_SLOTS} start slots of {fed.placement.slot_s // 60} min; {done} decisions in "
          f"{args.passes} passes; deferred {deferred / done:.0%}, placed abroad {abroad / done:.0%}")
    print(f"context build (10 zones): first pass {build_s[0] * 1000:.0f} ms (it reads the data files), "
          f"then median {statistics.median(build_s[1:] or build_s) * 1000:.1f} ms per pass")
    print(f"place(): best {rates[-1]:,.0f} decisions/s ({1e6 / rates[-1]:.1f} us each), median "
          f"{statistics.median(rates):,.0f}/s, worst {rates[0]:,.0f}/s over {args.repeat} runs")
    slow_s, agree = baseline(fed, samples)
    slow_rate = len(samples) / slow_s
    print(f"baseline (naive loop, carbon.integrate per candidate): {len(samples)} decisions in "
          f"{slow_s:.2f} s = {slow_rate:,.0f} decisions/s ({slow_s / len(samples) * 1000:.2f} ms each)")
    median = statistics.median(rates)
    print(f"same choice as the baseline: {agree}/{len(samples)}; "
          f"speed-up {median / slow_rate:,.0f}x (median)")
    print(f"target >= 10,000 decisions/s: {'met' if median >= 10_000 else 'NOT met'} (median)")
    return 0 if agree == len(samples) else 1


def baseline(fed: Federation, samples: Sequence[tuple[JobSpec, dict[tuple[str, str], PoolLoad],
                                                      datetime, PlacementContext, Choice]],
             ) -> tuple[float, int]:
    """Time the naive choice over ``samples``; count those equal to place()'s."""
    by_ctx: dict[int, dict[str, IntensitySeries]] = {}
    for _, _, _, ctx, _ in samples:
        by_ctx.setdefault(id(ctx), {z: series(z, f.start, f.step_s, f.values)
                                    for z, f in ctx.forecasts.items()})
    agree = 0
    t0 = time.perf_counter()
    for spec, pool_loads, at, ctx, fast in samples:
        agree += naive_choice(spec, fed, pool_loads, at, ctx, by_ctx[id(ctx)]) == fast
    return time.perf_counter() - t0, agree


if __name__ == "__main__":
    sys.exit(main())
