"""The bounds of a federation file, declared once.

Every count, size and duration a federation file states has a maximum here:
:mod:`accord.domain.federation.schema` (and the compliance rules' reader) checks each, and
refuses a value over it naming the field, the value and the maximum;
``docs/federation-format.md`` ("Limits") lists them, and ``tests/unit/test_limits.py``
compares that table with :data:`BOUNDS`, so the two cannot drift.

Each bound is far above any real federation (the largest GPU clusters hold a few hundred
thousand GPUs) and low enough that nothing Accord does with a valid file is swamped by it:
placement, the local backend's GPU indices, the simulator's capacity arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Bound:
    """One bound: what it limits (as the docs name it), its maximum and its unit."""

    what: str
    maximum: int
    unit: str = ""

    @property
    def shown(self) -> str:
        """The maximum and its unit as the docs write them.

        >>> Bound("x", 1_000_000, "GPUs").shown, Bound("y", 10**12, "units").shown
        ('1,000,000 GPUs', '10^12 units')
        """
        digits = str(self.maximum)
        big = self.maximum >= 10**9 and digits.strip("0") == "1"
        amount = f"10^{len(digits) - 1}" if big else f"{self.maximum:,}"
        return f"{amount} {self.unit}".strip()


FILE_BYTES = Bound("the file", 10_000_000, "bytes")
TEXT = Bound("a name or other text (`name`, `reference_unit`, `grid_zone`, `cluster`, `partition`, "
             "`account`)", 200, "characters")
PATH = Bound("a path (`slurm_conf`, `workdir`)", 4096, "characters")
THEME = Bound("a theme", 63, "characters")
THEMES = Bound("themes in a list (`federation.themes`, an agreement's or a rule's `themes`)", 100, "themes")
GPU_MODELS = Bound("`[[gpu_models]]`", 100, "tables")
GPU_MODEL_NAME = Bound("`gpu_models.name`", 64, "characters")
MEMORY_GB = Bound("`gpu_models.memory_gb`", 10_000, "GB")
TDP_W = Bound("`gpu_models.tdp_w`", 10_000, "W")
PEAK_TFLOPS = Bound("`gpu_models.peak_tflops`", 1_000_000, "TFLOP/s")
RATES = Bound("`[[exchange_rates]]`", 10_000, "tables")
UNITS_PER_GPU_HOUR = Bound("`exchange_rates.units_per_gpu_hour`", 1_000_000, "units")
PARTNERS = Bound("`[[partners]]`, and partners in a list (`parties`, `hosts`, `partners`)", 300, "partners")
INSTITUTIONS = Bound("`[[institutions]]`, and institutions in a denied-party rule", 10_000, "institutions")
SITES = Bound("`[[sites]]`", 1_000, "tables")
POOLS = Bound("`[[sites.pools]]` of one site", 100, "tables")
POOL_GPUS = Bound("`sites.pools.gpus`", 1_000_000, "GPUs")
AGENT_KEYS = Bound("`sites.agent.keys` of one site (the current key and the next, while rotating)", 8, "keys")
AGENT_SILENCE_S = Bound("`sites.agent.silence_s`", 86_400, "seconds")
POWER_W = Bound("`sites.pools.power_w`", 5_000, "W")
PUE = Bound("`sites.pue` (from 1)", 3)
AGREEMENTS = Bound("`[[agreements]]`", 1_000, "tables")
QUOTAS = Bound("`[[agreements.quotas]]` of one agreement", 1_000, "tables")
QUOTA_UNITS = Bound("`agreements.quotas.units`", 10**12, "units")
FLEXIBILITY_H = Bound("`agreements.default_flexibility_hours`", 8_760, "hours")
COUNTRIES = Bound("countries in a list (`residency_countries`, a rule's `countries`)", 300, "countries")
RULES = Bound("`[[compliance.large_runs]]`, `[[compliance.denied_parties]]`, `[[compliance.residency]]`, "
              "each", 1_000, "tables")
RULE_GPU_HOURS = Bound("`compliance.large_runs.gpu_hours`", 10**12, "GPU-hours")
RULE_FLOP = Bound("`compliance.large_runs.flop`", 10**30, "FLOP")
ALLOCATION_THRESHOLD = Bound("`allocations.warn_at`, `lower_at`, `hold_at` (fractions of an allocation)", 10)
WEIGHT = Bound("each `federation.placement` weight", 100)
SLOT_MINUTES = Bound("`federation.placement.slot_minutes` (from 5, dividing a day)", 240, "minutes")
WITNESSES = Bound("`[[witnessing.witnesses]]`", 100, "tables")
WITNESS_INTERVAL_S = Bound("`witnessing.interval_s` (from 1)", 86_400, "seconds")
WITNESS_TIMEOUT_S = Bound("`witnessing.timeout_s` (from 1)", 60, "seconds")

#: Every bound, in the order the docs list them.
BOUNDS: tuple[Bound, ...] = (
    FILE_BYTES, TEXT, PATH, THEME, THEMES, GPU_MODELS, GPU_MODEL_NAME, MEMORY_GB, TDP_W, PEAK_TFLOPS,
    RATES, UNITS_PER_GPU_HOUR, PARTNERS, INSTITUTIONS, SITES, POOLS, POOL_GPUS, POWER_W, PUE,
    AGREEMENTS, QUOTAS, QUOTA_UNITS, FLEXIBILITY_H, COUNTRIES, RULES, RULE_GPU_HOURS, RULE_FLOP,
    ALLOCATION_THRESHOLD, WEIGHT, SLOT_MINUTES, WITNESSES, WITNESS_INTERVAL_S, WITNESS_TIMEOUT_S,
)

#: Dates (agreements' ``start`` and ``end``, rates' ``valid_from`` and ``valid_until``) are
#: from :data:`EARLIEST_DAY` to :data:`LATEST_DAY`: arithmetic on them (a day after the end,
#: a month's last day) stays inside the calendar.
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(8999, 12, 31)
