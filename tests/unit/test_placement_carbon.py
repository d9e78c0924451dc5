"""Temporal shifting by place() itself on the real 2020 series (GB, FR, DE).

A one-site federation; 1-hour jobs submitted at every 30-minute slot of 2020 may finish up
to 25 hours later (a 24-hour window). Each job runs where and when ``place()`` decides (PLACE
now, or DEFER to its start) and pays the **actual** intensity of the run it chose. Compared
with the oracle (the best start in the window with perfect knowledge, as in
``docs/design/carbon.md``):

* with a perfect forecast (the actual series) place() must reach >= 95 % of the oracle;
* with the 7-day history forecast (``forecast_from_history``, made only from data that had
  ended at the decision) the figure is reported and a sane floor asserted. The history
  forecast is rebuilt for every decision (0.75 ms each), so the test takes every 5th submit
  slot (coprime with 48: every time of day is sampled); the full year is printed by

    uv run python -m tests.unit.test_placement_carbon
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from accord.adapters.carbon.evaluation import JOB_S, WINDOW_S, YEAR_END, YEAR_START, year_series
from accord.adapters.carbon.files import shared_data_dir
from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import IntensitySeries
from accord.domain.carbon.shifting import forecast_from_history, oracle_shifting
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.place import place
from accord.domain.placement.records import MAX_START_SLOTS, Verdict

pytestmark = pytest.mark.slow
SLOT_S = 1800
ZONES = ("GB", "FR", "DE")
HISTORY_STRIDE = 5
WINDOW, RUN = timedelta(seconds=WINDOW_S), timedelta(seconds=JOB_S)


def one_site(zone: str) -> Federation:
    """A federation of one partner with one site in ``zone``."""
    return parse_federation_text(f"""
[federation]
name = "one site"
reference_unit = "H100-hour"
[[gpu_models]]
name = "H100"
[[exchange_rates]]
gpu_model = "H100"
units_per_gpu_hour = 1.0
valid_from = 2019-01-01
[[partners]]
id = "home"
name = "Home"
country = "GB"
[[sites]]
id = "site"
name = "Site"
partner = "home"
grid_zone = "{zone}"
pue = 1.1
backend = "local"
[[sites.pools]]
id = "gpu"
gpu_model = "H100"
gpus = 8
power_w = 700
""", f"{zone}.toml")


@dataclass(frozen=True, slots=True)
class Savings:
    """What the jobs paid against running at once, and against the oracle, on the same
    submit times."""

    decisions: int
    deferred: int
    mean: float        # mean over jobs of (cost now - cost paid) / cost now
    aggregate: float   # 1 - total paid / total if run at once
    oracle_mean: float
    oracle_aggregate: float

    @property
    def share(self) -> float:
        """The aggregate saving as a share of the oracle's."""
        return self.aggregate / self.oracle_aggregate

    def line(self, zone: str, label: str) -> str:
        deferred = self.deferred / self.decisions
        return (f"{zone} {label:>8}: {self.decisions:>6} jobs, deferred {deferred:4.0%}; "
                f"saving {self.mean:5.1%} mean / {self.aggregate:5.1%} aggregate; oracle "
                f"{self.oracle_mean:5.1%} / {self.oracle_aggregate:5.1%}; {self.share:6.1%} of the oracle")


def shifting(s: IntensitySeries, history: bool, stride: int = 1) -> Savings:
    """place() for a 1-hour, 24-hour-window job at every ``stride``-th slot of 2020."""
    fed = one_site(s.zone)
    actual = ZoneForecast.of(s, SLOT_S)
    cost = actual.run_costs(JOB_S)   # the actual ∫ of a run from each slot
    perfect = PlacementContext(fed.placement, {s.zone: actual})
    first = s.starts.index(YEAR_START)
    slots = range(first, s.starts.index(YEAR_END), stride)
    paid = now = oracle = rel = oracle_rel = 0.0
    deferred = 0
    for i in slots:
        t = s.starts[i]
        ctx = context_from_history(fed, s, t) if history else perfect
        spec = JobSpec("j", 1, JOB_S, ("true",), partner="home", deadline=t + WINDOW + RUN)
        d = place(spec, fed, {}, t, context=ctx)
        assert d.verdict in (Verdict.PLACE, Verdict.DEFER) and d.start is not None
        j = round((d.start.timestamp() - actual.origin_s) / SLOT_S)
        best = min(cost[i:i + WINDOW_S // SLOT_S + 1])
        paid, now, oracle = paid + cost[j], now + cost[i], oracle + best
        rel, oracle_rel = rel + 1 - cost[j] / cost[i], oracle_rel + 1 - best / cost[i]
        deferred += d.verdict is Verdict.DEFER
    n = len(slots)
    return Savings(n, deferred, rel / n, 1 - paid / now, oracle_rel / n, 1 - oracle / now)


def context_from_history(fed: Federation, s: IntensitySeries, t: datetime) -> PlacementContext:
    """The context a broker would have at ``t``: the 7-day history forecast, nothing later."""
    f = forecast_from_history(s, t, (MAX_START_SLOTS + 2) * SLOT_S)
    return PlacementContext(fed.placement, {s.zone: ZoneForecast(s.zone, t.timestamp(), SLOT_S,
                                                                 f.values, f.source)})


@pytest.fixture(scope="module")
def series() -> dict[str, IntensitySeries]:
    data = shared_data_dir()   # raises InvalidInput naming ACCORD_SHARED_DATA when missing
    return {z: year_series(z, data, SLOT_S) for z in ZONES}


@pytest.mark.parametrize("zone", ZONES)
def test_perfect_forecast_reaches_the_oracle(series: dict[str, IntensitySeries], zone: str) -> None:
    """Measured (aggregate, share of the oracle): GB 26.1 % (99.2 %), FR 16.2 % (99.1 %),
    DE 22.1 % (99.1 %). Not 100 %: place() looks at 48 starts (now + 47 slots, up to 23.5 h
    later), the oracle at 49 (up to 24 h)."""
    s = series[zone]
    r = shifting(s, history=False)
    print(r.line(zone, "perfect"))
    assert r.decisions == 366 * 48
    assert r.share >= 0.95 and r.mean >= 0.95 * r.oracle_mean
    assert r.aggregate <= r.oracle_aggregate + 1e-12
    # the per-decision oracle here is the one of docs/design/carbon.md
    o = oracle_shifting(s, JOB_S, WINDOW_S, YEAR_START, YEAR_END)
    assert (r.oracle_mean, r.oracle_aggregate) == pytest.approx(
        (o.mean_relative_saving, o.aggregate_saving), abs=1e-9)


@pytest.mark.parametrize("zone", ZONES)
def test_history_forecast_saves_a_good_part(series: dict[str, IntensitySeries], zone: str) -> None:
    """Measured on every 5th slot (aggregate, share of the oracle): GB 14.9 % (57 %), FR 8.1 %
    (49 %), DE 14.4 % (65 %); over every slot GB 15.0 % (57 %), FR 8.1 % (50 %), DE 14.4 %
    (65 %). Only a floor is asserted."""
    r = shifting(series[zone], history=True, stride=HISTORY_STRIDE)
    print(r.line(zone, "history"))
    assert 0.03 < r.aggregate < r.oracle_aggregate
    assert r.share > 0.3


def main(data: Path | None = None) -> None:
    """Print the full-year figures (history forecast at every slot: about a minute)."""
    for zone in ZONES:
        s = year_series(zone, data, SLOT_S)
        print(shifting(s, history=False).line(zone, "perfect"))
        print(shifting(s, history=True).line(zone, "history"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
