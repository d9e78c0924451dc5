"""Invariants of the simulator on random federations, workloads, intensities and site
outages (Hypothesis): capacity is never exceeded, nothing starts at a site while it is down,
every job starts no earlier than its submit time and runs for exactly its run time, a run is
deterministic, and the oracle's emissions are a lower bound.

None of these may hold vacuously: a job whose own partner has a site that can take it (every
pool has room for the largest job) is never rejected, whatever the policy, quotas or outages,
and every case has at least one such job (see :func:`home_jobs`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.sim.kernel import Simulation
from accord.sim.model import Outage, Outcome, Policy, Settings, Workload
from accord.sim.oracle import oracle_emissions
from tests.sim.helpers import T0_S, federation, steps, workload

ZONES = {"uk": "GB", "fr": "FR", "de": "DE"}
Case = tuple[Federation, Workload, dict[str, IntensitySeries], Settings]


@st.composite
def cases(draw: Any, ample: bool = False) -> Case:
    n_jobs = draw(st.integers(1, 25))
    jobs = sorted((draw(st.integers(0, 6 * 3600)), draw(st.integers(1, 8)), draw(st.integers(60, 5 * 3600)))
                  for _ in range(n_jobs))
    partners = draw(st.lists(st.sampled_from(sorted(ZONES)), min_size=1, max_size=3, unique=True))
    size = sum(j[1] for j in jobs) if ample else draw(st.integers(8, 16))
    sites = [(f"s{i}", p, ZONES[p], size) for i, p in enumerate(partners)]
    fed = federation(sites, flexibility_h=draw(st.sampled_from([0.0, 3.0])),
                     quota=1e9 if ample else draw(st.sampled_from([1e9, 1e9, 12.0])))
    # a partner without a site of its own must go abroad, under quota (and may wait for it);
    # the first job's partner has a site, so every case has a job that must run
    homes = [draw(st.sampled_from(partners if ample or i == 0 else sorted(ZONES)))
             for i in range(len(jobs))]
    window = draw(st.sampled_from([None, 0.0, 4.0]))
    requested = [j[2] + draw(st.integers(0, 3600)) for j in jobs]
    work = workload(jobs, window_h=window, requested=requested, homes=homes)
    carbon = {z: steps(z, draw(st.lists(st.floats(20, 600), min_size=60, max_size=60)))
              for z in sorted({ZONES[p] for p in partners})}
    # sites down for a while (not with ample capacity: a job kept from its window by an
    # outage may beat the oracle, which only knows the window)
    down = [] if ample else draw(st.lists(st.tuples(st.sampled_from(sites), st.integers(0, 6 * 3600),
                                                    st.integers(600, 4 * 3600)), max_size=2))
    outages = tuple(Outage(site[0], T0_S + a, T0_S + a + d) for site, a, d in down)
    cfg = Settings(draw(st.sampled_from(list(Policy))), pass_s=0 if ample else draw(st.sampled_from([0, 60])),
                   backfill=draw(st.booleans()), replan_s=draw(st.sampled_from([0.0, 600.0])),
                   outages=outages)
    return fed, work, carbon, cfg


def _run(case: Case) -> Outcome:
    fed, work, carbon, cfg = case
    return Simulation(fed, work, carbon, cfg).run()


def home_jobs(fed: Federation, work: Workload) -> list[int]:
    """The jobs the federation can always take: their partner has a site whose pool is as
    large as the job (every pool of :func:`cases` is), so neither a policy, nor a quota, nor
    an outage (it only delays) can leave them without a place."""
    sizes = {s.partner: min(p.gpus for p in s.pools) for s in fed.sites}
    jobs = [j for j in range(len(work)) if work.partners[work.home[j]] in sizes]
    assert jobs, "the strategy must give every case a job at home"
    assert all(work.gpus[j] <= sizes[work.partners[work.home[j]]] for j in jobs)
    return jobs


def assert_home_jobs_ran(fed: Federation, work: Workload, out: Outcome) -> None:
    """Every job of :func:`home_jobs` was placed and ran its full run time."""
    for j in home_jobs(fed, work):
        assert not out.rejected[j], f"job {j} could run at home and was rejected"
        assert out.pool[j] >= 0 and math.isfinite(out.start[j]), f"job {j} never started"
        assert out.end[j] == out.start[j] + work.runtime_s[j]


@settings(max_examples=40, deadline=None)
@given(cases())
def test_capacity_is_never_exceeded_and_every_job_runs_its_time(case: Any) -> None:
    fed, work, _, cfg = case
    out = _run(case)
    assert_home_jobs_ran(fed, work, out)
    ordered = sorted(fed.sites, key=lambda s: s.id)
    sizes = [p.gpus for s in ordered for p in s.pools]
    site_of = [s.id for s in ordered for _ in s.pools]
    for j in range(len(work)):
        if out.rejected[j]:
            continue
        assert out.start[j] >= work.submit_s[j]
        assert out.end[j] == out.start[j] + work.runtime_s[j]
        assert not any(o.site == site_of[out.pool[j]] and o.start_s <= out.start[j] < o.end_s
                       for o in cfg.outages), f"job {j} started at a site that was down"
    for pool, size in enumerate(sizes):
        events = sorted([(out.start[j], work.gpus[j]) for j in range(len(work)) if out.pool[j] == pool]
                        + [(out.end[j], -work.gpus[j]) for j in range(len(work)) if out.pool[j] == pool],
                        key=lambda e: (e[0], e[1]))   # ends before starts at the same time
        level = 0
        for _, delta in events:
            level += delta
            assert 0 <= level <= size


@settings(max_examples=20, deadline=None)
@given(cases())
def test_a_run_is_deterministic(case: Any) -> None:
    a, b = _run(case), _run(case)
    assert_home_jobs_ran(case[0], case[1], a)
    assert a.start == b.start or np.array_equal(np.array(a.start), np.array(b.start), equal_nan=True)
    assert a.pool == b.pool and a.agreement == b.agreement and a.deferred == b.deferred
    assert np.array_equal(np.array(a.emissions_g), np.array(b.emissions_g), equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(cases(ample=True))
def test_the_oracle_is_a_lower_bound_of_every_policy(case: Any) -> None:
    """With capacity to spare no job queues past its window, so the oracle is below every
    job's emissions under every policy."""
    fed, work, carbon, _ = case
    oracle = oracle_emissions(fed, work, carbon)
    assert home_jobs(fed, work) == list(range(len(work)))   # ample: every partner has a site
    for policy, replan in [(p, 0.0) for p in Policy] + [(Policy.CARBON, 600.0)]:
        out = _run((fed, work, carbon, Settings(policy, pass_s=0, replan_s=replan)))
        assert_home_jobs_ran(fed, work, out)
        for j in range(len(work)):
            assert not math.isnan(out.emissions_g[j]), f"job {j} ran outside the intensity data"
            assert oracle[j] <= out.emissions_g[j] * (1 + 1e-9) + 1e-9
