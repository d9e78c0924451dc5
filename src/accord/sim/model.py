"""The simulator's records: policies, settings, the workload and the per-job outcome."""

from __future__ import annotations

import enum
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.shifting import Forecast
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import PlacementWeights
from accord.ports import CarbonSource

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


# The simulation kernel's event kinds (its Python and compiled loops), in the order they are
# handled at equal times: capacity is freed first, then sites come back or go down, the pass
# that places comes last (after the arrivals, releases and reconsiderations it serves).
FINISH, UP, DOWN, RELEASE, REPLAN, PASS = 0, 1, 2, 3, 4, 5
GIVE_UP_S = 366 * 86_400   # jobs still waiting this long after the last submission are rejected


class Policy(enum.Enum):
    """How the simulated broker places jobs (``docs/design/simulator.md``)."""

    HOME = "home"                                 # home-site FIFO: the job's own partner's sites, now
    EARLIEST = "earliest"                         # the least queue anywhere the agreements allow
    CARBON = "carbon"                             # + emissions in space and time (no reciprocity term)
    CARBON_RECIPROCITY = "carbon-reciprocity"     # + the reciprocity balance term


class Engine(enum.Enum):
    """What runs the broker in a simulation (``docs/design/simulator.md``)."""

    FAST = "fast"        # the event-driven kernel: placement's functions called directly
    BROKER = "broker"    # the live Broker and LedgerService through fake ports: slow, for checking


POLICY_HELP = {
    Policy.HOME: "home-site FIFO (baseline): the job's partner's sites, wait term only",
    Policy.EARLIEST: "earliest start across the federation: wait term only, no border cost",
    Policy.CARBON: "carbon-aware in space and time: the federation's weights, reciprocity off",
    Policy.CARBON_RECIPROCITY: "carbon-aware with reciprocity balance: the federation's weights",
}


def policy_weights(policy: Policy, federation: PlacementWeights) -> PlacementWeights:
    """The placement weights a policy uses, from the federation's own.

    >>> policy_weights(Policy.EARLIEST, PlacementWeights()).wait
    1.0
    >>> policy_weights(Policy.CARBON, PlacementWeights()).reciprocity
    0.0
    """
    if policy in (Policy.HOME, Policy.EARLIEST):
        return replace(federation, wait=1.0, emissions=0.0, reciprocity=0.0, cost=0.0, border=0.0)
    if policy is Policy.CARBON:
        return replace(federation, reciprocity=0.0)
    return federation


@dataclass(frozen=True, slots=True)
class Outage:
    """Site ``site`` does not answer the broker over [start_s, end_s) (epoch seconds), as when
    its controller is down: the broker can neither see its loads, nor dispatch to it, nor
    poll it; the site starts nothing, while the jobs already running there run to their end
    (their usage is read once it answers again)."""

    site: str
    start_s: float
    end_s: float


def merged(outages: Iterable[Outage]) -> tuple[Outage, ...]:
    """The outages per site, overlapping or touching ones joined, sorted by site and start.

    >>> merged([Outage("a", 5, 9), Outage("a", 0, 5), Outage("b", 1, 2)])
    (Outage(site='a', start_s=0, end_s=9), Outage(site='b', start_s=1, end_s=2))
    """
    out: list[Outage] = []
    for o in sorted(outages, key=lambda o: (o.site, o.start_s, o.end_s)):
        if out and out[-1].site == o.site and o.start_s <= out[-1].end_s:
            out[-1] = replace(out[-1], end_s=max(out[-1].end_s, o.end_s))
        else:
            out.append(o)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Failures:
    """Outages drawn at random for every site: the times between them and their lengths are
    exponential with means ``mtbf_s`` and ``mttr_s`` (whole seconds, at least one), from
    ``seed`` and the site's id (so a site has the same outages in every variant that has it).
    ``pinned``: the seed was given for the failures themselves (``[failures] seed``), so every
    replication of a sweep draws the same outages; otherwise each draws them from its seed."""

    mtbf_s: float
    mttr_s: float
    seed: int = 1
    pinned: bool = False


def draw_outages(failures: Failures, sites: Iterable[str], start_s: float,
                 end_s: float) -> tuple[Outage, ...]:
    """Each site's outages that start in [start_s, end_s), drawn as :class:`Failures` says.

    >>> out = draw_outages(Failures(86_400.0, 3_600.0, seed=7), ["a"], 0.0, 30 * 86_400.0)
    >>> out == draw_outages(Failures(86_400.0, 3_600.0, seed=7), ["a"], 0.0, 30 * 86_400.0)
    True
    >>> all(o.site == "a" and 0 <= o.start_s < o.end_s for o in out) and len(out) > 5
    True
    """
    out: list[Outage] = []
    for site in sorted(set(sites)):
        rng = np.random.default_rng([failures.seed, zlib.crc32(site.encode())])
        t = start_s
        while True:
            t += float(rng.exponential(failures.mtbf_s))
            if t >= end_s:
                break
            length = max(1.0, float(round(rng.exponential(failures.mttr_s))))
            out.append(Outage(site, float(round(t)), float(round(t)) + length))
            t = round(t) + length
    return tuple(out)


def checked_outages(outages: Iterable[Outage], sites: Iterable[str]) -> tuple[Outage, ...]:
    """``outages`` :func:`merged`, after checking them against the federation's ``sites``.

    Raises:
        InvalidInput: an outage names no site of the federation, or does not end after it starts.
    """
    ids, given = sorted(sites), tuple(outages)
    problems = [Problem("outages", "names no site of the federation", o.site, ", ".join(ids))
                for o in given if o.site not in ids]
    problems += [Problem("outages", "must end after it starts",
                         f"{o.site}: {utc_text(o.start_s)} to {utc_text(o.end_s)}",
                         "an end later than the start")
                 for o in given if not o.end_s > o.start_s]
    if problems:
        raise InvalidInput(problems)
    return merged(given)


def utc_text(epoch_s: float) -> str:
    """``epoch_s`` as ISO 8601 UTC text ending in Z (how outages are written out)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Settings:
    """How one run is simulated.

    ``pass_s``: the broker's dispatcher pass interval (0: each job is placed as it
    arrives); ``refresh_s``: how often the placement context (quota left, balances,
    forecasts) is rebuilt, and jobs that had to wait are tried again; ``replan_s``: how
    often a deferred job is reconsidered (0: never; the live broker's passes do it every
    600 s, ``accord.domain.jobs.stimuli.REPLAN_S``, which multiplies the decisions by the
    checks per deferral);
    ``backfill``: EASY backfilling at every pool, looking at most ``backfill_depth`` jobs
    down the queue; ``forecast``: what placement's forecasts are made from (the actual
    intensity, the 7-day same-time-of-day history, or the built-in ``profiles``);
    ``outages``: when sites do not answer (see :class:`Outage`).
    """

    policy: Policy = Policy.HOME
    pass_s: float = 60.0
    refresh_s: float = 1800.0
    backfill: bool = False
    backfill_depth: int = 100
    replan_s: float = 0.0
    forecast: Forecast = Forecast.PERFECT
    outages: tuple[Outage, ...] = ()
    profiles: CarbonSource | None = None   # the built-in profiles (``forecast`` profile needs them)


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """The jobs to simulate, in submit order: epoch seconds, GPUs, actual and requested run
    times (s), home partner (index into ``partners``), and what every job's spec carries:
    theme, sector and a window (deadline = submit + requested + window; None: no deadline,
    the agreements' default flexibility applies abroad)."""

    submit_s: Floats
    gpus: Ints
    runtime_s: Floats
    requested_s: Floats
    home: Ints
    partners: tuple[str, ...]
    theme: str | None = None
    sector: str | None = None
    window_s: float | None = None

    def __len__(self) -> int:
        return len(self.submit_s)


@dataclass(slots=True)
class Outcome:
    """Per job (lists indexed by job): when it was placed, started and ended (epoch s, NaN
    if never), its pool (index into ``pool_keys``; -1 if never placed), the agreement it
    ran under ("" at home), placement's emissions estimate, the accounted energy (kWh) and
    emissions (g; NaN when the zone has no intensity data), whether it was deferred or
    rejected, and how many placement decisions it took."""

    placed_at: list[float]
    start: list[float]
    end: list[float]
    pool: list[int]
    agreement: list[str]
    estimate_g: list[float]
    energy_kwh: list[float]
    emissions_g: list[float]
    deferred: list[bool]
    rejected: list[bool]
    decisions: list[int]

    @staticmethod
    def empty(n: int) -> Outcome:
        nan = float("nan")
        return Outcome([nan] * n, [nan] * n, [nan] * n, [-1] * n, [""] * n, [nan] * n, [nan] * n,
                       [nan] * n, [False] * n, [False] * n, [0] * n)

    def rejected_waiting(self, jobs: Iterable[int]) -> None:
        """Jobs still waiting at the end (nothing could ever take them) count as rejected."""
        for j in jobs:
            self.rejected[j] = True
