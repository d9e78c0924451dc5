"""Small federations, workloads and intensity series for the simulator's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from accord.adapters.federation_file import parse_federation_text
from accord.domain.carbon.series import IntensitySeries, series
from accord.domain.federation.model import Federation
from accord.sim.model import Workload

T0 = datetime(2020, 3, 2, tzinfo=UTC)   # a Monday at midnight, on every slot grid
T0_S = T0.timestamp()
KW = 1.0 * (1 + 23 / 28)                # facility kW of one 1,000 W GPU at PUE 1.0 (with the host share)

Site = tuple[str, str, str, int]        # (id, partner, zone, GPUs); one pool "p", 1,000 W, PUE 1.0


def federation(sites: Sequence[Site], flexibility_h: float = 0.0, quota: float = 1e9) -> Federation:
    """Partners uk (GB), fr (FR), de (DE); the given sites; one agreement between all three."""
    out = ['[federation]\nname = "t"\nreference_unit = "H100-hour"\nthemes = ["ai"]\n',
           '[[gpu_models]]\nname = "H100"\n[[exchange_rates]]\ngpu_model = "H100"\n'
           "units_per_gpu_hour = 1.0\nvalid_from = 2019-01-01\n"]
    for pid, country in (("uk", "GB"), ("fr", "FR"), ("de", "DE")):
        out.append(f'[[partners]]\nid = "{pid}"\nname = "{pid}"\ncountry = "{country}"\n')
    for sid, partner, zone, gpus in sites:
        out.append(f'[[sites]]\nid = "{sid}"\nname = "{sid}"\npartner = "{partner}"\ngrid_zone = "{zone}"\n'
                   f'pue = 1.0\nbackend = "local"\n[[sites.pools]]\nid = "p"\ngpu_model = "H100"\n'
                   f"gpus = {gpus}\npower_w = 1000\n")
    out.append('[[agreements]]\nid = "all"\nname = "all"\nparties = ["uk", "fr", "de"]\nstart = 2019-01-01\n'
               f'end = 2021-12-31\nthemes = ["ai"]\nsectors = ["academia"]\n'
               f"default_flexibility_hours = {flexibility_h}\n")
    for r in ("uk", "fr", "de"):
        for h in ("uk", "fr", "de"):
            if r != h:
                out.append(f'[[agreements.quotas]]\nrequester = "{r}"\nhost = "{h}"\nunits = {quota}\n'
                           'per = "month"\n')
    return parse_federation_text("\n".join(out), "test.toml")


def workload(jobs: Sequence[tuple[float, int, float]], home: str = "uk", window_h: float | None = None,
             requested: Sequence[float] | None = None, homes: Sequence[str] | None = None) -> Workload:
    """Jobs (submit offset from T0 in s, GPUs, run s), requested = run unless given."""
    partners = ("de", "fr", "uk")
    who = homes or [home] * len(jobs)
    return Workload(np.array([T0_S + j[0] for j in jobs]), np.array([j[1] for j in jobs], np.int64),
                    np.array([float(j[2]) for j in jobs]),
                    np.array([float(r) for r in (requested or [j[2] for j in jobs])]),
                    np.array([partners.index(h) for h in who], np.int64), partners, "ai", "academia",
                    None if window_h is None else window_h * 3600)


def flat(zone: str, value: float, hours: int = 24 * 20) -> IntensitySeries:
    """A constant intensity from a day before T0."""
    return series(zone, datetime.fromtimestamp(T0_S - 86_400, UTC), 1800, [value] * (2 * hours))


def steps(zone: str, values: Sequence[float], step_s: int = 1800) -> IntensitySeries:
    """``values`` from T0 every ``step_s``, after a day at the first value."""
    before = [values[0]] * (86_400 // step_s)
    return series(zone, datetime.fromtimestamp(T0_S - 86_400, UTC), step_s, [*before, *values])
