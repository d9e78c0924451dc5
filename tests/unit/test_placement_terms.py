"""Placement's terms one by one, its start window, the explanation, and the per-federation
weights of ``[federation.placement]``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import integrate, series
from accord.domain.errors import InvalidInput
from accord.domain.federation.model import PlacementWeights
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.place import forecast_zones, place
from accord.domain.placement.records import Candidate, Decision, PoolLoad, Verdict
from tests.conftest import SMALL_FEDERATION, T0

FED = parse_federation_text(SMALL_FEDERATION)
HOUR = timedelta(hours=1)
JOB = JobSpec(name="t", gpus=1, time_limit_s=3600, command=("true",), partner="uk", theme="climate")
# GB: dirty now, clean from T0 + 2 h for two hours; FR clean and flat
GB = series("GB", T0 - HOUR, 1800, [300.0] * 6 + [100.0] * 4 + [280.0] * 90)
FR = series("FR", T0 - HOUR, 1800, [50.0] * 100)


def ctx(weights: PlacementWeights | None = None, quota: float = 1000.0,
        balances: dict[str, dict[str, float]] | None = None, zones: tuple[str, ...] = ("GB", "FR"),
        ) -> PlacementContext:
    forecasts = {z: ZoneForecast.of(s, 1800) for z, s in (("GB", GB), ("FR", FR)) if z in zones}
    return PlacementContext(weights or FED.placement, forecasts,
                            {("uk-fr", "uk", "fr"): quota, ("uk-fr", "fr", "uk"): quota},
                            balances or {}, {"FR": "no carbon source answered for FR"})


# ─── when ──────────────────────────────────────────────────────────────────────────────────


def test_a_job_with_a_window_is_deferred_to_the_cleanest_start() -> None:
    spec = replace(JOB, gpu_model="H100", deadline=T0 + 6 * HOUR)
    d = place(spec, FED, {}, T0, context=ctx())
    assert d.verdict is Verdict.DEFER and d.start == T0 + 2 * HOUR
    assert d.chosen is not None and d.chosen_now is not None and d.chosen_now.start == T0
    assert d.chosen.emissions_g is not None and d.chosen_now.emissions_g is not None
    assert d.chosen.emissions_g == pytest.approx(d.chosen_now.emissions_g / 3)   # 100 vs 300 g/kWh
    assert d.chosen.term("emissions") == pytest.approx(-2 / 3)
    text = d.explain()
    assert text.startswith("Deferred to start at 2026-11-02 11:00 UTC (in 2 h 00 min) at bristol/h100")
    assert "67%) less than running now at bristol/h100" in text
    assert "Runner-up: bristol/h100 now" in text


def test_the_run_must_end_by_the_deadline() -> None:
    # the clean hours start at T0 + 2 h; a deadline at T0 + 2.5 h leaves only starts up to 1.5 h
    d = place(replace(JOB, gpu_model="H100", deadline=T0 + 2.5 * HOUR), FED, {}, T0, context=ctx())
    assert d.start is not None and d.start + HOUR <= T0 + 2.5 * HOUR
    assert d.start == T0 + 1.5 * HOUR   # half of the run in the clean hours


def test_a_deadline_that_can_no_longer_be_met_means_now() -> None:
    d = place(replace(JOB, gpu_model="H100", deadline=T0 + 0.5 * HOUR), FED, {}, T0, context=ctx())
    assert d.verdict is Verdict.PLACE and d.start == T0
    assert ("Starts at once: too little time is left before its deadline 2026-11-02 09:30 UTC "
            "to wait") in d.explain()


def test_no_deadline_at_home_starts_now() -> None:
    d = place(replace(JOB, gpu_model="H100"), FED, {}, T0, context=ctx())
    assert d.verdict is Verdict.PLACE and d.start == T0


def test_no_deadline_abroad_uses_the_agreements_default_flexibility() -> None:
    text = SMALL_FEDERATION.replace('sectors = ["academia"]', 'sectors = ["academia"]\n'
                                    "default_flexibility_hours = 4", 1)
    fed = parse_federation_text(text)
    spec = JobSpec("t", 1, 3600, ("true",), partner="fr", gpu_model="H100", theme="climate")
    d = place(spec, fed, {}, T0, context=replace(ctx(), weights=fed.placement))
    assert d.chosen is not None and d.chosen.agreement == "uk-fr"
    assert d.start == T0 + 2 * HOUR
    d = place(replace(spec, time_limit_s=3600), fed, {}, T0, context=None)
    assert d.verdict is Verdict.PLACE


def test_earliest_start_opens_the_window() -> None:
    spec = replace(JOB, gpu_model="H100", earliest_start=T0 + 2.5 * HOUR, deadline=T0 + 8 * HOUR)
    d = place(spec, FED, {}, T0, context=ctx())
    assert d.verdict is Verdict.DEFER and d.start == T0 + 2.5 * HOUR


def test_equal_forecasts_keep_the_earliest_start() -> None:
    spec = replace(JOB, data_residency=("FR",), deadline=T0 + 10 * HOUR)
    d = place(spec, FED, {}, T0 + 7 * 60 * timedelta(seconds=1), context=ctx())
    assert d.verdict is Verdict.PLACE and d.chosen is not None and d.chosen.site == "paris"


def test_the_emissions_weight_zero_means_now() -> None:
    spec = replace(JOB, gpu_model="H100", deadline=T0 + 6 * HOUR)
    d = place(spec, FED, {}, T0, context=ctx(replace(FED.placement, emissions=0.0)))
    assert d.verdict is Verdict.PLACE and d.chosen is not None
    assert d.chosen.term("emissions") == 0.0


# ─── where ─────────────────────────────────────────────────────────────────────────────────


def candidates(d: Decision) -> dict[str, Candidate]:
    """The best candidate per site among the chosen one and the alternatives."""
    out: dict[str, Candidate] = {}
    for c in (d.chosen, *d.alternatives):
        if c is not None:
            out.setdefault(c.site, c)
    return out


def test_a_clean_grid_abroad_can_outweigh_the_border() -> None:
    # bristol: H100 at 700 W, PUE 1.1, GB at 300 g/kWh; paris: A100 at 400 W, PUE 1.2, FR at 50
    spec = replace(JOB, gpu_model=None)
    green = place(spec, FED, {}, T0, context=ctx())
    assert green.chosen is not None and green.chosen.site == "paris"
    assert green.chosen.term("emissions") == pytest.approx(-0.896, abs=1e-3)   # 90 % less
    assert green.reference is not None and green.reference.site == "bristol"
    home = place(spec, FED, {}, T0, context=ctx(replace(FED.placement, emissions=0.2)))
    assert home.chosen is not None and home.chosen.site == "bristol"   # border + reciprocity win


def test_reciprocity_prefers_moves_that_cut_the_imbalance() -> None:
    spec = replace(JOB, gpu_model=None)
    balanced = candidates(place(spec, FED, {}, T0, context=ctx()))["paris"]
    assert balanced.term("reciprocity") == pytest.approx(0.25)   # adds imbalance: +1 x weight 0.25
    owed = ctx(balances={"uk-fr": {"uk": 500.0, "fr": -500.0}})
    repays = candidates(place(spec, FED, {}, T0, context=owed))["paris"]
    assert repays.term("reciprocity") == pytest.approx(-0.25)    # fr owes uk: the move repays
    # the job is worth 0.5 units (1 GPU x 1 h x 0.5): it turns a gap of -0.5 into +0.5
    flips = ctx(balances={"uk-fr": {"uk": 0.25, "fr": -0.25}})
    assert candidates(place(spec, FED, {}, T0, context=flips))["paris"].term("reciprocity") == 0


def test_cost_is_the_exchange_rate() -> None:
    d = place(replace(JOB, partner=None, deadline=None), FED, {}, T0, context=ctx())
    costs = {c.site: c.term("cost") for c in (d.chosen, *d.alternatives) if c is not None}
    assert costs == {"bristol": pytest.approx(0.1), "paris": pytest.approx(0.05)}


def test_a_zone_without_forecast_has_no_emissions_term() -> None:
    d = place(replace(JOB, data_residency=("FR",)), FED, {}, T0, context=ctx(zones=("GB",)))
    assert d.chosen is not None and d.chosen.emissions_g is None and d.chosen.term("emissions") == 0
    assert "No intensity forecast for FR: no carbon source answered for FR" in d.explain()


# ─── hard constraints: quota left ──────────────────────────────────────────────────────────


def test_quota_left_rules_out_a_job_that_would_exceed_it() -> None:
    spec = replace(JOB, gpus=4, time_limit_s=2 * 3600, gpu_model="A100")   # 4 x 2 h x 0.5 = 4 units
    assert place(spec, FED, {}, T0, context=ctx(quota=4.0)).verdict is Verdict.PLACE
    d = place(spec, FED, {}, T0, context=ctx(quota=3.5))
    assert d.verdict is Verdict.WAIT, "a yearly quota renews: the job may run later"
    assert ("agreement uk-fr has 3.50 H100-hour of uk's quota at fr left this year; the job needs "
            "about 4.00 (4 GPUs × 2 h × 0.5)") in d.explain()


def test_a_quota_for_the_whole_agreement_does_not_renew() -> None:
    text = SMALL_FEDERATION.replace('units = 1000\nper = "year"', 'units = 1000\nper = "agreement"', 1)
    fed = parse_federation_text(text)
    spec = replace(JOB, gpus=4, gpu_model="A100")
    d = place(spec, fed, {}, T0, context=replace(ctx(quota=1.0), weights=fed.placement))
    assert d.verdict is Verdict.REJECT and "left in total" in d.explain()


def test_no_context_is_the_placement_of_before() -> None:
    d = place(replace(JOB, deadline=T0 + 6 * HOUR), FED, {}, T0)
    assert d.verdict is Verdict.PLACE and d.chosen is not None and d.start == T0
    assert [n for n, _ in d.chosen.terms] == ["wait", "border"]
    assert d.explain().startswith("Placed at bristol/h100 to start now (score 0.00: wait 0.00, border 0.00)")


def test_placed_now_turns_a_deferral_into_a_placement() -> None:
    d = place(replace(JOB, gpu_model="H100", deadline=T0 + 6 * HOUR), FED, {}, T0, context=ctx())
    now = d.placed_now("Placed at once: the deadline is near")
    assert now.verdict is Verdict.PLACE and now.start == T0 and now.chosen == d.chosen_now
    assert now.explain().startswith("Placed at bristol/h100 to start now")
    assert "Placed at once: the deadline is near" in now.explain()


def test_a_busy_pool_waits_in_the_score() -> None:
    busy = {("bristol", "h100"): PoolLoad(free_gpus=0, queued_gpus=8)}
    d = place(replace(JOB, gpu_model="H100"), FED, busy, T0, context=ctx())
    assert d.chosen is not None and d.chosen.term("wait") == pytest.approx(9 / 4)


# ─── forecasts and which zones a pass needs ────────────────────────────────────────────────


def test_forecast_integrals_equal_the_series() -> None:
    f = ZoneForecast.of(GB, 1800)
    for a, b in ((T0, T0 + HOUR), (T0 + 0.3 * HOUR, T0 + 2.7 * HOUR)):
        assert f.integral(a.timestamp(), b.timestamp()) / 3600 == pytest.approx(integrate(GB, a, b))
    end = f.origin_s + len(f.values) * 1800
    assert f.integral(end, end + 3600) == pytest.approx(sum(f.values) / len(f.values) * 3600)


def test_a_forecast_must_be_on_the_slot_grid() -> None:
    with pytest.raises(InvalidInput, match="must be on the placement slot grid"):
        PlacementContext(FED.placement, {"GB": ZoneForecast.of(GB, 900)})
    with pytest.raises(InvalidInput, match="aligned"):
        ZoneForecast("GB", 100.0, 1800, (1.0,), "x")


def test_a_pass_asks_only_for_the_zones_a_job_could_use() -> None:
    assert forecast_zones(replace(JOB, site="bristol"), FED) == frozenset()
    assert forecast_zones(replace(JOB, site="bristol", deadline=T0 + 5 * HOUR), FED) == {"GB"}
    assert forecast_zones(replace(JOB, gpu_model=None), FED) == {"GB", "FR"}


# ─── [federation.placement] ────────────────────────────────────────────────────────────────


def test_weights_default_when_absent() -> None:
    assert FED.placement == PlacementWeights()


def test_weights_are_read_and_checked() -> None:
    text = SMALL_FEDERATION.replace('themes = ["climate", "ai-safety"]', 'themes = ["climate", "ai-safety"]\n'
                                    "[federation.placement]\nemissions = 2.5\nborder = 0\n"
                                    "slot_minutes = 15\n", 1)
    w = parse_federation_text(text).placement
    assert (w.emissions, w.border, w.wait, w.slot_s) == (2.5, 0.0, 1.0, 900)
    bad = text.replace("emissions = 2.5", "emissions = -1\nspeed = 3").replace("= 15", "= 7")
    with pytest.raises(InvalidInput) as info:
        parse_federation_text(bad, "f.toml")
    problems = [p.render() for p in info.value.problems]
    assert any("federation.placement.emissions: is out of range (got -1" in p for p in problems)
    assert any("federation.placement.speed: unknown field" in p and "slot_minutes" in p for p in problems)
    assert any("federation.placement.slot_minutes: must divide a day and be at most 240 (got 7" in p
               for p in problems)
    assert all(p.startswith("f.toml:") for p in problems)
