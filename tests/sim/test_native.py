"""The compiled loop (``accord.sim.native``) runs home-site FIFO exactly as the kernel's
Python loop does: every job's pool, agreement, placement time, start, end, decisions and
rejection are equal, energy too, emissions within 1e-9 (vector arithmetic); the ledger gets
the same entries. On random federations, workloads, outages and passes (Hypothesis), a
small batch, and the real Philly trace. The same holds for the other policies between the
Python loop with choose()'s last step compiled (``native.pick``) and with choose() all in
numpy."""

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


def assert_same(fed: Federation, work: Workload, carbon: dict[str, IntensitySeries], cfg: Settings) -> None:
    fast = Simulation(fed, work, carbon, cfg)
    slow = Simulation(fed, work, carbon, cfg, native=False)
    a, b = fast.run(), slow.run()
    assert fast.native or fast.pick is not None
    assert not slow.native and slow.pick is None
    for j in range(len(work)):
        row_a, row_b = _row(a, j), _row(b, j)
        assert all(x == y or (x != x and y != y) for x, y in zip(row_a, row_b, strict=True)), \
            f"job {j}: compiled {row_a} vs Python {row_b}"
        x, y = a.emissions_g[j], b.emissions_g[j]
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-9 * abs(y), f"job {j}: {x} vs {y} g"
    assert fast.ledger.history == slow.ledger.history
    assert fast.ledger.used == slow.ledger.used and fast.ledger.net == slow.ledger.net


def _row(o: Outcome, j: int) -> tuple[Any, ...]:
    return (o.pool[j], o.agreement[j], o.placed_at[j], o.start[j], o.end[j], o.decisions[j], o.rejected[j],
            o.deferred[j], o.energy_kwh[j])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([0.0, 60.0, 600.0]), st.integers(1, 4))
def test_the_compiled_loop_runs_home_fifo_as_the_python_loop(case: Any, pass_s: float, depth: int) -> None:
    fed, work, carbon, cfg = case
    assert_same(fed, work, carbon, replace(cfg, policy=Policy.HOME, pass_s=pass_s, backfill_depth=depth))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([Policy.EARLIEST, Policy.CARBON, Policy.CARBON_RECIPROCITY]))
def test_the_compiled_pick_places_as_choose_in_numpy(case: Any, policy: Policy) -> None:
    fed, work, carbon, cfg = case
    assert_same(fed, work, carbon, replace(cfg, policy=policy))


def test_a_small_batch_and_a_site_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eleven jobs at once, three a pass; the one home site down for the first hour: its jobs
    wait (decided again each pass), then run in order, as in the Python loop."""
    from accord.service import broker

    monkeypatch.setattr(broker, "BATCH", 3)
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 64)])
    work = workload([(0, 1, 600)] * 10 + [(100, 2, 600)])
    carbon = {"GB": flat("GB", 200.0), "FR": flat("FR", 50.0)}
    cfg = Settings(Policy.HOME, pass_s=60.0, backfill=True, outages=(Outage("a", T0_S, T0_S + 3600),))
    assert_same(fed, work, carbon, cfg)
    out = Simulation(fed, work, carbon, cfg).run()
    assert [s - T0_S for s in out.start[:5]] == [3600.0] * 3 + [3660.0, 4200.0]
    assert not any(out.rejected)


def test_a_job_no_home_site_can_take_is_rejected_at_once() -> None:
    fed = federation([("a", "uk", "GB", 4)])
    work = workload([(0, 8, 600), (0, 2, 600), (10, 1, 60)], homes=["uk", "fr", "uk"])
    out = Simulation(fed, work, {"GB": flat("GB", 100.0)}, Settings(Policy.HOME)).run()
    assert out.rejected == [True, True, False] and out.pool == [-1, -1, 0]
    assert_same(fed, work, {"GB": flat("GB", 100.0)}, Settings(Policy.HOME))


@pytest.mark.parametrize(("policy", "backfill"), [(Policy.HOME, False), (Policy.HOME, True),
                                                  (Policy.CARBON, False), (Policy.CARBON_RECIPROCITY, True)])
def test_the_compiled_loop_agrees_on_the_real_philly_trace(policy: Policy, backfill: bool) -> None:
    """2,000 jobs of the Philly trace at 3 times their arrival rate over five small sites,
    on the real GB, FR and DE intensity of March 2020 (with the carbon policies, each job
    may start up to 6 h late, and each partner may use 400 H100-hours a month abroad)."""
    from accord.sim.runner import load_carbon

    path = shared_data_dir() / "traces" / "philly_sia.csv"
    trace = scale(parse_trace(path.read_text(encoding="utf-8"), str(path), TraceFormat.PHILLY),
                  jobs=2000, load=3.0)
    carbon_aware = policy is not Policy.HOME   # abroad with 6 h of flexibility, a small quota
    fed = federation([("a", "uk", "GB", 32), ("a2", "uk", "GB", 16), ("b", "fr", "FR", 32),
                      ("c", "de", "DE", 16), ("c2", "de", "DE", 24)],
                     6.0 if carbon_aware else 0.0, 400.0 if carbon_aware else 1e9)
    home, partners = assign_homes(trace, {"uk": 2.0, "fr": 1.0, "de": 1.0}, HomeRule.GROUP, 1,
                                  ["de", "fr", "uk"])
    work = Workload(trace.submit_s + T0_S, np.minimum(trace.gpus, 16), trace.runtime_s, trace.requested_s,
                    home, partners, "ai", "academia", 6 * 3600.0 if carbon_aware else None)
    start = T0_S - 86_400
    carbon, _ = load_carbon(shared_data_dir() / "carbon", ["GB", "FR", "DE"],
                            flat("GB", 1.0).start, flat("GB", 1.0, hours=24 * 120).end)
    assert start < work.submit_s[0]
    assert_same(fed, work, carbon, Settings(policy, backfill=backfill))
