"""Placement's hard constraints, from :mod:`accord.domain.placement.index`: which pools a job's
shape allows and why not the others, which agreements cover it abroad and the exact refusal
each other one gives (what the API and the decision's explanation show), which exchange rate
applies on a day, a pool's facility power per GPU (what the emissions estimate uses), and the
caches every decision shares (built once, bounded).

Every expected value is written out by hand from the federations below."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import series
from accord.domain.federation.model import Federation, PlacementWeights
from accord.domain.jobs.model import JobSpec
from accord.domain.placement import index
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.index import _INDEXES, _index, _remember
from accord.domain.placement.place import allowed_pools, place
from accord.domain.placement.records import PoolLoad, Rejection, Verdict
from tests.conftest import SMALL_FEDERATION, T0

HOUR = timedelta(hours=1)

# Four partners, one pool each; pools in (site id, pool id) order: berlin, bristol, paris, seoul.
# uk-fr: two themes, two sectors; uk-de and uk-kr: any theme or sector, but the work must stay
# in the listed countries (de is in DE: allowed; kr is in KR: refused). Only uk may go abroad.
WIDE_FEDERATION = """
[federation]
name = "wide"
reference_unit = "H100-hour"
themes = ["climate", "health", "ai-safety"]

[[gpu_models]]
name = "H100"
[[gpu_models]]
name = "A100"

[[exchange_rates]]
gpu_model = "H100"
units_per_gpu_hour = 1.0
valid_from = 2024-01-01
[[exchange_rates]]
gpu_model = "A100"
units_per_gpu_hour = 0.5
valid_from = 2024-01-01

[[partners]]
id = "uk"
name = "United Kingdom"
country = "GB"
[[partners]]
id = "fr"
name = "France"
country = "FR"
[[partners]]
id = "de"
name = "Germany"
country = "DE"
[[partners]]
id = "kr"
name = "South Korea"
country = "KR"

[[sites]]
id = "bristol"
name = "Bristol"
partner = "uk"
grid_zone = "GB"
pue = 1.1
backend = "local"
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = 4
power_w = 700

[[sites]]
id = "paris"
name = "Paris"
partner = "fr"
grid_zone = "FR"
pue = 1.2
backend = "local"
[[sites.pools]]
id = "a100"
gpu_model = "A100"
gpus = 8
power_w = 400

[[sites]]
id = "berlin"
name = "Berlin"
partner = "de"
grid_zone = "DE"
pue = 1.3
backend = "local"
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = 8
power_w = 700

[[sites]]
id = "seoul"
name = "Seoul"
partner = "kr"
grid_zone = "KR"
pue = 1.4
backend = "local"
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = 8
power_w = 700

[[agreements]]
id = "uk-fr"
name = "UK-France"
parties = ["uk", "fr"]
start = 2025-01-01
end = 2027-12-31
themes = ["climate", "health"]
sectors = ["academia", "government"]
[[agreements.quotas]]
requester = "uk"
host = "fr"
units = 1000

[[agreements]]
id = "uk-de"
name = "UK-Germany"
parties = ["uk", "de"]
start = 2025-01-01
end = 2027-12-31
residency_countries = ["FR", "DE"]
[[agreements.quotas]]
requester = "uk"
host = "de"
units = 1000

[[agreements]]
id = "uk-kr"
name = "UK-Korea"
parties = ["uk", "kr"]
start = 2025-01-01
end = 2027-12-31
residency_countries = ["GB", "FR"]
[[agreements.quotas]]
requester = "uk"
host = "kr"
units = 1000
"""

WIDE = parse_federation_text(WIDE_FEDERATION)
SMALL = parse_federation_text(SMALL_FEDERATION)
JOB = JobSpec(name="t", gpus=1, time_limit_s=3600, command=("true",))
UK = replace(JOB, partner="uk")


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


# ─── the job's shape: which pools it may ever use ─────────────────────────────────────────

STAY = "the job's data must stay in"


@pytest.mark.parametrize(("changes", "rejected"), [
    ({"site": "paris"}, [("berlin", "h100", "the job asks for site paris"),
                         ("bristol", "h100", "the job asks for site paris"),
                         ("seoul", "h100", "the job asks for site paris")]),
    ({"gpu_model": "A100"}, [("berlin", "h100", "GPU model H100, the job asks for A100"),
                             ("bristol", "h100", "GPU model H100, the job asks for A100"),
                             ("seoul", "h100", "GPU model H100, the job asks for A100")]),
    # exactly a pool's size fits it; one GPU more does not
    ({"gpus": 8}, [("bristol", "h100", "pool has 4 GPUs, the job asks for 8")]),
    ({"data_residency": ("FR",)}, [("berlin", "h100", f"site is in DE; {STAY} FR"),
                                   ("bristol", "h100", f"site is in GB; {STAY} FR"),
                                   ("seoul", "h100", f"site is in KR; {STAY} FR")]),
    ({"data_residency": ("GB", "DE")}, [("paris", "a100", f"site is in FR; {STAY} GB, DE"),
                                        ("seoul", "h100", f"site is in KR; {STAY} GB, DE")]),
])
def test_the_jobs_shape_rules_pools_out_with_the_reason(changes: dict[str, object],
                                                         rejected: list[tuple[str, str, str]]) -> None:
    d = place(replace(JOB, **changes), WIDE, {}, T0)  # type: ignore[arg-type]
    assert d.verdict is Verdict.PLACE
    assert d.rejected == tuple(Rejection(site, pool, reason) for site, pool, reason in rejected)


def test_a_job_bigger_than_every_pool_is_rejected_with_each_pools_size() -> None:
    d = place(replace(JOB, gpus=9), WIDE, {}, T0)
    assert d.verdict is Verdict.REJECT and d.chosen is None
    assert d.rejected == (Rejection("berlin", "h100", "pool has 8 GPUs, the job asks for 9"),
                          Rejection("bristol", "h100", "pool has 4 GPUs, the job asks for 9"),
                          Rejection("paris", "a100", "pool has 8 GPUs, the job asks for 9"),
                          Rejection("seoul", "h100", "pool has 8 GPUs, the job asks for 9"))


# ─── abroad: the agreements, and why each one that does not cover the job refuses it ──────

THEMES = "agreement uk-fr covers themes climate, health, not "
KEEPS = "agreement uk-kr keeps work in GB, FR"


@pytest.mark.parametrize(("changes", "day", "refused"), [
    # a theme outside the agreement's, or none at all; residency keeps uk-kr's work out of KR
    ({"theme": "ai-safety", "sector": "academia"}, date(2026, 11, 2),
     [("paris", "a100", THEMES + "ai-safety"), ("seoul", "h100", KEEPS)]),
    ({}, date(2026, 11, 2),
     [("paris", "a100", THEMES + "(no theme given)"), ("seoul", "h100", KEEPS)]),
    # a sector the agreement is not open to; an unknown sector (None) is not checked
    ({"theme": "climate", "sector": "industry"}, date(2026, 11, 2),
     [("paris", "a100", "agreement uk-fr is open to the academia, government sector(s), not industry"),
      ("seoul", "h100", KEEPS)]),
    ({"theme": "health", "sector": "government"}, date(2026, 11, 2), [("seoul", "h100", KEEPS)]),
    ({"theme": "climate"}, date(2026, 11, 2), [("seoul", "h100", KEEPS)]),
    # in force from its first day to its last, both included
    ({"theme": "climate"}, date(2025, 1, 1), [("seoul", "h100", KEEPS)]),
    ({"theme": "climate"}, date(2027, 12, 31), [("seoul", "h100", KEEPS)]),
    ({"theme": "climate"}, date(2024, 12, 31),
     [("berlin", "h100", "agreement uk-de is not in force on 2024-12-31"),
      ("paris", "a100", "agreement uk-fr is not in force on 2024-12-31"),
      ("seoul", "h100", "agreement uk-kr is not in force on 2024-12-31")]),
    ({"theme": "climate"}, date(2028, 1, 1),
     [("berlin", "h100", "agreement uk-de is not in force on 2028-01-01"),
      ("paris", "a100", "agreement uk-fr is not in force on 2028-01-01"),
      ("seoul", "h100", "agreement uk-kr is not in force on 2028-01-01")]),
])
def test_each_refusal_abroad_says_which_agreement_and_why(changes: dict[str, object], day: date,
                                                          refused: list[tuple[str, str, str]]) -> None:
    d = place(replace(UK, **changes), WIDE, {}, at(day))  # type: ignore[arg-type]
    assert d.verdict is Verdict.PLACE
    assert d.rejected == tuple(Rejection(site, pool, reason) for site, pool, reason in refused)


def test_refusals_for_a_partner_without_quota_or_agreement() -> None:
    d = place(replace(JOB, partner="fr", theme="climate"), WIDE, {}, T0)
    assert d.verdict is Verdict.PLACE and d.chosen is not None and d.chosen.site == "paris"
    assert d.rejected == (Rejection("berlin", "h100", "no agreement between fr and de"),
                          Rejection("bristol", "h100", "agreement uk-fr grants fr no quota at uk"),
                          Rejection("seoul", "h100", "no agreement between fr and kr"))


def test_residency_of_an_agreement_admits_a_host_in_its_countries() -> None:
    # uk-de keeps work in FR or DE: a job sent to Berlin runs there under it
    d = place(replace(UK, site="berlin", theme="climate"), WIDE, {}, T0)
    assert d.verdict is Verdict.PLACE and d.chosen is not None
    assert (d.chosen.site, d.chosen.agreement) == ("berlin", "uk-de")
    d = place(replace(UK, site="seoul", theme="climate"), WIDE, {}, T0)
    assert d.verdict is Verdict.REJECT and Rejection("seoul", "h100", KEEPS) in d.rejected


@pytest.mark.parametrize(("requester", "host", "theme", "sector", "day", "ok", "reasons"), [
    ("uk", "fr", "climate", "academia", date(2026, 11, 2), ("uk-fr",), ()),
    ("uk", "fr", "health", None, date(2027, 12, 31), ("uk-fr",), ()),
    ("uk", "de", None, "industry", date(2026, 11, 2), ("uk-de",), ()),
    ("uk", "fr", None, None, date(2026, 11, 2), (), (THEMES + "(no theme given)",)),
    ("uk", "kr", "climate", None, date(2026, 11, 2), (), (KEEPS,)),
    ("fr", "uk", "climate", None, date(2026, 11, 2), (), ("agreement uk-fr grants fr no quota at uk",)),
    ("kr", "fr", "climate", None, date(2026, 11, 2), (), ("no agreement between kr and fr",)),
    (None, "fr", "climate", None, date(2026, 11, 2), (), ("no agreement between None and fr",)),
])
def test_the_agreements_that_cover_a_requester_at_a_host(
        requester: str | None, host: str, theme: str | None, sector: str | None, day: date,
        ok: tuple[str, ...], reasons: tuple[str, ...]) -> None:
    found, why = _index(WIDE).agreements(requester, host, theme, day, sector)
    assert tuple(a.id for a in found) == ok
    assert why == reasons   # no reason given when one covers the job


@pytest.mark.parametrize(("spec", "allowed"), [
    # pools: berlin, bristol, paris, seoul
    (replace(UK, theme="climate", sector="academia"), (True, True, True, False)),
    (replace(UK, theme="ai-safety", sector="academia"), (True, True, False, False)),
    (replace(UK, theme="climate", gpu_model="A100"), (False, False, True, False)),
    (replace(JOB, partner="fr", theme="climate"), (False, False, True, False)),
    (replace(JOB, partner="kr"), (False, False, False, True)),
    (JOB, (True, True, True, True)),   # no partner: every pool is home
])
def test_allowed_pools_are_home_or_covered_by_an_agreement(spec: JobSpec, allowed: tuple[bool, ...]) -> None:
    assert allowed_pools(spec, WIDE, T0) == allowed


# ─── exchange rates by day ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("model", "day", "rate"), [
    ("A100", date(2024, 1, 1), 0.6),
    ("A100", date(2025, 12, 31), 0.6),
    ("A100", date(2026, 1, 1), 0.5),     # a rate ends the day before valid_until
    ("H100", date(2024, 1, 1), 1.0),
    ("H100", date(2023, 12, 31), math.nan),
    ("B200", date(2026, 11, 2), math.nan),
])
def test_the_exchange_rate_of_a_model_on_a_day(model: str, day: date, rate: float) -> None:
    got = _index(SMALL).rate(model, day)
    assert got == rate or (math.isnan(rate) and math.isnan(got))


def test_a_home_job_runs_on_a_day_without_an_exchange_rate_at_no_cost() -> None:
    # 2023: no rate covers any model yet; at home nothing is accounted, so nothing is charged
    d = place(replace(UK, gpu_model="H100"), SMALL, {}, datetime(2023, 6, 1, 9, tzinfo=UTC),
              context=PlacementContext(SMALL.placement))
    assert d.verdict is Verdict.PLACE and d.chosen is not None
    assert (d.chosen.site, d.chosen.agreement) == ("bristol", None)
    assert d.chosen.terms == (("wait", 0.0), ("emissions", 0.0), ("reciprocity", 0.0), ("cost", 0.0),
                              ("border", 0.0))


def test_a_model_rated_zero_costs_nothing_and_does_not_count_for_reciprocity() -> None:
    free = parse_federation_text(SMALL_FEDERATION.replace("units_per_gpu_hour = 0.5",
                                                          "units_per_gpu_hour = 0.0"))
    ctx = PlacementContext(free.placement, balances={"uk-fr": {"uk": 30.0, "fr": -30.0}})
    d = place(replace(UK, gpu_model="A100", theme="climate"), free, {}, T0, context=ctx)
    assert d.verdict is Verdict.PLACE and d.chosen is not None
    assert (d.chosen.site, d.chosen.agreement) == ("paris", "uk-fr")
    assert d.chosen.terms == (("wait", 0.0), ("emissions", 0.0), ("reciprocity", 0.0), ("cost", 0.0),
                              ("border", 0.5))


# ─── facility power per GPU: the emissions estimate ───────────────────────────────────────


@pytest.mark.parametrize(("site", "gpus", "intensity", "grams"), [
    # 700 W × 10.2/5.6 (the DGX H100 host share) = 1275 W per GPU; × PUE 1.1 = 1402.5 W
    ("bristol", 1, 300.0, 420.75),
    # 1275 W × PUE 1.3 = 1657.5 W; × 2 GPUs × 100 g/kWh × 1 h
    ("berlin", 2, 100.0, 331.5),
    # 400 W × 10.2/5.6 × PUE 1.2 = 874.2857 W; × 7 GPUs × 56 g/kWh × 1 h
    ("paris", 7, 56.0, 342.72),
])
def test_the_emissions_of_a_run_come_from_the_pools_facility_power(
        site: str, gpus: int, intensity: float, grams: float) -> None:
    zone = {"bristol": "GB", "berlin": "DE", "paris": "FR"}[site]
    forecast = ZoneForecast.of(series(zone, T0 - HOUR, 1800, [intensity] * 10), 1800)
    fed = replace(WIDE)   # a federation of its own: its pools' power is indexed in this test
    d = place(replace(JOB, site=site, gpus=gpus), fed, {}, T0,
              context=PlacementContext(fed.placement, {zone: forecast}))
    assert d.chosen is not None and d.chosen.site == site and d.chosen.start == T0
    assert d.chosen.emissions_g == pytest.approx(grams, rel=1e-12)


# ─── the caches ───────────────────────────────────────────────────────────────────────────


def test_remember_makes_a_value_once_per_key() -> None:
    memo: dict[object, object] = {}
    made: list[str] = []

    def make(value: str) -> str:
        made.append(value)
        return value

    assert _remember(memo, ("k", 1), lambda: make("one")) == "one"
    assert _remember(memo, ("k", 1), lambda: make("again")) == "one"
    assert _remember(memo, ("k", 2), lambda: make("two")) == "two"
    assert made == ["one", "two"]


def test_remember_holds_at_most_4096_entries() -> None:
    memo: dict[object, object] = {i: i for i in range(4095)}
    assert _remember(memo, "a", lambda: "A") == "A"
    assert len(memo) == 4096 and memo[0] == 0          # full now, nothing dropped yet
    assert _remember(memo, "b", lambda: "B") == "B"
    assert memo == {"b": "B"}                          # emptied before the 4097th


def test_a_federation_is_indexed_once() -> None:
    fed = parse_federation_text(SMALL_FEDERATION)
    _INDEXES.clear()   # the cache holds 8: federations other tests indexed would push these out
    ix = _index(fed)
    assert ix.fed is fed and _index(fed) is ix
    other = parse_federation_text(SMALL_FEDERATION)   # equal, but another federation
    assert _index(other) is not ix and _index(other).fed is other
    assert _index(fed) is ix


def test_the_index_cache_holds_at_most_eight_federations() -> None:
    index._INDEXES.clear()
    feds: list[Federation] = [replace(SMALL, name=f"f{i}") for i in range(9)]
    first = [_index(f) for f in feds[:8]]
    assert len(index._INDEXES) == 8
    assert all(_index(f) is ix for f, ix in zip(feds, first, strict=False))   # all eight kept
    ninth = _index(feds[8])
    assert len(index._INDEXES) == 1 and index._INDEXES[id(feds[8])] is ninth   # emptied before the ninth
    assert _index(feds[0]) is not first[0] and _index(feds[0]).fed is feds[0]


def test_the_shape_check_is_made_once_per_shape() -> None:
    ix = _index(parse_federation_text(SMALL_FEDERATION))
    spec = replace(JOB, gpu_model="A100")
    elig = ix.eligible(spec)
    assert ix.eligible(replace(spec, name="another job")) is elig
    assert elig[0].tolist() == [False, True]
    assert elig[1] == (Rejection("bristol", "h100", "GPU model H100, the job asks for A100"),)


def test_loads_are_turned_into_arrays_only_when_they_change() -> None:
    ix = _index(parse_federation_text(SMALL_FEDERATION))
    loads = {("paris", "a100"): PoolLoad(free_gpus=3, queued_gpus=5, available=False)}
    arrays = ix.loads(loads)
    free, queued, available = arrays
    # bristol is missing: idle (all 4 GPUs free, nothing queued) and available
    assert (free.tolist(), queued.tolist(), available.tolist()) == ([4.0, 3.0], [0.0, 5.0], [True, False])
    assert ix.loads(dict(loads)) is arrays
    changed = ix.loads({("paris", "a100"): PoolLoad(free_gpus=2)})
    assert changed is not arrays
    assert (changed[0].tolist(), changed[1].tolist(), changed[2].tolist()) == ([4.0, 2.0], [0.0, 0.0],
                                                                               [True, True])
    assert ix.loads({("paris", "a100"): PoolLoad(free_gpus=2)}) is changed


def test_a_reciprocity_term_that_is_off_reads_zero_not_minus_zero() -> None:
    """With the reciprocity weight at 0, a move that repays what the host owes weighed
    -0.0, and the explanation said "reciprocity -0.00"."""
    ctx = PlacementContext(PlacementWeights(reciprocity=0.0), balances={"uk-fr": {"uk": 30.0, "fr": -30.0}})
    d = place(JobSpec("t", 1, 3600, ("true",), partner="uk", gpu_model="A100", theme="climate"),
              parse_federation_text(SMALL_FEDERATION, "small.toml"), {}, T0, context=ctx)
    assert "reciprocity 0.00" in d.explain() and "-0.00" not in d.explain()
