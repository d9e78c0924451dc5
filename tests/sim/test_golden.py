"""Golden scenarios: tiny runs whose every figure can be checked by hand.

Every site has one pool of 1,000 W GPUs at PUE 1.0, so a GPU-hour is 1 kW × (1 + 23/28)
= 1.8214 kWh at the facility, and emits that × the intensity in g.
"""

from __future__ import annotations

import io
import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from accord.adapters.carbon.profiles import ProfileSource
from accord.cli.simulate import ProgressBar
from accord.domain.carbon.series import series
from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import InvalidInput
from accord.sim.broker_engine import BrokerEngine
from accord.sim.kernel import Simulation
from accord.sim.metrics import Run, balances, comparable, final_balances, jain, summary, utilisation
from accord.sim.model import Failures, Outage, Outcome, Policy, Settings, draw_outages
from accord.sim.oracle import oracle_emissions
from tests.sim.helpers import KW, T0_S, federation, flat, steps, workload

ONE_SITE = federation([("a", "uk", "GB", 4)])


def run(fed, work, carbon, policy=Policy.HOME, **kw) -> Outcome:  # type: ignore[no-untyped-def]
    return Simulation(fed, work, carbon, Settings(policy, pass_s=0, **kw)).run()


def rel(xs: list[float]) -> list[float]:
    return [x - T0_S for x in xs]


# ─── the site scheduler ───

BACKFILL_JOBS = [(0, 2, 3600), (10, 4, 1800), (20, 2, 1800), (30, 2, 7200)]


def test_fifo_keeps_submit_order_at_a_pool() -> None:
    """j0 takes 2 of 4 GPUs; j1 needs all 4 and waits for j0 (3600); j2 and j3 queue behind
    it and start together when j1 ends (5400)."""
    out = run(ONE_SITE, workload(BACKFILL_JOBS), {"GB": flat("GB", 100)})
    assert rel(out.start) == [0, 3600, 5400, 5400]
    assert rel(out.end) == [3600, 5400, 7200, 12600]


def test_easy_backfilling_starts_a_short_job_that_ends_before_the_reservation() -> None:
    """With EASY, j1 (the head) is reserved at 3600; j2 fits now and ends at 1820 ≤ 3600, so
    it starts at 20; j3 would run past 3600 on GPUs j1 needs, so it waits."""
    out = run(ONE_SITE, workload(BACKFILL_JOBS), {"GB": flat("GB", 100)}, backfill=True)
    assert rel(out.start) == [0, 3600, 20, 5400]
    assert rel(out.end) == [3600, 5400, 1820, 12600]


def test_energy_and_emissions_of_a_run() -> None:
    """4 GPUs × 1 h at 100 g/kWh: 4 × 1.8214 = 7.2857 kWh, 728.57 g."""
    out = run(ONE_SITE, workload([(0, 4, 3600)]), {"GB": flat("GB", 100)})
    assert out.energy_kwh[0] == pytest.approx(4 * KW)
    assert out.emissions_g[0] == pytest.approx(4 * KW * 100)


def test_a_zone_without_data_has_unknown_emissions_but_known_energy() -> None:
    out = run(ONE_SITE, workload([(0, 1, 3600)]), {})
    assert out.energy_kwh[0] == pytest.approx(KW)
    assert math.isnan(out.emissions_g[0])


def test_a_job_bigger_than_any_pool_is_rejected() -> None:
    out = run(ONE_SITE, workload([(0, 8, 60), (5, 1, 60)]), {"GB": flat("GB", 100)})
    assert out.rejected == [True, False]
    assert math.isnan(out.start[0]) and rel(out.start)[1] == 5


def test_dispatcher_passes_place_jobs_at_pass_times() -> None:
    """With a 60 s pass, a job submitted at 10 s is placed, and starts, at 60 s."""
    out = Simulation(ONE_SITE, workload([(10, 1, 60)]), {"GB": flat("GB", 100)},
                     Settings(Policy.HOME, pass_s=60)).run()
    assert rel(out.start) == [60] and rel(out.placed_at) == [60]


# ─── policies ───


def test_carbon_aware_waits_for_the_clean_hours_in_its_window() -> None:
    """400 g/kWh for 2 h, then 100: a 30-min job with a 6-h window is deferred to 2:00 and
    emits a quarter of what starting at once (home FIFO) does; that is the oracle too."""
    fed = federation([("a", "uk", "GB", 4)])
    carbon = {"GB": steps("GB", [400] * 4 + [100] * 100)}
    work = workload([(0, 1, 1800)], window_h=6)
    home = run(fed, work, carbon)
    green = run(fed, work, carbon, Policy.CARBON)
    assert rel(home.start) == [0] and rel(green.start) == [7200]
    assert green.deferred == [True] and green.decisions == [2]   # deferred, then placed at its start
    # as the live broker: reconsidered every 10 minutes from 0:10 to 1:50 (11 times), unmoved
    replanned = run(fed, work, carbon, Policy.CARBON, replan_s=600)
    assert rel(replanned.start) == [7200] and replanned.decisions == [13]
    assert home.emissions_g[0] == pytest.approx(0.5 * KW * 400)
    assert green.emissions_g[0] == pytest.approx(0.5 * KW * 100)
    assert oracle_emissions(fed, work, carbon)[0] == pytest.approx(0.5 * KW * 100)


def test_carbon_aware_moves_work_to_a_cleaner_grid_and_the_ledger_counts_it() -> None:
    """uk's job: GB at 400 g/kWh, FR at 50. Carbon-aware runs it in France under the
    agreement (2 GPU-hours = 2 units: fr provided 2, uk used 2); home FIFO keeps it in GB."""
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)])
    carbon = {"GB": flat("GB", 400), "FR": flat("FR", 50)}
    work = workload([(0, 2, 3600)])
    home, green = run(fed, work, carbon), Simulation(fed, work, carbon, Settings(Policy.CARBON, pass_s=0))
    out = green.run()
    assert home.agreement == [""] and home.emissions_g[0] == pytest.approx(2 * KW * 400)
    assert out.agreement == ["all"] and out.emissions_g[0] == pytest.approx(2 * KW * 50)
    assert {p: float(v) for p, v in green.ledger.balance("all").items()} == {"fr": 2.0, "uk": -2.0}


def test_earliest_start_goes_abroad_when_home_is_full() -> None:
    """uk's site is busy for an hour; earliest-start sends the second job to France at once,
    home FIFO makes it wait the hour."""
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)])
    carbon = {"GB": flat("GB", 400), "FR": flat("FR", 50)}
    work = workload([(0, 4, 3600), (60, 4, 600)])
    assert rel(run(fed, work, carbon).start) == [0, 3600]
    fast = run(fed, work, carbon, Policy.EARLIEST)
    assert rel(fast.start) == [0, 60] and fast.agreement == ["", "all"]


def test_quota_left_keeps_work_at_home() -> None:
    """A quota of 1 unit a month: a 2 GPU-hour job may not go to France."""
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)], quota=1)
    out = run(fed, workload([(0, 2, 3600)]), {"GB": flat("GB", 400), "FR": flat("FR", 50)}, Policy.CARBON)
    assert out.agreement == [""]


# ─── metrics ───


def test_summary_figures_by_hand() -> None:
    """The FIFO run above: waits 0, 3590, 5380, 5370 s; the baseline is itself."""
    fed, work = ONE_SITE, workload(BACKFILL_JOBS)
    carbon = {"GB": flat("GB", 100)}
    out = run(fed, work, carbon)
    r = Run("v", Policy.HOME, fed, (("a", "p"),), work, out, (), 0.0)
    oracle = oracle_emissions(fed, work, carbon)
    s = summary(r, comparable([r], oracle), r, oracle)
    waits = np.array([0, 3590, 5380, 5370]) / 3600
    assert s["wait_h"]["mean"] == pytest.approx(waits.mean())
    assert s["wait_h"]["p50"] == pytest.approx(np.percentile(waits, 50))
    # bounded slowdown: (wait + run) / max(run, 10 s)
    slowdowns = [1, 5390 / 1800, 7180 / 1800, 12570 / 7200]
    assert s["bounded_slowdown"]["mean"] == pytest.approx(np.mean(slowdowns))
    assert s["energy_mwh"] == pytest.approx(KW * (2 + 2 + 1 + 4) / 1000)
    assert s["comparison"]["saving"] == 0.0
    # utilisation: 9 GPU-hours busy over 4 GPUs
    busy = s["utilisation"]["mean"]["a"] * 4 * (len(s["utilisation"]["t"]) * 3600)
    assert busy == pytest.approx(9 * 3600)


def test_jain_index() -> None:
    assert jain([1.0, 1.0, 1.0]) == 1.0
    assert jain([3.0, 1.0]) == pytest.approx(16 / 20)


def test_balance_over_time_follows_the_ledger() -> None:
    """The France case above with a second, 1-GPU job two hours later: the balance moves by
    2 units when the first job ends (at 1 h) and by 1 when the second does (at 3 h)."""
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)])
    carbon = {"GB": flat("GB", 400), "FR": flat("FR", 50)}
    work = workload([(0, 2, 3600), (7200, 1, 3600)])
    sim = Simulation(fed, work, carbon, Settings(Policy.CARBON, pass_s=0))
    out = sim.run()
    r = Run("v", Policy.CARBON, fed, sim.keys, work, out, tuple(sim.ledger.history), 0.0)
    b = balances(r)
    assert rel(b["t"]) == [3600, 7200, 10800]   # hourly buckets to the last end
    assert b["agreements"]["all"]["fr"] == [2.0, 2.0, 3.0]
    assert b["agreements"]["all"]["uk"] == [-2.0, -2.0, -3.0]
    assert final_balances(r)["all"] == {"uk": -3.0, "fr": 3.0, "de": 0.0}
    assert set(utilisation(r)["sites"]) == {"a", "b"}


def test_progress_bar_off_a_terminal_prints_a_line_per_run() -> None:
    buf = io.StringIO()
    bar = ProgressBar(buf)
    bar("today / home", 0, 10)
    bar("today / home", 10, 10)
    bar("today / carbon", 0, 10)
    assert buf.getvalue() == "simulating today / home: 10 jobs\nsimulating today / carbon: 10 jobs\n"


def test_a_job_that_can_never_get_quota_ends_rejected() -> None:
    """uk's only site is in France and its monthly quota (1 unit) is smaller than the job
    (2 units): the job waits for quota that never suffices, and is rejected in the end."""
    fed = federation([("b", "fr", "FR", 4)], quota=1)
    out = run(fed, workload([(0, 2, 3600)]), {"FR": flat("FR", 50)}, Policy.CARBON)
    assert out.rejected == [True] and math.isnan(out.start[0])


def test_a_history_forecast_defers_to_the_hour_that_used_to_be_clean() -> None:
    """For nine days the grid was clean (100 g/kWh) at 2:00 and dirty (400) otherwise; on
    the simulated day it is clean at 5:00 instead. With perfect forecasts a 30-min job with a
    12-h window runs at 5:00; with the 7-day history forecast it runs at 2:00 and pays 400.
    The broker engine, through the same carbon source, does the same."""
    day = [400.0] * 4 + [100.0] * 2 + [400.0] * 42
    today = [400.0] * 10 + [100.0] * 2 + [400.0] * 36
    gb = series("GB", datetime.fromtimestamp(T0_S - 9 * 86_400, UTC), 1800, day * 9 + today * 3)
    work = workload([(0, 1, 1800)], window_h=12)
    perfect = run(ONE_SITE, work, {"GB": gb}, Policy.CARBON)
    history = run(ONE_SITE, work, {"GB": gb}, Policy.CARBON, forecast=Forecast.HISTORY_7D)
    assert rel(perfect.start) == [5 * 3600] and rel(history.start) == [2 * 3600]
    assert perfect.emissions_g[0] == pytest.approx(0.5 * KW * 100)
    assert history.emissions_g[0] == pytest.approx(0.5 * KW * 400)
    live_cfg = Settings(Policy.CARBON, pass_s=60, refresh_s=60, replan_s=600, forecast=Forecast.HISTORY_7D)
    live = BrokerEngine(ONE_SITE, work, {"GB": gb}, live_cfg).run()
    assert rel(live.start) == [2 * 3600] and live.emissions_g[0] == pytest.approx(0.5 * KW * 400)


def test_a_job_waiting_for_quota_is_placed_when_the_month_renews_it() -> None:
    """uk's two-GPU jobs can only run in France, under 3 units a month. The first (2 units)
    runs; the second, submitted after it, waits: 1 unit is left. A French job fills the
    French pool from 3 March to 2 April. As the broker retries waiting jobs every pass, the
    second uk job is placed at 00:00 on 1 April, when the quota renews, and starts when the
    French job ends, in both engines (never earlier: time does not run backwards)."""
    fed = federation([("a", "uk", "GB", 1), ("b", "fr", "FR", 2)], quota=3)
    work = workload([(0, 2, 3600), (3 * 3600, 2, 3600), (86_400, 2, 30 * 86_400)], homes=["uk", "uk", "fr"])
    carbon = {"GB": flat("GB", 100, hours=24 * 60), "FR": flat("FR", 50, hours=24 * 60)}
    april = datetime(2020, 4, 1, tzinfo=UTC).timestamp()
    cfg = Settings(Policy.EARLIEST, pass_s=60, refresh_s=60)
    for out in (Simulation(fed, work, carbon, cfg).run(), BrokerEngine(fed, work, carbon, cfg).run()):
        assert out.pool == [1, 1, 1] and out.agreement == ["all", "all", ""]
        assert out.start[0] == T0_S and out.placed_at[1] == april
        assert out.start[1] == out.end[2] == T0_S + 31 * 86_400


def test_a_site_that_is_down_starts_nothing_and_its_queue_starts_when_it_is_back() -> None:
    """Site a (uk) is down from 0:30 to 2:00. j0 (all 4 GPUs, 1 h) runs through the outage
    and ends at 1:00; j1, queued behind it at 0:10, starts only when a is back, at 2:00. j2,
    submitted at 0:40, may only run at home: it waits, is placed at 2:00 and starts when j1
    ends. Earliest-start sends j1 and j2 to France instead. Both engines agree."""
    fed = federation([("a", "uk", "GB", 4), ("b", "fr", "FR", 4)])
    work = workload([(0, 4, 3600), (600, 4, 600), (2400, 1, 600)])
    carbon = {"GB": flat("GB", 100), "FR": flat("FR", 50)}
    down = (Outage("a", T0_S + 1800, T0_S + 7200),)
    for policy, pools, starts in ((Policy.HOME, [0, 0, 0], [0, 7200, 7800]),
                                  (Policy.EARLIEST, [0, 1, 1], [0, 600, 2400])):
        cfg = Settings(policy, pass_s=60, refresh_s=60, outages=down)
        for out in (Simulation(fed, work, carbon, cfg).run(), BrokerEngine(fed, work, carbon, cfg).run()):
            assert out.pool == pools and rel(out.start) == starts, policy
            assert rel(out.end) == [s + r for s, r in zip(starts, [3600, 600, 600], strict=True)]
            assert rel(out.placed_at) == ([0, 600, 7200] if policy is Policy.HOME else [0, 600, 2400])
            assert out.energy_kwh[0] == pytest.approx(4 * KW)


def test_an_outage_of_an_unknown_site_is_refused_with_its_field() -> None:
    cfg = Settings(Policy.HOME, outages=(Outage("nowhere", T0_S, T0_S + 60), Outage("a", T0_S, T0_S)))
    for engine in (Simulation, BrokerEngine):
        with pytest.raises(InvalidInput) as err:
            engine(ONE_SITE, workload([(0, 1, 60)]), {}, cfg)
        assert [(p.where, p.got) for p in err.value.problems] == [
            ("outages", "nowhere"), ("outages", "a: 2020-03-02T00:00:00Z to 2020-03-02T00:00:00Z")]


def test_drawn_outages_follow_their_means() -> None:
    """Over 20,000 hours, outages every 10 h on average lasting 1 h: about 20,000 / 11 of
    them, 1 h long on average; the same seed draws the same, another seed others."""
    f = Failures(10 * 3600.0, 3600.0, seed=3)
    out = draw_outages(f, ["a"], 0.0, 20_000 * 3600.0)
    assert len(out) == pytest.approx(20_000 / 11, rel=0.05)
    assert np.mean([o.end_s - o.start_s for o in out]) == pytest.approx(3600, rel=0.05)
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(out))
    assert out == draw_outages(f, ["a"], 0.0, 20_000 * 3600.0)
    assert out != draw_outages(Failures(10 * 3600.0, 3600.0, seed=4), ["a"], 0.0, 20_000 * 3600.0)


def test_a_profile_forecast_plans_by_the_built_in_typical_day() -> None:
    """The grid is flat (200 g/kWh all day): perfect forecasts see no cleaner hour and run the
    30-min job at once. With the built-in profile as the forecast (what a broker with no feed
    plans with), the job is deferred to the profile's cleanest half-hour start in its 12-h
    window, and pays the flat 200 g/kWh all the same. Both engines agree."""
    profile = ProfileSource().profile("GB")
    t0 = datetime.fromtimestamp(T0_S, UTC)
    starts = [t0 + timedelta(minutes=30 * k) for k in range(24)]          # within the 12-h window
    typical = [profile.value(s) / 2 + profile.value(s + timedelta(minutes=30)) / 2 for s in starts]
    expected = (starts[typical.index(min(typical))] - t0).total_seconds()
    assert expected > 0, "the profile's cleanest hour must differ from the first, or this test proves nothing"
    work = workload([(0, 1, 1800)], window_h=12)
    carbon = {"GB": flat("GB", 200)}
    assert rel(run(ONE_SITE, work, carbon, Policy.CARBON).start) == [0]
    planned = run(ONE_SITE, work, carbon, Policy.CARBON, forecast=Forecast.PROFILE, profiles=ProfileSource())
    assert rel(planned.start) == [expected] and planned.emissions_g[0] == pytest.approx(0.5 * KW * 200)
    live_cfg = Settings(Policy.CARBON, pass_s=60, refresh_s=60, replan_s=600, forecast=Forecast.PROFILE,
                        profiles=ProfileSource())
    live = BrokerEngine(ONE_SITE, work, carbon, live_cfg).run()
    assert rel(live.start) == [expected]
