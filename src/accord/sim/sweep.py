"""A sweep: every (variant, policy, seed) of a scenario as a self-contained unit of work, and
the deterministic merge of their outputs into the report's figures.

A :class:`Unit` is a pure function of (scenario, variant, policy, seed): :func:`run_unit` reads
the scenario's files by path (absolute, so a worker on another process or machine that sees
the same paths reads the same files), simulates, and returns the run's figures and each job's
emissions; a unit with no policy computes the variant's oracle for the seed instead. Units
are picklable and share nothing, so :mod:`accord.sim.executors` may run them in this process,
in local worker processes or on a Dask cluster; :func:`merge` puts the outputs back in the
plan's order, so the report is the same whichever ran them (bar each run's wall-clock
``seconds``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from accord.domain.errors import InvalidInput, Problem
from accord.sim.metrics import comparable_jobs, comparison, emissions, figures, with_comparison
from accord.sim.model import Floats, Policy
from accord.sim.oracle import oracle_emissions
from accord.sim.replications import intervals
from accord.sim.runner import Inputs, Progress, Results, describe, listed, prepare, run_settings, simulate
from accord.sim.scenario import MAX_RUNS, Scenario, replication_seeds


@dataclass(frozen=True, slots=True)
class Unit:
    """One piece of a sweep: the run of ``policy`` on variant number ``variant`` of
    ``scenario`` with home partners (and unpinned outages) drawn from ``seed``; with
    ``policy`` None, that variant's oracle for the seed."""

    scenario: Scenario
    variant: int
    seed: int
    policy: Policy | None

    @property
    def label(self) -> str:
        """``variant / policy / seed N`` for messages and progress."""
        what = "oracle" if self.policy is None else self.policy.value
        return f"{self.scenario.variants[self.variant].name} / {what} / seed {self.seed}"


@dataclass(frozen=True, slots=True, eq=False)
class Done:
    """What a unit gives back: a run's figures but its comparison (empty for an oracle),
    each job's emissions in grams (the run's, or the oracle's), or the problems that stopped
    it (as values: :class:`InvalidInput` does not survive pickling)."""

    figures: dict[str, Any] = field(default_factory=dict)
    grams: Floats = field(default_factory=lambda: np.zeros(0))
    problems: tuple[Problem, ...] = ()


RunUnit = Callable[[Unit, Progress | None], Done]


def plan(s: Scenario) -> list[Unit]:
    """The units of ``s``'s sweep, seed by seed, variant by variant: the oracle, then every
    policy. Paths are made absolute, so a worker elsewhere reads the same files.

    Raises:
        InvalidInput: more than :data:`~accord.sim.scenario.MAX_RUNS` runs.
    """
    seeds = replication_seeds(s)
    runs = len(s.variants) * len(s.policies) * len(seeds)
    if runs > MAX_RUNS:
        raise InvalidInput([Problem(
            "sweep", "has too many runs",
            f"{len(s.variants)} variant(s) × {len(s.policies)} policies × {len(seeds)} seed(s) = {runs:,}",
            f"at most {MAX_RUNS:,} runs a sweep: fewer seeds, policies or variants, or split the scenario")])
    s = replace(s, federation=s.federation.absolute(), trace=s.trace.absolute(),
                carbon=None if s.carbon is None else s.carbon.absolute())
    return [Unit(s, v, seed, p) for seed in seeds for v in range(len(s.variants))
            for p in (None, *s.policies)]


_PREPARED: dict[bytes, Inputs] = {}   # this process's inputs of the last scenario it ran


def inputs_of(s: Scenario) -> Inputs:
    """``s``'s inputs, read once per process (the units of a sweep share them).

    Raises:
        InvalidInput: any bad input file.
    """
    key = pickle.dumps(s)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(s)
    return _PREPARED[key]


def run_unit(unit: Unit, progress: Progress | None = None) -> Done:
    """Run one unit (a pure function of it, bar the wall-clock ``seconds``); problems with
    the inputs come back in :attr:`Done.problems`, never raised."""
    try:
        inputs = inputs_of(unit.scenario)
        name, fed, given = inputs.variants[unit.variant]
        work = inputs.workload(unit.seed)
        s = unit.scenario
        if unit.policy is None:
            return Done(grams=oracle_emissions(fed, work, inputs.carbon, slack_s=2 * s.pass_s))
        outages = given + inputs.drawn(fed, unit.seed)
        run = simulate(name, fed, work, inputs.carbon, run_settings(s, unit.policy, outages), progress,
                       s.engine)
        return Done(figures(run), emissions(run))
    except InvalidInput as exc:
        return Done(problems=exc.problems)


def merge(inputs: Inputs, units: Sequence[Unit], outputs: Sequence[Done]) -> Results:
    """The report's figures from every unit's output (``outputs[i]`` of ``units[i]``), in the
    scenario's order of variants, seeds and policies.

    Raises:
        InvalidInput: the problems any unit met (each once).
    """
    problems = list(dict.fromkeys(p for d in outputs for p in d.problems))
    if problems:
        raise InvalidInput(problems)
    s = inputs.scenario
    seeds = replication_seeds(s)
    by = {(u.seed, u.variant, u.policy): d for u, d in zip(units, outputs, strict=True)}
    out = []
    for i, (name, fed, given) in enumerate(inputs.variants):
        blocks = [_replication(inputs, by, i, seed) for seed in seeds]
        baseline = next((p for p in s.policies if p is Policy.HOME), s.policies[0])
        variant: dict[str, Any] = {
            "name": name, "gpus": sum(x.total_gpus for x in fed.sites),
            "sites": [{"id": x.id, "partner": x.partner, "zone": x.grid_zone, "gpus": x.total_gpus}
                      for x in fed.sites],
            "outages": listed(given), "failures": blocks[0]["failures"], "baseline": baseline.value,
            "runs": blocks[0]["runs"]}
        if len(seeds) > 1:
            variant["replications"] = blocks
        variant["intervals"] = intervals(seeds, [b["runs"] for b in blocks])
        out.append(variant)
    return Results(describe(s, inputs.trace, inputs.workload(seeds[0])), out, list(inputs.notes))


def _replication(inputs: Inputs, by: dict[tuple[int, int, Policy | None], Done], variant: int,
                 seed: int) -> dict[str, Any]:
    """One seed's runs of one variant, each with its comparison against the baseline (home
    FIFO when it is among the policies, else the first) and the oracle."""
    policies = inputs.scenario.policies
    oracle = by[(seed, variant, None)].grams
    runs = [by[(seed, variant, p)] for p in policies]
    mask = comparable_jobs([r.grams for r in runs], oracle)
    base = runs[policies.index(Policy.HOME) if Policy.HOME in policies else 0].grams
    fed = inputs.variants[variant][1]
    return {"seed": seed, "failures": listed(inputs.drawn(fed, seed)),
            "runs": [with_comparison(r.figures, comparison(r.grams, mask, base, oracle)) for r in runs]}
