"""place() against a brute-force reference: every (site, pool, start) candidate scored from
scratch, its emissions from ``carbon.integrate``; on random federations, loads, quotas,
balances and forecasts both must choose the same candidate. The reference is also the
baseline of ``benchmarks/placement.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.energy import DEFAULT_HOST_SHARE
from accord.domain.carbon.series import HOUR_S, IntensitySeries, integrate, series
from accord.domain.federation.model import Agreement, Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.place import place
from accord.domain.placement.records import MAX_START_SLOTS, TIE, PoolLoad

Choice = tuple[str, str, datetime]
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def naive_choice(spec: JobSpec, fed: Federation, load: Mapping[tuple[str, str], PoolLoad], at: datetime,
                 ctx: PlacementContext, by_zone: Mapping[str, IntensitySeries]) -> Choice | None:
    """The (site, pool, start) of lowest score, each candidate's emissions from
    ``carbon.integrate``; equal scores (within TIE) go to the earliest start, then by ids."""
    w, d = ctx.weights, spec.time_limit_s
    run = timedelta(seconds=d)
    options = []
    for site in fed.sites:
        for pool in site.pools:
            agreement = _eligible(spec, fed, site.id, pool.id, load, at, ctx)
            if agreement is False:
                continue
            lo = load.get((site.id, pool.id), PoolLoad(pool.gpus))
            rate = fed.rate(pool.gpu_model, at).units_per_gpu_hour
            units = spec.gpus * d / HOUR_S * rate
            recip = 0.0
            if isinstance(agreement, Agreement):
                bal = ctx.balances.get(agreement.id, {})
                gap = bal.get(site.partner, 0.0) - bal.get(spec.partner or "", 0.0)
                recip = (abs(gap + 2 * units) - abs(gap)) / (2 * units)
            wait = (max(0, spec.gpus - lo.free_gpus) + lo.queued_gpus) / pool.gpus
            cross = isinstance(agreement, Agreement)
            base = w.wait * wait + w.reciprocity * recip + w.cost * rate + (w.border if cross else 0.0)
            kw = spec.gpus * pool.power_w * (1 + DEFAULT_HOST_SHARE) * site.pue / 1000
            starts = _starts(spec, at, ctx.slot_s, agreement if cross else None)  # type: ignore[arg-type]
            s = by_zone.get(site.grid_zone)
            grams = [kw * integrate(s, t, t + run) for t in starts] if s else None
            options.append((site, pool, base, starts, grams))
    if not options:
        return None
    known = [o for o in options if o[4] is not None]
    home = [o for o in known if o[0].partner == spec.partner] or known
    ref = min(home, key=lambda o: (o[2], o[0].id, o[1].id)) if home else None
    ref_g = ref[4][0] if ref is not None and ref[4] else None
    scored = []
    for site, pool, base, starts, grams in options:
        for k, t in enumerate(starts):
            e = 0.0 if grams is None or not ref_g else w.emissions * (grams[k] / ref_g - 1)
            scored.append((base + e, t, site.id, pool.id))
    low = min(sc for sc, _, _, _ in scored)
    _, t, site_id, pool_id = min((x for x in scored if x[0] <= low + TIE), key=lambda x: x[1:])
    return site_id, pool_id, t


def _eligible(spec: JobSpec, fed: Federation, site_id: str, pool_id: str,
              load: Mapping[tuple[str, str], PoolLoad], at: datetime,
              ctx: PlacementContext) -> Agreement | bool | None:
    """False when a hard constraint rules the pool out; else its agreement (None at home)."""
    site = fed.site(site_id)
    pool = site.pool(pool_id)
    if (spec.site not in (None, site.id) or spec.gpu_model not in (None, pool.gpu_model)
            or spec.gpus > pool.gpus):
        return False
    if spec.data_residency and fed.partner(site.partner).country not in spec.data_residency:
        return False
    if not load.get((site.id, pool.id), PoolLoad(pool.gpus)).available:
        return False
    if spec.partner is None or spec.partner == site.partner:
        return None
    units = spec.gpus * spec.time_limit_s / HOUR_S * fed.rate(pool.gpu_model, at).units_per_gpu_hour
    for a in fed.agreements:
        if (spec.partner in a.parties and site.partner in a.parties and a.in_force(at.date())
                and a.quota(spec.partner, site.partner) is not None
                and (not a.themes or spec.theme in a.themes)
                and (not a.residency_countries
                     or fed.partner(site.partner).country in a.residency_countries)
                and units <= ctx.quota_left.get((a.id, spec.partner, site.partner), math.inf) + 1e-9):
            return a
    return False


def _starts(spec: JobSpec, at: datetime, step: int, agreement: Agreement | None) -> list[datetime]:
    s0 = max(at, spec.earliest_start or at)
    if spec.deadline is not None:
        latest = spec.deadline - timedelta(seconds=spec.time_limit_s)
    elif agreement is not None:
        latest = s0 + timedelta(hours=agreement.default_flexibility_hours)
    else:
        latest = s0
    out = [s0]
    t = datetime.fromtimestamp((math.floor(s0.timestamp() / step) + 1) * step, UTC)
    while t <= latest and len(out) < MAX_START_SLOTS:
        out.append(t)
        t += timedelta(seconds=step)
    return out


# ─── the property ────────────────────────────────────────────────────────────────────────

PARTNERS = (("uk", "GB"), ("fr", "FR"), ("de", "DE"))


def federation(sites: list[tuple[int, int, int, float]], flexibility: float) -> Federation:
    """Sites as (partner index, model index, pool GPUs, PUE); one agreement among all."""
    text = ['[federation]\nname = "f"\nreference_unit = "H100-hour"\nthemes = ["climate", "other"]\n'
            '[[gpu_models]]\nname = "H100"\n[[gpu_models]]\nname = "A100"\n'
            '[[exchange_rates]]\ngpu_model = "H100"\nunits_per_gpu_hour = 1.0\nvalid_from = 2024-01-01\n'
            '[[exchange_rates]]\ngpu_model = "A100"\nunits_per_gpu_hour = 0.5\nvalid_from = 2024-01-01\n']
    text += [f'[[partners]]\nid = "{p}"\nname = "{p}"\ncountry = "{c}"\n' for p, c in PARTNERS]
    for i, (partner, model, gpus, pue) in enumerate(sites):
        p, zone = PARTNERS[partner]
        text.append(f'[[sites]]\nid = "s{i}"\nname = "s{i}"\npartner = "{p}"\ngrid_zone = "{zone}"\n'
                    f'pue = {pue}\nbackend = "local"\n[[sites.pools]]\nid = "p"\n'
                    f'gpu_model = "{("H100", "A100")[model]}"\ngpus = {gpus}\npower_w = 500\n')
    text.append('[[agreements]]\nid = "all"\nname = "all"\nparties = ["uk", "fr", "de"]\n'
                'start = 2025-01-01\nend = 2027-12-31\nthemes = ["climate"]\nsectors = ["academia"]\n'
                f"default_flexibility_hours = {flexibility}\n")
    text += [f'[[agreements.quotas]]\nrequester = "{r}"\nhost = "{h}"\nunits = 100\nper = "month"\n'
             for r, _ in PARTNERS for h, _ in PARTNERS if r != h]
    return parse_federation_text("".join(text))


values = st.lists(st.sampled_from([50.0, 100.0, 180.0, 300.0, 420.0]), min_size=4, max_size=4)


@st.composite
def cases(draw: st.DrawFn) -> tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime,
                                    PlacementContext]:
    sites = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(1, 8),
                                    st.sampled_from([1.1, 1.3])), min_size=1, max_size=6))
    fed = federation(sites, draw(st.sampled_from([0.0, 6.0, 30.0])))
    at = T0 + timedelta(minutes=draw(st.sampled_from([0, 10, 30, 47])))
    hours = draw(st.sampled_from([1, 2, 3]))
    deadline = draw(st.sampled_from([None, 0.5, 2, 8, 30]))
    spec = JobSpec("j", draw(st.integers(1, 8)), hours * HOUR_S, ("true",),
                   partner=draw(st.sampled_from([None, "uk", "fr", "de"])),
                   theme=draw(st.sampled_from(["climate", "other"])),
                   deadline=None if deadline is None else at + timedelta(hours=hours + deadline))
    loads = {(f"s{i}", "p"): PoolLoad(draw(st.integers(0, 8)), draw(st.integers(0, 8)),
                                      draw(st.booleans()) or draw(st.booleans()))
             for i in range(len(sites)) if draw(st.booleans())}
    # an hourly pattern repeated, so ties between starts and between sites happen
    forecasts = {}
    for _, zone in PARTNERS:
        if draw(st.integers(0, 5)):   # now and then a zone has no forecast
            pattern = draw(values)
            s = series(zone, T0 - timedelta(hours=1), 3600, (pattern * 30)[:100])
            forecasts[zone] = ZoneForecast.of(s, 1800)
    quota = {("all", r, h): float(draw(st.sampled_from([0, 3, 20, 1000])))
             for r, _ in PARTNERS for h, _ in PARTNERS if r != h}
    balances = {"all": {p: float(draw(st.integers(-40, 40))) for p, _ in PARTNERS}}
    return spec, fed, loads, at, PlacementContext(fed.placement, forecasts, quota, balances)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_place_chooses_what_scoring_every_candidate_chooses(
        case: tuple[JobSpec, Federation, dict[tuple[str, str], PoolLoad], datetime, PlacementContext],
) -> None:
    spec, fed, loads, at, ctx = case
    by_zone = {z: series(z, f.start, f.step_s, f.values) for z, f in ctx.forecasts.items()}
    d = place(spec, fed, loads, at, context=ctx)
    expected = naive_choice(spec, fed, loads, at, ctx, by_zone)
    got = None if d.chosen is None else (d.chosen.site, d.chosen.pool, d.chosen.start)
    assert got == expected, d.explain()
