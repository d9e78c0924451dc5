"""A job's energy and emissions on hand-checkable inputs, its ledger memo lines and totals."""

from __future__ import annotations

import doctest
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.domain.carbon import footprint
from accord.domain.carbon.energy import DEFAULT_HOST_SHARE, EnergyBasis
from accord.domain.carbon.footprint import (
    GroupBy,
    energy_basis,
    energy_of,
    month_memos,
    parse_group,
    run_span,
    totals,
    with_footprint,
)
from accord.domain.carbon.series import series
from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation, Site
from accord.domain.jobs import codec
from accord.domain.ledger.entries import usage_entries
from accord.domain.ledger.statement import _memo
from accord.domain.ledger.usage import UsageRecord, split_by_month

T = datetime(2026, 10, 5, 10, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def record(start: datetime = T, hours: float = 1.0, gpus: int = 2, site: str = "bristol",
           pool: str = "h100", **kw: object) -> UsageRecord:
    end = start + timedelta(hours=hours)
    base = UsageRecord(f"{site}:1", "j1", site, pool, "H100", "uk", "fr", "uk-fr", "proj",
                       start, end, gpus, gpus * hours * 3600, "completed", 0)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def bristol(small_federation: Federation) -> Site:
    """pue 1.1, one pool of 4 x H100 at 700 W, grid zone GB."""
    return small_federation.site("bristol")


def test_doctests_of_the_footprint_module() -> None:
    result = doctest.testmod(footprint)
    assert result.failed == 0 and result.attempted > 0


def test_the_host_share_is_the_dgx_h100_ratio() -> None:
    # 10.2 kW node, 8 x 700 W GPUs: (10.2 - 5.6) / 5.6 = 23/28; 1,275 W per GPU with its host share.
    assert abs(DEFAULT_HOST_SHARE - 23 / 28) < 1e-15
    assert abs(700 * (1 + DEFAULT_HOST_SHARE) - 1275.0) < 1e-12


def test_modelled_energy_of_two_h100_for_an_hour_at_pue_1_1(bristol: Site) -> None:
    kwh, basis = energy_of(record(gpus=2, hours=1), bristol)
    # 2 GPUs x 1,275 W (700 W + host share) x 1 h x PUE 1.1 = 2.805 kWh
    assert kwh == pytest.approx(2.805, rel=1e-12)
    assert basis is EnergyBasis.MODEL
    bare, _ = energy_of(record(gpus=2, hours=1), bristol, host_share=0.0)
    assert bare == pytest.approx(2 * 0.7 * 1.1, rel=1e-12)  # 1.54 kWh without the host


def test_measured_energy_replaces_the_model_with_pue_and_no_host_share(bristol: Site) -> None:
    kwh, basis = energy_of(record(energy_j=7.2e6), bristol)  # 2 kWh measured at the nodes
    assert kwh == pytest.approx(2.2, rel=1e-12)  # x PUE 1.1
    assert basis is EnergyBasis.MEASURED


def test_constant_200_g_per_kwh_gives_exact_grams(bristol: Site) -> None:
    r = record()
    flat = series("GB", T - timedelta(hours=1), 1800, [200.0] * 8, source="flat")
    done = with_footprint(r, bristol, flat)
    assert done.energy_kwh == pytest.approx(2.805, rel=1e-12)
    assert done.emissions_g == pytest.approx(561.0, rel=1e-12)  # 2.805 kWh x 200 g/kWh
    assert done.intensity_source == "flat"
    assert energy_basis(done) is EnergyBasis.MODEL


def test_emissions_integrate_the_actual_run_not_whole_slots(bristol: Site) -> None:
    # 100 g/kWh until 10:30, 300 after; the run 10:15-10:45 sees 15 min of each: mean 200.
    s = series("GB", T, 1800, [100.0, 300.0])
    r = record(start=T + timedelta(minutes=15), hours=0.5, gpus=1, energy_j=3.6e6 / 1.1)
    done = with_footprint(r, bristol, s)
    assert done.energy_kwh == pytest.approx(1.0, rel=1e-12)
    assert done.emissions_g == pytest.approx(200.0, rel=1e-12)


def test_no_intensity_keeps_the_energy_and_says_why(bristol: Site) -> None:
    done = with_footprint(record(), bristol, None, "no carbon source answered for GB")
    assert done.energy_kwh == pytest.approx(2.805, rel=1e-12)
    assert done.emissions_g is None
    assert done.intensity_source == "unavailable: no carbon source answered for GB"


def test_a_series_that_misses_the_run_leaves_emissions_unknown(bristol: Site) -> None:
    early = series("GB", T - timedelta(days=1), 3600, [200.0])
    done = with_footprint(record(), bristol, early)
    assert done.emissions_g is None and done.energy_kwh is not None
    assert done.intensity_source is not None
    assert done.intensity_source.startswith("unavailable: span: the GB series (test) does not cover")


def test_an_unknown_pool_gives_no_figures_but_does_not_raise(bristol: Site) -> None:
    done = with_footprint(record(pool="gone"), bristol, series("GB", T, 3600, [200.0]))
    assert (done.energy_kwh, done.emissions_g) == (None, None)
    assert done.intensity_source == "unavailable: no energy figure: site 'bristol' has no pool 'gone'"
    assert energy_basis(done) is None


def test_a_run_of_no_time_uses_its_first_second(bristol: Site) -> None:
    r = record(hours=0, energy_j=3.6e6)
    assert run_span(r) == (T, T + timedelta(seconds=1))
    done = with_footprint(r, bristol, series("GB", T, 3600, [50.0]))
    assert done.emissions_g == pytest.approx(1.1 * 50.0, rel=1e-12)


# ─── ledger memo lines ───────────────────────────────────────────────────────────────────


def test_memo_lines_split_by_month_like_the_units(small_federation: Federation) -> None:
    # 3 h across Halloween midnight: 1 h in October, 2 h in November.
    r = record(start=datetime(2026, 10, 31, 23, tzinfo=UTC), hours=3, site="paris", pool="a100",
               energy_kwh=3.0, emissions_g=1234.5678)
    r = replace(r, requester_partner="uk", host_partner="fr", gpu_model="A100")
    octo, nov = usage_entries(r, small_federation, NOW)
    assert dict(octo.memo) == {"energy_kwh": "1.000000", "emissions_kg": "0.411523"}
    assert dict(nov.memo) == {"energy_kwh": "2.000000", "emissions_kg": "0.823045"}
    assert octo.memo == tuple(sorted(octo.memo))  # stored sorted, as read back
    assert _memo([octo, nov]) == {"emissions_kg": "1.234568", "energy_kwh": "3.000000"}


def test_no_figures_no_memo_and_unknown_emissions_only_energy(small_federation: Federation) -> None:
    r = replace(record(site="paris", pool="a100"), requester_partner="uk", host_partner="fr",
                gpu_model="A100")
    [plain] = usage_entries(r, small_federation, NOW)
    assert plain.memo == ()
    [part] = usage_entries(replace(r, energy_kwh=1.5), small_federation, NOW)
    assert part.memo == (("energy_kwh", "1.500000"),)


def test_memo_of_a_run_of_no_time_is_the_whole_figure() -> None:
    r = record(hours=0, energy_kwh=0.25, emissions_g=10.0)
    assert month_memos(r, split_by_month(r)) == [(("emissions_kg", "0.010000"),
                                                  ("energy_kwh", "0.250000"))]


@given(hours=st.floats(0.001, 24 * 70), offset_h=st.floats(0, 24 * 30),
       kwh=st.floats(0, 1e6), grams=st.floats(0, 1e9))
def test_memo_shares_are_never_negative_and_sum_to_the_rounded_figure(
    hours: float, offset_h: float, kwh: float, grams: float,
) -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=offset_h)
    r = record(start=start, hours=hours, energy_kwh=kwh, emissions_g=grams)
    memos = month_memos(r, split_by_month(r))
    for key, value in (("energy_kwh", kwh), ("emissions_kg", grams / 1000)):
        parts = [Decimal(dict(m)[key]) for m in memos]
        assert all(p >= 0 for p in parts)
        assert sum(parts) == Decimal(repr(value)).quantize(Decimal("0.000001"))


# ─── totals ──────────────────────────────────────────────────────────────────────────────


def test_totals_per_group_count_unknown_figures_apart() -> None:
    a = record(energy_kwh=2.0, emissions_g=400.0)
    b = replace(record(gpus=1, hours=2, energy_kwh=1.0, emissions_g=None), id="paris:2",
                site="paris", project="other", host_partner="fr", requester_partner="uk")
    c = replace(record(gpus=4, energy_kwh=None), id="bristol:3", agreement=None,
                requester_partner=None)
    by_agreement = {t.key: t for t in totals([a, b, c], GroupBy.AGREEMENT)}
    assert set(by_agreement) == {"uk-fr", "(none)"}
    uk_fr = by_agreement["uk-fr"]
    assert (uk_fr.jobs, uk_fr.gpu_hours, uk_fr.energy_kwh, uk_fr.emissions_kg) == (2, 4.0, 3.0, 0.4)
    assert (uk_fr.energy_unknown, uk_fr.emissions_unknown) == (0, 1)
    assert (by_agreement["(none)"].energy_unknown, by_agreement["(none)"].emissions_unknown) == (1, 1)
    assert [t.key for t in totals([a, b, c], GroupBy.SITE)] == ["bristol", "paris"]
    assert [t.key for t in totals([a, b, c], GroupBy.PROJECT)] == ["other", "proj"]
    assert [(t.key, t.jobs) for t in totals([a, b, c], GroupBy.HOST_PARTNER)] == [("fr", 1), ("uk", 2)]
    assert [(t.key, t.jobs) for t in totals([a, b, c], GroupBy.REQUESTER_PARTNER)] == [
        ("(none)", 1), ("fr", 1), ("uk", 1)]


def test_group_names() -> None:
    assert parse_group("partner") is GroupBy.HOST_PARTNER
    assert parse_group("requester_partner") is GroupBy.REQUESTER_PARTNER
    with pytest.raises(InvalidInput, match="allowed partner, project, site"):
        parse_group("country")


def test_usage_encodes_its_footprint() -> None:
    doc = codec.encode_usage(record(energy_kwh=2.0, emissions_g=400.0, intensity_source="flat"))
    assert (doc["energy_kwh"], doc["energy_basis"], doc["emissions_kg"]) == (2.0, "model", 0.4)
    assert (doc["mean_intensity_g_per_kwh"], doc["gpu_hours"], doc["start"]) == (
        200.0, 2.0, "2026-10-05T10:00:00+00:00")
    unknown = codec.encode_usage(record(energy_kwh=2.0, energy_j=1.0))
    assert (unknown["energy_basis"], unknown["emissions_kg"], unknown["mean_intensity_g_per_kwh"]) == (
        "measured", None, None)
