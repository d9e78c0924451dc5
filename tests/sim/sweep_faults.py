"""Runs of a sweep's units that fail as workers do, for the executors' tests (the worker
processes import this module by name, as they import :func:`accord.sim.sweep.run_unit`)."""

from __future__ import annotations

import os

from accord.sim.model import Policy
from accord.sim.runner import Progress
from accord.sim.sweep import Done, Unit, run_unit


def die_on_carbon(unit: Unit, progress: Progress | None = None) -> Done:
    """The worker process dies (as when killed, or out of memory) on a carbon-aware run."""
    if unit.policy is Policy.CARBON:
        os._exit(3)
    return run_unit(unit, progress)
