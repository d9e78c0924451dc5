"""The fast kernel and the broker engine (the live Broker and LedgerService driven through
their ports) give every job the same pool, start, end, agreement and deferral, and the same
energy and emissions, on random federations, workloads and intensities (Hypothesis) and on
a slice of the real Philly trace. This is what lets the kernel call placement directly."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from accord.adapters.carbon.files import shared_data_dir
from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.domain.traces.trace import HomeRule, TraceFormat, assign_homes, parse_trace, scale
from accord.sim.broker_engine import BrokerEngine
from accord.sim.kernel import Simulation
from accord.sim.model import Outcome, Policy, Settings, Workload
from tests.sim.helpers import T0_S, federation, steps, workload
from tests.sim.test_properties import cases

LIVE: dict[str, Any] = {"pass_s": 60.0, "refresh_s": 60.0, "replan_s": 600.0}   # as the live broker's passes


def assert_same(fed: Federation, work: Workload, carbon: dict[str, IntensitySeries], cfg: Settings) -> None:
    fast = Simulation(fed, work, carbon, cfg).run()
    slow = BrokerEngine(fed, work, carbon, cfg).run()
    for j in range(len(work)):
        where = f"job {j} ({cfg.policy.value}): kernel {_row(fast, j)} vs broker {_row(slow, j)}"
        assert fast.pool[j] == slow.pool[j], where
        assert fast.agreement[j] == slow.agreement[j], where
        assert fast.deferred[j] == slow.deferred[j], where
        assert fast.rejected[j] == slow.rejected[j], where
        assert _same(fast.start[j], slow.start[j]) and _same(fast.end[j], slow.end[j]), where
        assert _same(fast.energy_kwh[j], slow.energy_kwh[j], 1e-9), where
        assert _same(fast.emissions_g[j], slow.emissions_g[j], 1e-6), where


def _same(a: float, b: float, rel: float = 0.0) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def _row(o: Outcome, j: int) -> tuple[Any, ...]:
    return (o.pool[j], o.agreement[j], o.start[j] - T0_S, o.end[j] - T0_S, o.deferred[j], o.rejected[j])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_kernel_places_and_runs_every_job_as_the_live_broker_does(case: Any) -> None:
    fed, work, carbon, cfg = case
    assert_same(fed, work, carbon, replace(cfg, **LIVE))


@pytest.mark.parametrize("policy", list(Policy))
def test_both_engines_agree_on_the_real_philly_trace(policy: Policy) -> None:
    """The first 150 jobs of the Philly trace, at 6 times its arrival rate, over three
    small sites on the real GB, FR and DE intensity of March 2020."""
    from accord.sim.runner import load_carbon

    path = shared_data_dir() / "traces" / "philly_sia.csv"
    trace = scale(parse_trace(path.read_text(encoding="utf-8"), str(path), TraceFormat.PHILLY),
                  jobs=150, load=6.0)
    fed = federation([("a", "uk", "GB", 24), ("b", "fr", "FR", 16), ("c", "de", "DE", 16)],
                     flexibility_h=6.0)
    home, partners = assign_homes(trace, {"uk": 2.0, "fr": 1.0, "de": 1.0}, HomeRule.GROUP, 1,
                                  ["de", "fr", "uk"])
    work = Workload(trace.submit_s + T0_S, np.minimum(trace.gpus, 16), trace.runtime_s, trace.requested_s,
                    home, partners, "ai", "academia", None)
    start, end = steps("GB", [1.0]).start, steps("GB", [1.0] * 24 * 30).end
    carbon, _ = load_carbon(shared_data_dir() / "carbon", ["GB", "FR", "DE"], start, end)
    assert_same(fed, work, carbon, Settings(policy, **LIVE))


def test_both_engines_place_a_burst_a_batch_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten jobs at once with a batch of three: four passes place them, oldest first, in both."""
    from accord.service import broker

    monkeypatch.setattr(broker, "BATCH", 3)
    fed = federation([("a", "uk", "GB", 64), ("b", "fr", "FR", 64)])
    work = workload([(0, 1, 600)] * 10 + [(100, 2, 600)])
    carbon = {"GB": steps("GB", [200.0] * 60), "FR": steps("FR", [50.0] * 60)}
    for policy in (Policy.HOME, Policy.EARLIEST):
        cfg = Settings(policy, **LIVE)
        assert_same(fed, work, carbon, cfg)
        out = Simulation(fed, work, carbon, cfg).run()
        assert [s - T0_S for s in out.start] == [0.0] * 3 + [60.0] * 3 + [120.0] * 3 + [180.0] * 2
