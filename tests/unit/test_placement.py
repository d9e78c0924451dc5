"""Placement: hard constraints always hold; the choice is explained."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import series
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.place import place
from accord.domain.placement.records import PoolLoad, Verdict
from tests.conftest import SMALL_FEDERATION, T0

FED = parse_federation_text(SMALL_FEDERATION)
BASE = JobSpec(name="t", gpus=1, time_limit_s=60, command=("true",))


def test_home_partner_site_is_preferred() -> None:
    d = place(replace(BASE, partner="uk", theme="climate"), FED, {}, T0)
    assert d.verdict is Verdict.PLACE and d.chosen is not None
    assert (d.chosen.site, d.chosen.agreement) == ("bristol", None)
    assert "Placed at bristol/h100" in d.explain() and "paris/a100" in d.explain()


def test_cross_border_needs_an_agreement_covering_the_theme() -> None:
    spec = replace(BASE, partner="uk", gpu_model="A100", theme="ai-safety")
    d = place(spec, FED, {}, T0)
    assert d.verdict is Verdict.REJECT
    assert "covers themes climate, not ai-safety" in d.explain()
    ok = place(replace(spec, theme="climate"), FED, {}, T0)
    assert ok.chosen is not None and (ok.chosen.site, ok.chosen.agreement) == ("paris", "uk-fr")


def test_no_agreement_means_no_foreign_site() -> None:
    d = place(replace(BASE, partner="kr"), FED, {}, T0)
    assert d.verdict is Verdict.REJECT
    assert "no agreement between kr and uk" in d.explain()


def test_agreement_out_of_force_is_refused() -> None:
    spec = replace(BASE, partner="uk", gpu_model="A100", theme="climate")
    d = place(spec, FED, {}, T0.replace(year=2029))
    assert "not in force on 2029-11-02" in d.explain()


def test_residency_keeps_data_in_country() -> None:
    d = place(replace(BASE, data_residency=("FR",)), FED, {}, T0)
    assert d.chosen is not None and d.chosen.site == "paris"


def test_site_down_means_wait_not_reject() -> None:
    down = {("bristol", "h100"): PoolLoad(0, available=False, note="slurmctld not answering")}
    d = place(replace(BASE, partner="uk", gpu_model="H100"), FED, down, T0)
    assert d.verdict is Verdict.WAIT
    assert "slurmctld not answering" in d.explain()


def test_busy_site_loses_to_idle_one() -> None:
    busy = {("bristol", "h100"): PoolLoad(free_gpus=0, queued_gpus=8)}
    d = place(BASE, FED, busy, T0)
    assert d.chosen is not None and d.chosen.site == "paris"


specs = st.builds(
    JobSpec,
    name=st.just("p"),
    gpus=st.integers(1, 10),
    time_limit_s=st.just(60),
    command=st.just(("true",)),
    gpu_model=st.sampled_from([None, "H100", "A100"]),
    partner=st.sampled_from([None, "uk", "fr", "kr"]),
    theme=st.sampled_from([None, "climate", "ai-safety"]),
    data_residency=st.sampled_from([(), ("GB",), ("FR",), ("KR",)]),
    site=st.sampled_from([None, "bristol", "paris"]),
)
loads = st.dictionaries(
    st.sampled_from([("bristol", "h100"), ("paris", "a100")]),
    st.builds(PoolLoad, free_gpus=st.integers(-4, 8), queued_gpus=st.integers(0, 16),
              available=st.booleans()),
)


@settings(max_examples=500, deadline=None)
@given(specs, loads)
def test_placement_never_breaks_a_hard_constraint(spec: JobSpec, load: dict) -> None:  # type: ignore[type-arg]
    d = place(spec, FED, load, T0)
    if d.chosen is None:
        assert d.verdict in (Verdict.WAIT, Verdict.REJECT)
        return
    site = FED.site(d.chosen.site)
    pool = site.pool(d.chosen.pool)
    assert pool.gpus >= spec.gpus
    assert spec.gpu_model in (None, pool.gpu_model)
    assert spec.site in (None, site.id)
    assert not spec.data_residency or FED.partner(site.partner).country in spec.data_residency
    assert load.get((site.id, pool.id), PoolLoad(1)).available
    if spec.partner is not None and spec.partner != site.partner:
        agreement = FED.agreement(d.chosen.agreement or "")
        assert agreement.quota(spec.partner, site.partner) is not None
        assert spec.theme in agreement.themes


# ─── with a context: quota left and the start window are hard constraints too ──────────────

HOUR = timedelta(hours=1)
GB = series("GB", T0 - HOUR, 3600, [300, 120, 80, 260, 90, 400] * 12)
FR = series("FR", T0 - HOUR, 3600, [60, 40, 70, 30] * 18)


def context(quota: float, with_fr: bool = True) -> PlacementContext:
    forecasts = {"GB": ZoneForecast.of(GB, 1800)}
    if with_fr:
        forecasts["FR"] = ZoneForecast.of(FR, 1800)
    return PlacementContext(FED.placement, forecasts,
                            {("uk-fr", "uk", "fr"): quota, ("uk-fr", "fr", "uk"): quota})


windowed = st.builds(
    JobSpec,
    name=st.just("p"),
    gpus=st.integers(1, 10),
    time_limit_s=st.sampled_from([600, 3600, 5400, 4 * 3600]),
    command=st.just(("true",)),
    gpu_model=st.sampled_from([None, "H100", "A100"]),
    partner=st.sampled_from([None, "uk", "fr", "kr"]),
    theme=st.sampled_from([None, "climate", "ai-safety"]),
    data_residency=st.sampled_from([(), ("GB",), ("FR",)]),
    site=st.sampled_from([None, "bristol", "paris"]),
    earliest_start=st.sampled_from([None, T0 - HOUR, T0 + timedelta(minutes=40)]),
    deadline=st.sampled_from([None, T0 + HOUR, T0 + 3 * HOUR, T0 + 30 * HOUR]),
)


@settings(max_examples=500, deadline=None)
@given(windowed, loads, st.sampled_from([0.0, 2.0, 50.0, 1e6]), st.booleans(),
       st.sampled_from([0, 7 * 60, 30 * 60]))
def test_placement_with_a_context_never_breaks_a_hard_constraint(
        spec: JobSpec, load: dict, quota: float, with_fr: bool, late_s: int) -> None:  # type: ignore[type-arg]
    at = T0 + timedelta(seconds=late_s)
    d = place(spec, FED, load, at, context=context(quota, with_fr))
    if d.chosen is None:
        assert d.verdict in (Verdict.WAIT, Verdict.REJECT)
        return
    c, site = d.chosen, FED.site(d.chosen.site)
    pool = site.pool(c.pool)
    assert pool.gpus >= spec.gpus and spec.gpu_model in (None, pool.gpu_model)
    assert spec.site in (None, site.id)
    assert not spec.data_residency or FED.partner(site.partner).country in spec.data_residency
    assert load.get((site.id, pool.id), PoolLoad(1)).available
    if spec.partner is not None and spec.partner != site.partner:
        agreement = FED.agreement(c.agreement or "")
        assert agreement.quota(spec.partner, site.partner) is not None and spec.theme in agreement.themes
        units = spec.gpus * spec.time_limit_s / 3600 * FED.rate(pool.gpu_model, at).units_per_gpu_hour
        assert units <= quota + 1e-9
    # the start window: not before the job may start, done by the deadline when that can be
    first = max(at, spec.earliest_start or at)
    run = timedelta(seconds=spec.time_limit_s)
    assert c.start is not None and first <= c.start <= first + 47 * timedelta(minutes=30)
    if spec.deadline is not None and first + run <= spec.deadline:
        assert c.start + run <= spec.deadline
    if spec.deadline is None and c.agreement is None:
        assert c.start == first, "no deadline and no agreement: no flexibility"
    assert (d.verdict is Verdict.DEFER) == (c.start > at)
    assert d.verdict in (Verdict.PLACE, Verdict.DEFER)
