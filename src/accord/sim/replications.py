"""Replications: the same runs with several seeds, each figure's mean and 95 % interval.

Each seed draws the home partners (and, unless ``[failures] seed`` pins them, the random
outages) afresh, so the runs of one (variant, policy) over the seeds are independent
replications. A figure's interval is Student's t: mean ± t(0.975, n − 1) · s / √n, with ``s``
the sample standard deviation over the seeds whose figure is a finite number. With one seed
(or one finite value) there is no interval: ``low`` and ``high`` are None, and the report
says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

LEVEL = 0.95
# t(0.975, df) for df = 1..30 (the usual table); beyond, the Cornish–Fisher expansion below
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
         2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
         2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
         2.048407, 2.045230, 2.042272)

# the figures given a mean and an interval: (key in a run's flat figures, label)
FIGURES: tuple[tuple[str, str], ...] = (
    ("completed", "jobs done"), ("rejected", "rejected"), ("energy_mwh", "MWh"),
    ("emissions_t", "t CO2e"), ("compared_t", "compared t CO2e"), ("saving", "saving"),
    ("share_of_achievable", "share of achievable"), ("wait_mean_h", "wait mean h"),
    ("wait_p95_h", "wait p95 h"), ("bsld_mean", "bounded slowdown"), ("jain_slowdown", "Jain"))
ONE_SEED = "one seed: no interval (give several seeds, seeds = [...] or --seeds, for one)"


@dataclass(frozen=True, slots=True)
class Interval:
    """A figure over the replications: ``n`` finite values, their mean, and the 95 % interval
    (None when ``n`` < 2)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"n": self.n, "mean": self.mean, "low": self.low, "high": self.high}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom.

    >>> round(t975(1), 3), round(t975(4), 3), round(t975(60), 3), round(t975(10_000), 3)
    (12.706, 2.776, 2.0, 1.96)

    Raises:
        ValueError: ``df`` < 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = NormalDist().inv_cdf(0.975)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def interval(values: Sequence[float | None]) -> Interval:
    """The mean and 95 % Student-t interval of the finite ``values``.

    >>> interval([1.0, 2.0, 3.0])  # doctest: +ELLIPSIS
    Interval(n=3, mean=2.0, low=-0.48..., high=4.48...)
    >>> interval([5.0, None, float("nan")])
    Interval(n=1, mean=5.0, low=None, high=None)
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return Interval(0, None, None, None)
    mean = math.fsum(xs) / len(xs)
    if len(xs) < 2:
        return Interval(len(xs), mean, None, None)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = t975(len(xs) - 1) * sd / math.sqrt(len(xs))
    return Interval(len(xs), mean, mean - half, mean + half)


def flat(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's figures (as :func:`accord.sim.metrics.summary` gives them) as one flat row."""
    c = run["comparison"]
    return {
        "jobs": run["jobs"], "completed": run["completed"], "rejected": run["rejected"],
        "deferred": run["deferred"], "abroad": run["abroad"], "energy_mwh": run["energy_mwh"],
        "emissions_t": run["emissions_t"], "emissions_kg_per_job": run["emissions_kg_per_job"],
        **{f"wait_{k}_h": run["wait_h"][k] for k in ("mean", "p50", "p95", "p99")},
        "bsld_mean": run["bounded_slowdown"]["mean"], "bsld_p95": run["bounded_slowdown"]["p95"],
        "jain_slowdown": run["jain_slowdown"], "saving": c.get("saving"),
        "oracle_saving": c.get("oracle_saving"), "share_of_achievable": c.get("share_of_achievable"),
        "seconds": run["seconds"], "emissions_unknown": run["emissions_unknown"], "compared": c["jobs"],
        "compared_t": c["emissions_t"], "rejected_too_large": run["unplaced"]["too_large"],
        "rejected_no_pool": run["unplaced"]["no_pool"], "rejected_other": run["unplaced"]["other"]}


def intervals(seeds: Sequence[int], runs: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per policy, each figure of :data:`FIGURES` over the seeds: ``runs[i]`` are seed
    ``seeds[i]``'s runs of one variant, in the same policy order for every seed."""
    out = []
    for j, first in enumerate(runs[0] if runs else ()):
        rows = [flat(per_seed[j]) for per_seed in runs]
        entry: dict[str, Any] = {
            "policy": first["policy"], "seeds": list(seeds), "level": LEVEL,
            "figures": {key: interval([row[key] for row in rows]).as_dict() for key, _ in FIGURES}}
        if len(seeds) < 2:
            entry["note"] = ONE_SEED
        out.append(entry)
    return out
