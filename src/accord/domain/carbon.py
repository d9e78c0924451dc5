"""Carbon intensity series and energy/emission arithmetic (pure).

``IntensitySeries`` is the contract between carbon sources (adapters) and
everything that uses intensities (placement, accounting, the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IntensitySeries:
    """A step function of grid intensity: ``values[i]`` holds from ``starts[i]`` until the
    next start (the last one for ``step_s`` seconds). Times are UTC-aware, increasing."""

    zone: str
    starts: tuple[datetime, ...]
    values: tuple[float, ...]
    step_s: int
    source: str
