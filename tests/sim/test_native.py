"""The kernel's loop (``accord.sim.native``, one source) runs every policy compiled exactly
as interpreted: every job's pool, agreement, placement time, start, end, deferral,
decisions, rejection, energy and estimate are equal, emissions within 1e-9 (vector
arithmetic); the ledger gets the same entries. On random federations, workloads, outages,
quotas, windows, passes and reconsiderations (Hypothesis), a small batch, and the real
Philly trace (there compiled twice: the interpreted loop is too slow for 2,000 jobs, and the
300-job test below runs it). Before the Python loop that called ``choose()`` for every
decision was removed, these tests compared the loop with it too, job for job (identical;
``docs/benchmarks.md``); ``test_engines_agree.py`` compares it with the live broker."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.adapters.carbon.files import shared_data_dir
from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.domain.traces.trace import HomeRule, TraceFormat, assign_homes, parse_trace, scale
from accord.sim.kernel import Simulation
from accord.sim.model import Outage, Outcome, Policy, Settings, Workload
from tests.sim.helpers import T0_S, federation, flat, workload
from tests.sim.test_properties import cases


def assert_same(fed: Federation, work: Workload, carbon: dict[str, IntensitySeries], cfg: Settings,
                interpreted: bool = True) -> None:
    """The loop compiled and the same source interpreted give the same run (and, unless
    ``interpreted`` is False, the run is repeatable)."""
    fast = Simulation(fed, work, carbon, cfg)
    a = fast.run()
    again = Simulation(fed, work, carbon, cfg, compiled=not interpreted)
    b = again.run()
    _equal(a, b, "compiled", "interpreted" if interpreted else "compiled again")
    assert fast.ledger.history == again.ledger.history
    assert fast.ledger.used == again.ledger.used and fast.ledger.net == again.ledger.net
    assert fast.fills == again.fills


def _equal(a: Outcome, b: Outcome, x: str, y: str) -> None:
    for j in range(len(a.pool)):
        row_a, row_b = _row(a, j), _row(b, j)
        assert all(p == q or (p != p and q != q) for p, q in zip(row_a, row_b, strict=True)), \
            f"job {j}: {x} {row_a} vs {y} {row_b}"
        e, f = a.emissions_g[j], b.emissions_g[j]
        assert (math.isnan(e) and math.isnan(f)) or abs(e - f) <= 1e-9 * abs(f), f"job {j}: {e} vs {f} g"


def _row(o: Outcome, j: int) -> tuple[Any, ...]:
    return (o.pool[j], o.agreement[j], o.placed_at[j], o.start[j], o.end[j], o.decisions[j], o.rejected[j],
            o.deferred[j], o.energy_kwh[j], o.estimate_g[j])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([0.0, 60.0, 600.0]), st.integers(1, 4))
def test_the_loop_runs_home_fifo_compiled_as_interpreted(case: Any, pass_s: float, depth: int) -> None:
    fed, work, carbon, cfg = case
    assert_same(fed, work, carbon, replace(cfg, policy=Policy.HOME, pass_s=pass_s, backfill_depth=depth))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([Policy.EARLIEST, Policy.CARBON, Policy.CARBON_RECIPROCITY]),
       st.sampled_from([60.0, 1800.0, 5000.0]))
def test_the_loop_runs_the_policies_with_a_context_compiled_as_interpreted(case: Any, policy: Policy,
                                                                     refresh_s: float) -> None:
    fed, work, carbon, cfg = case
    assert_same(fed, work, carbon, replace(cfg, policy=policy, refresh_s=refresh_s))


def test_a_small_batch_and_a_site_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eleven jobs at once, three a pass; the one home site down for the first hour: its jobs
    wait (decided again each pass), then run in order."""
    from accord.service import broker

    monkeypatch.setattr(broker, "BATCH", 3)
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 64)])
    work = workload([(0, 1, 600)] * 10 + [(100, 2, 600)])
    carbon = {"GB": flat("GB", 200.0), "FR": flat("FR", 50.0)}
    cfg = Settings(Policy.HOME, pass_s=60.0, backfill=True, outages=(Outage("a", T0_S, T0_S + 3600),))
    assert_same(fed, work, carbon, cfg)
    assert_same(fed, work, carbon, replace(cfg, policy=Policy.CARBON))
    out = Simulation(fed, work, carbon, cfg).run()
    assert [s - T0_S for s in out.start[:5]] == [3600.0] * 3 + [3660.0, 4200.0]
    assert not any(out.rejected)


def test_a_job_no_home_site_can_take_is_rejected_at_once() -> None:
    fed = federation([("a", "uk", "GB", 4)])
    work = workload([(0, 8, 600), (0, 2, 600), (10, 1, 60)], homes=["uk", "fr", "uk"])
    out = Simulation(fed, work, {"GB": flat("GB", 100.0)}, Settings(Policy.HOME)).run()
    assert out.rejected == [True, True, False] and out.pool == [-1, -1, 0]
    assert_same(fed, work, {"GB": flat("GB", 100.0)}, Settings(Policy.HOME))


@pytest.mark.parametrize(("policy", "backfill", "replan"),
                         [(Policy.HOME, False, 0.0), (Policy.HOME, True, 0.0), (Policy.EARLIEST, False, 0.0),
                          (Policy.CARBON, False, 0.0), (Policy.CARBON, True, 600.0),
                          (Policy.CARBON_RECIPROCITY, True, 0.0)])
def test_the_loop_agrees_on_the_real_philly_trace(policy: Policy, backfill: bool, replan: float) -> None:
    """2,000 jobs of the Philly trace at 3 times their arrival rate over five small sites,
    on the real GB, FR and DE intensity of March 2020 (with the policies but home, each job
    may start up to 6 h late, and each partner may use 400 H100-hours a month abroad)."""
    from accord.sim.runner import load_carbon

    path = shared_data_dir() / "traces" / "philly_sia.csv"
    trace = scale(parse_trace(path.read_text(encoding="utf-8"), str(path), TraceFormat.PHILLY),
                  jobs=2000, load=3.0)
    abroad = policy is not Policy.HOME   # abroad with 6 h of flexibility, a small quota
    fed = federation([("a", "uk", "GB", 32), ("a2", "uk", "GB", 16), ("b", "fr", "FR", 32),
                      ("c", "de", "DE", 16), ("c2", "de", "DE", 24)],
                     6.0 if abroad else 0.0, 400.0 if abroad else 1e9)
    home, partners = assign_homes(trace, {"uk": 2.0, "fr": 1.0, "de": 1.0}, HomeRule.GROUP, 1,
                                  ["de", "fr", "uk"])
    work = Workload(trace.submit_s + T0_S, np.minimum(trace.gpus, 16), trace.runtime_s, trace.requested_s,
                    home, partners, "ai", "academia", 6 * 3600.0 if abroad else None)
    carbon, _ = load_carbon(shared_data_dir() / "carbon", ["GB", "FR", "DE"],
                            flat("GB", 1.0).start, flat("GB", 1.0, hours=24 * 120).end)
    assert work.submit_s[0] > T0_S - 86_400
    assert_same(fed, work, carbon, Settings(policy, backfill=backfill, replan_s=replan), interpreted=False)


def test_the_interpreted_loop_agrees_on_300_philly_jobs_carbon_aware() -> None:
    """The same source interpreted, on a slice of the real trace with a tight quota."""
    work, carbon = _philly(300, load=3.0)
    fed = federation([("a", "uk", "GB", 16), ("b", "fr", "FR", 16), ("c", "de", "DE", 16)], 6.0, 100.0)
    assert_same(fed, work, carbon, Settings(Policy.CARBON_RECIPROCITY, replan_s=600.0))


def _philly(jobs: int, load: float = 1.0) -> tuple[Workload, dict[str, IntensitySeries]]:
    """The first ``jobs`` of the real Philly trace (at most 16 GPUs each, homes by virtual
    cluster over uk, fr and de) and the real intensity of GB, FR and DE."""
    from accord.sim.runner import load_carbon

    path = shared_data_dir() / "traces" / "philly_sia.csv"
    trace = scale(parse_trace(path.read_text(encoding="utf-8"), str(path), TraceFormat.PHILLY),
                  jobs=jobs, load=load)
    home, partners = assign_homes(trace, {"uk": 2.0, "fr": 1.0, "de": 1.0}, HomeRule.GROUP, 1,
                                  ["de", "fr", "uk"])
    work = Workload(trace.submit_s + T0_S, np.minimum(trace.gpus, 16), trace.runtime_s, trace.requested_s,
                    home, partners, "ai", "academia", None)
    carbon, _ = load_carbon(shared_data_dir() / "carbon", ["GB", "FR", "DE"],
                            flat("GB", 1.0).start, flat("GB", 1.0, hours=24 * 120).end)
    return work, carbon


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([Policy.CARBON, Policy.CARBON_RECIPROCITY]))
def test_contexts_the_loop_makes_itself_are_the_context_builders(case: Any, policy: Policy) -> None:
    """With the ledger unchanged since the last context (same month and rule epoch), the loop
    makes the next one itself (the perfect forecast's windows): the same run as when the
    broker's context builder makes every one."""
    fed, work, carbon, cfg = case
    cfg = replace(cfg, policy=policy)
    _same_without_renewing(fed, work, carbon, cfg)


def _same_without_renewing(fed: Federation, work: Workload, carbon: dict[str, IntensitySeries],
                           cfg: Settings) -> None:
    from accord.sim import native_run

    a = Simulation(fed, work, carbon, cfg)
    first = a.run()
    native_run.RENEW = False
    try:
        b = Simulation(fed, work, carbon, cfg)
        second = b.run()
    finally:
        native_run.RENEW = True
    _equal(first, second, "renewing", "building every context")
    assert a.ledger.history == b.ledger.history and a.ledger.net == b.ledger.net


def test_contexts_the_loop_makes_itself_on_the_real_philly_trace() -> None:
    work, carbon = _philly(3000)
    fed = federation([("a", "uk", "GB", 32), ("b", "fr", "FR", 32), ("c", "de", "DE", 16)], 6.0, 400.0)
    _same_without_renewing(fed, work, carbon, Settings(Policy.CARBON_RECIPROCITY, replan_s=600.0))
