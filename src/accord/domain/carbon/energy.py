"""A job's energy and emissions (pure): GPUs × power × run × host share × PUE, or the
scheduler's measured energy × PUE; emissions as energy × the mean intensity of the run.

Units as in :mod:`accord.domain.carbon.series`: energy kWh, emissions grams CO2eq,
durations seconds, times UTC-aware. Errors are
:class:`~accord.domain.errors.InvalidInput` with one :class:`Problem` per fault.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import IntensitySeries
from accord.domain.errors import InvalidInput, Problem

# Host share of a GPU job's power: what the rest of the node (CPUs, memory, NICs, NVSwitch,
# fans, storage) draws on top of the GPUs. Source: NVIDIA DGX H100 datasheet (2023): 8 x H100
# SXM5 at 700 W TDP each = 5.6 kW of a system "~10.2 kW max". (10.2 - 5.6) / 5.6 = 0.82.
# Both figures are maxima, so this is a full-load ratio; measured energy (Slurm) replaces it.
DGX_H100_GPUS = 8
DGX_H100_GPU_W = 700.0
DGX_H100_MAX_W = 10_200.0
DEFAULT_HOST_SHARE = (DGX_H100_MAX_W - DGX_H100_GPUS * DGX_H100_GPU_W) / (DGX_H100_GPUS * DGX_H100_GPU_W)


class EnergyBasis(enum.Enum):
    """Where a job's energy figure came from."""

    MODEL = "model"        # GPUs x power x runtime x (1 + host share) x PUE
    MEASURED = "measured"  # the scheduler's consumed energy (e.g. Slurm ConsumedEnergyRaw) x PUE


@dataclass(frozen=True, slots=True)
class Footprint:
    """A job's energy and emissions, and what they were computed from."""

    energy_kwh: float
    emissions_g: float
    mean_intensity: float
    zone: str
    intensity_source: str
    energy_basis: EnergyBasis


def job_energy_kwh(gpus: int, power_w: float, seconds: float, pue: float,
                   host_share: float = DEFAULT_HOST_SHARE) -> float:
    """Facility energy of a GPU job: GPUs × power per GPU × (1 + host share) × runtime × PUE.

    ``host_share`` is the rest of the node's draw as a fraction of its GPUs' draw; the
    default, 0.82, is the NVIDIA DGX H100 ratio (8 × 700 W GPUs of a 10.2 kW node maximum).
    Pass 0 when ``power_w`` already covers the whole node share per GPU.

    >>> round(job_energy_kwh(8, 700, 3600, 1.0), 6)   # one DGX H100 at full power, 1 h
    10.2
    >>> job_energy_kwh(1, 1000, 3600, 1.5, host_share=0)
    1.5

    Raises:
        InvalidInput: a negative count, power, runtime or host share, or a PUE below 1.
    """
    problems = []
    if gpus < 0:
        problems.append(Problem("gpus", "must not be negative", str(gpus), "an integer >= 0"))
    for name, value in (("power_w", power_w), ("seconds", seconds), ("host_share", host_share)):
        if not (math.isfinite(value) and value >= 0):
            problems.append(Problem(name, "must be a finite number >= 0", str(value), "a number >= 0"))
    problems += _pue_problems(pue)
    if problems:
        raise InvalidInput(problems)
    return _facility_kwh(float(gpus), power_w, seconds, pue, host_share)


_N = TypeVar("_N", float, NDArray[np.float64])


def _facility_kwh(gpus: _N, power_w: _N, seconds: _N, pue: _N, host_share: float) -> _N:
    return gpus * power_w * (1.0 + host_share) * seconds / 3.6e6 * pue


def jobs_energy_kwh(gpus: NDArray[np.float64], power_w: NDArray[np.float64], seconds: NDArray[np.float64],
                    pue: NDArray[np.float64], host_share: float = DEFAULT_HOST_SHARE) -> NDArray[np.float64]:
    """:func:`job_energy_kwh` of many jobs at once (arrays of equal length), the same figures.

    >>> jobs_energy_kwh(np.array([8.0, 1.0]), np.array([700.0, 1000.0]), np.array([3600.0, 3600.0]),
    ...                 np.array([1.0, 1.5]), 0.0).tolist()
    [5.6, 1.5]

    Raises:
        InvalidInput: a negative count, power or runtime, a non-finite one, or a PUE below 1.
    """
    problems = [Problem(name, "must be finite numbers >= 0", str(v[~(np.isfinite(v) & (v >= 0))][0]),
                        "numbers >= 0")
                for name, v in (("gpus", gpus), ("power_w", power_w), ("seconds", seconds))
                if not bool(np.all(np.isfinite(v) & (v >= 0)))]
    if not bool(np.all(pue >= 1)):
        problems.append(Problem("pue", "must be at least 1", str(pue[~(pue >= 1)][0]), "a number >= 1"))
    if problems:
        raise InvalidInput(problems)
    return _facility_kwh(gpus, power_w, seconds, pue, host_share)


def energy_kwh_from_joules(consumed_j: float, pue: float) -> float:
    """Facility energy from the scheduler's measured IT energy (Slurm ``ConsumedEnergyRaw``,
    joules, which covers the whole node when gathered by IPMI), × PUE for cooling and
    power distribution. No host share: the measurement already includes the host.

    >>> energy_kwh_from_joules(3.6e6, 1.2)
    1.2

    Raises:
        InvalidInput: negative or non-finite energy, or a PUE below 1.
    """
    problems = _pue_problems(pue)
    if not (math.isfinite(consumed_j) and consumed_j >= 0):
        problems.append(Problem("consumed_energy_j", "must be a finite number >= 0", str(consumed_j),
                                "joules >= 0"))
    if problems:
        raise InvalidInput(problems)
    return consumed_j / 3.6e6 * pue


def job_emissions_g(energy_kwh: float, s: IntensitySeries, start: datetime, end: datetime) -> float:
    """Emissions of ``energy_kwh`` spread evenly over the run [start, end):
    energy × mean intensity over the actual interval (= energy / hours × ∫ intensity dt).

    >>> from datetime import UTC
    >>> from accord.domain.carbon.series import series
    >>> s = series("GB", datetime(2020, 1, 1, tzinfo=UTC), 1800, [100.0, 300.0])
    >>> job_emissions_g(2.0, s, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, 1, tzinfo=UTC))
    400.0

    Raises:
        InvalidInput: negative or non-finite energy, an empty span, or one not covered.
    """
    if not (math.isfinite(energy_kwh) and energy_kwh >= 0):
        raise InvalidInput([Problem("energy_kwh", "must be a finite number >= 0", str(energy_kwh),
                                    "kWh >= 0")])
    return energy_kwh * s.mean(start, end)


def footprint(energy_kwh: float, s: IntensitySeries, start: datetime, end: datetime,
              energy_basis: EnergyBasis = EnergyBasis.MODEL) -> Footprint:
    """Energy, emissions and the mean intensity of a run, with the intensity's source.

    Raises:
        InvalidInput: as :func:`job_emissions_g`.
    """
    mean = s.mean(start, end)
    return Footprint(energy_kwh, job_emissions_g(energy_kwh, s, start, end), mean, s.zone,
                     s.source, energy_basis)


# ─── internals ───────────────────────────────────────────────────────────────────────────


def _pue_problems(pue: float) -> list[Problem]:
    if math.isfinite(pue) and pue >= 1.0:
        return []
    return [Problem("pue", "must be at least 1", str(pue), "a number >= 1.0 (1.1 is a good data centre)")]
