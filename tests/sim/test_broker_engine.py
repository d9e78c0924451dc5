"""The broker engine alone: tiny runs through the live Broker and LedgerService whose every
figure can be checked by hand.

Every site has one pool of 1,000 W GPUs at PUE 1.0, so a GPU-hour is 1 kW × (1 + 23/28)
= 1.8214 kWh at the facility (``KW``), and emits that × the intensity in g. Dispatcher
passes run every 60 s from T0, so a job submitted between passes is placed at the next.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from accord.domain.errors import InvalidInput
from accord.sim.broker_engine import BrokerEngine
from accord.sim.model import Outcome, Policy, Settings
from tests.sim.helpers import KW, T0_S, federation, flat, steps, workload

ONE_SITE = federation([("a", "uk", "GB", 4)])
TWO_SITES = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)])


def rel(xs: list[float]) -> list[float]:
    return [x - T0_S for x in xs]


def test_a_job_runs_at_once_at_its_home_site() -> None:
    """Submitted at 10 s, placed and started by the 60 s pass, run for its hour: 2 GPU-hours
    at 100 g/kWh, and nothing for the ledger (it crossed no border)."""
    engine = BrokerEngine(ONE_SITE, workload([(10, 2, 3600)]), {"GB": flat("GB", 100)}, Settings())
    out = engine.run()
    assert (out.pool, out.agreement, out.rejected, out.deferred) == ([0], [""], [False], [False])
    assert rel(out.placed_at) == [60] and rel(out.start) == [60] and rel(out.end) == [3660]
    assert out.energy_kwh[0] == pytest.approx(2 * KW)
    assert out.emissions_g[0] == pytest.approx(2 * KW * 100)
    assert out.decisions == [1]
    assert [r.site for r in engine.usage] == ["a"] and engine.entries == []


@pytest.mark.parametrize(("backfill", "starts"),
                         [(False, [0, 3600, 5400, 5400]), (True, [0, 3600, 60, 5400])])
def test_a_full_pool_runs_its_queue_first_come_first_served(backfill: bool, starts: list[float]) -> None:
    """j0 takes 2 of 4 GPUs at 0; j1 (4 GPUs), j2 and j3 are placed at 60. j1 waits for j0's
    end (3600, not the next pass), j2 and j3 for j1's (5400). With EASY backfilling j2 (30
    min) starts at 60: it ends at 1860, before j1's reservation at 3600."""
    jobs = [(0, 2, 3600), (10, 4, 1800), (20, 2, 1800), (30, 2, 7200)]
    out = BrokerEngine(ONE_SITE, workload(jobs), {"GB": flat("GB", 100)}, Settings(backfill=backfill)).run()
    assert rel(out.start) == starts
    assert rel(out.end) == [s + j[2] for s, j in zip(starts, jobs, strict=True)]
    assert rel(out.placed_at) == [0, 60, 60, 60]


def test_carbon_aware_defers_a_job_to_the_clean_hours_of_its_window() -> None:
    """400 g/kWh for 2 h, then 100: a 30-min job with a 6-h window is deferred at 0 to 2:00,
    released and placed then; it emits half a GPU-hour at 100 g/kWh, as placement estimated."""
    carbon = {"GB": steps("GB", [400] * 4 + [100] * 100)}
    out = BrokerEngine(ONE_SITE, workload([(0, 1, 1800)], window_h=6), carbon, Settings(Policy.CARBON)).run()
    assert out.deferred == [True] and out.decisions == [2]
    assert rel(out.placed_at) == [7200] and rel(out.start) == [7200] and rel(out.end) == [9000]
    assert out.emissions_g[0] == pytest.approx(0.5 * KW * 100)
    assert out.estimate_g[0] == pytest.approx(0.5 * KW * 100, abs=1e-3)


def test_a_job_run_abroad_carries_its_agreement_and_the_ledger_holds_its_usage() -> None:
    """uk's job goes to France (50 g/kWh against GB's 400) under agreement "all": its 2
    GPU-hours are 2 units, which fr provided and uk used."""
    carbon = {"GB": flat("GB", 400), "FR": flat("FR", 50)}
    engine = BrokerEngine(TWO_SITES, workload([(0, 2, 3600)]), carbon, Settings(Policy.CARBON))
    out: Outcome = engine.run()
    assert out.pool == [1] and out.agreement == ["all"]
    assert out.emissions_g[0] == pytest.approx(2 * KW * 50)
    assert [(r.site, r.agreement, r.requester_partner) for r in engine.usage] == [("b", "all", "uk")]
    entries = [(e.agreement, e.requester, e.host, e.units) for e in engine.entries]
    assert entries == [("all", "uk", "fr", Decimal(2))]
    assert engine.balances["all"] == {"fr": Decimal(2), "uk": Decimal(-2)}


def test_a_job_bigger_than_any_pool_is_refused_and_counts_as_rejected() -> None:
    engine = BrokerEngine(ONE_SITE, workload([(0, 8, 60), (5, 1, 60)]), {"GB": flat("GB", 100)}, Settings())
    out = engine.run()
    assert list(engine.refused) == [0]
    assert out.rejected == [True, False] and out.pool == [-1, 0]
    assert rel(out.start)[1] == 60


def test_the_broker_engine_needs_dispatcher_passes() -> None:
    with pytest.raises(InvalidInput) as caught:
        BrokerEngine(ONE_SITE, workload([(0, 1, 60)]), {}, Settings(pass_s=0))
    assert [p.where for p in caught.value.problems] == ["pass_seconds"]
