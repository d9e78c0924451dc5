"""A finished job's energy and emissions, their ledger memo lines and their totals (pure).

Worked out once, when the job ends (``Broker._track``), and stored on its usage record:

* **energy**, facility kWh. Measured when the scheduler reported the job's consumed energy
  (Slurm ``ConsumedEnergyRaw``, node-level, so the host is in it)::

      energy_kWh = joules / 3.6e6 × PUE

  else modelled from the pool's power per GPU and the documented host share
  (:data:`~accord.domain.carbon.energy.DEFAULT_HOST_SHARE` = 4.6 / 5.6 = 23/28 ≈ 0.821, the DGX
  H100 ratio: a 10.2 kW node of 8 × 700 W GPUs, so 1,275 W per GPU with its host share)::

      energy_kWh = GPU-seconds × power_W × (1 + host_share) / 3.6e6 × PUE

  GPU-seconds are the record's (allocated GPUs × elapsed), the figure the ledger charges.
* **emissions**, grams CO2eq: the energy spread evenly over the actual run [start, end) of
  the site's grid zone, i.e. ``energy_kWh / hours × ∫ intensity dt``
  (:func:`~accord.domain.carbon.energy.job_emissions_g`). A run that took no time is looked up
  over its first second.

When no intensity could be had, the energy is still kept, emissions are None and the
record's ``intensity_source`` says ``unavailable: <reason>``. See
``docs/design/carbon-accounting.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from accord.domain.carbon.energy import (
    DEFAULT_HOST_SHARE,
    EnergyBasis,
    energy_kwh_from_joules,
    job_emissions_g,
    job_energy_kwh,
)
from accord.domain.carbon.series import IntensitySeries
from accord.domain.errors import AccordError, InvalidInput, Problem
from accord.domain.federation.model import Site
from accord.domain.ledger.usage import MonthShare, UsageRecord

UNAVAILABLE = "unavailable: "
MEMO_QUANTUM = Decimal("0.000001")  # memo figures: 6 decimal places (1 Wh ... 1 mg)
MEMO_ENERGY = "energy_kwh"
MEMO_EMISSIONS = "emissions_kg"
NO_KEY = "(none)"  # the group of records without a requester or an agreement


class GroupBy(enum.Enum):
    """What emission totals are grouped by."""

    PROJECT = "project"
    SITE = "site"
    HOST_PARTNER = "host_partner"            # the partner whose site (and grid) ran the job
    REQUESTER_PARTNER = "requester_partner"  # the partner whose researchers ran it
    AGREEMENT = "agreement"


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """Totals of one group of usage records.

    ``energy_kwh`` and ``emissions_kg`` sum the records whose figure is known;
    ``energy_unknown`` and ``emissions_unknown`` count those left out.
    """

    key: str
    jobs: int
    gpu_hours: float
    energy_kwh: float
    emissions_kg: float
    energy_unknown: int
    emissions_unknown: int


def run_span(record: UsageRecord) -> tuple[datetime, datetime]:
    """The span whose intensity a record's emissions use: its run [start, end), or its
    first second when the run took no time (an intensity series cannot average nothing).
    """
    if record.end > record.start:
        return record.start, record.end
    return record.start, record.start + timedelta(seconds=1)


def energy_of(record: UsageRecord, site: Site, host_share: float = DEFAULT_HOST_SHARE
              ) -> tuple[float, EnergyBasis]:
    """The record's facility energy in kWh and whether it was measured or modelled.

    >>> from accord.domain.federation.model import BackendKind, GpuPool
    >>> from datetime import UTC
    >>> site = Site("s", "S", "uk", "GB", 1.1, BackendKind.LOCAL, (GpuPool("p", "H100", 8, 700.0),))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> r = UsageRecord("s:1", "j", "s", "p", "H100", "uk", None, None, "x", t,
    ...                 t + timedelta(hours=1), 2, 7200.0, "completed", 0)
    >>> kwh, basis = energy_of(r, site)
    >>> round(kwh, 9), basis.value     # 2 GPUs x 700 W x (1 + 23/28) x 1 h x 1.1
    (2.805, 'model')
    >>> energy_of(replace(r, energy_j=3.6e6), site)
    (1.1, <EnergyBasis.MEASURED: 'measured'>)

    Raises:
        NotFound: the site has no pool of the record's.
        InvalidInput: a figure out of range (negative power, PUE below 1, ...).
    """
    if record.energy_j is not None:
        return energy_kwh_from_joules(record.energy_j, site.pue), EnergyBasis.MEASURED
    pool = site.pool(record.pool)
    # GPU-seconds = allocated GPUs x elapsed: job_energy_kwh's GPUs x seconds in one figure.
    kwh = job_energy_kwh(1, pool.power_w, record.gpu_seconds, site.pue, host_share)
    return kwh, EnergyBasis.MODEL


def energy_basis(record: UsageRecord) -> EnergyBasis | None:
    """How the record's energy was found (None when it has no energy figure)."""
    if record.energy_kwh is None:
        return None
    return EnergyBasis.MEASURED if record.energy_j is not None else EnergyBasis.MODEL


def with_footprint(record: UsageRecord, site: Site, series: IntensitySeries | None,
                   unavailable: str = "no intensity data") -> UsageRecord:
    """The record with its energy, emissions and intensity source filled in.

    ``series`` is the site's grid intensity covering :func:`run_span`, or None when it
    could not be had (``unavailable`` says why). Never raises: a figure that cannot be
    worked out is None, and ``intensity_source`` says ``unavailable: <why>``.
    """
    try:
        kwh, _ = energy_of(record, site)
    except AccordError as exc:
        return replace(record, energy_kwh=None, emissions_g=None,
                       intensity_source=f"{UNAVAILABLE}no energy figure: {exc}")
    if series is None:
        return replace(record, energy_kwh=kwh, emissions_g=None,
                       intensity_source=UNAVAILABLE + unavailable)
    try:
        grams = job_emissions_g(kwh, series, *run_span(record))
    except InvalidInput as exc:
        return replace(record, energy_kwh=kwh, emissions_g=None,
                       intensity_source=UNAVAILABLE + str(exc))
    return replace(record, energy_kwh=kwh, emissions_g=grams, intensity_source=series.source)


# ─── ledger memo lines ───────────────────────────────────────────────────────────────────


def month_memos(record: UsageRecord, shares: Sequence[MonthShare]
                ) -> list[tuple[tuple[str, str], ...]]:
    """Memo lines for each month share of a record: ``emissions_kg`` and ``energy_kwh``
    (each only when known), split in proportion to the run time in each month, as the
    units are. Each figure has 6 decimal places and the shares add up exactly to the
    record's figure rounded to 6 places (cumulative rounding, never negative).

    >>> from datetime import UTC
    >>> r = UsageRecord("s:1", "j", "s", "p", "H100", "uk", None, None, "x",
    ...     datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC),
    ...     1, 10800.0, "completed", 0, energy_kwh=1.0, emissions_g=300.0)
    >>> from accord.domain.ledger.usage import split_by_month
    >>> month_memos(r, split_by_month(r))
    [(('emissions_kg', '0.100000'), ('energy_kwh', '0.333333')), \
(('emissions_kg', '0.200000'), ('energy_kwh', '0.666667'))]
    """
    energy = _split(record.energy_kwh, shares)
    kg = None if record.emissions_g is None else record.emissions_g / 1000
    emissions = _split(kg, shares)
    memos = []
    for i in range(len(shares)):
        lines = []
        if emissions is not None:
            lines.append((MEMO_EMISSIONS, str(emissions[i])))
        if energy is not None:
            lines.append((MEMO_ENERGY, str(energy[i])))
        memos.append(tuple(lines))
    return memos


def _split(value: float | None, shares: Sequence[MonthShare]) -> list[Decimal] | None:
    if value is None:
        return None
    total_s = sum(Decimal(repr(s.seconds)) for s in shares)
    whole = Decimal(repr(value))
    out, done, elapsed = [], Decimal(0), Decimal(0)
    for i, share in enumerate(shares):
        elapsed += Decimal(repr(share.seconds))
        last = i == len(shares) - 1
        upto = whole if last or total_s == 0 else whole * elapsed / total_s
        upto = upto.quantize(MEMO_QUANTUM, rounding=ROUND_HALF_EVEN)
        out.append(upto - done)
        done = upto
    return out


# ─── totals ──────────────────────────────────────────────────────────────────────────────


def group_key(record: UsageRecord, group: GroupBy) -> str:
    """The group a record counts in (``(none)`` for no requester or agreement)."""
    key = {
        GroupBy.PROJECT: record.project,
        GroupBy.SITE: record.site,
        GroupBy.HOST_PARTNER: record.host_partner,
        GroupBy.REQUESTER_PARTNER: record.requester_partner,
        GroupBy.AGREEMENT: record.agreement,
    }[group]
    return key if key is not None else NO_KEY


def totals(records: Iterable[UsageRecord], group: GroupBy) -> list[GroupTotal]:
    """Jobs, GPU-hours, energy and emissions per group, sorted by key.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> r = UsageRecord("s:1", "j", "s", "p", "H100", "uk", "fr", "uk-fr", "x", t, t,
    ...                 2, 7200.0, "completed", 0, energy_kwh=3.0, emissions_g=600.0)
    >>> totals([r, replace(r, id="s:2", emissions_g=None)], GroupBy.AGREEMENT)
    [GroupTotal(key='uk-fr', jobs=2, gpu_hours=4.0, energy_kwh=6.0, emissions_kg=0.6, \
energy_unknown=0, emissions_unknown=1)]
    """
    acc: dict[str, list[float]] = {}
    for r in records:
        row = acc.setdefault(group_key(r, group), [0, 0.0, 0.0, 0.0, 0, 0])
        row[0] += 1
        row[1] += r.gpu_seconds / 3600
        if r.energy_kwh is None:
            row[4] += 1
        else:
            row[2] += r.energy_kwh
        if r.emissions_g is None:
            row[5] += 1
        else:
            row[3] += r.emissions_g / 1000
    return [GroupTotal(k, int(v[0]), v[1], v[2], v[3], int(v[4]), int(v[5]))
            for k, v in sorted(acc.items())]


def parse_group(text: str) -> GroupBy:
    """The grouping ``text`` names; ``partner`` is short for ``host_partner``.

    >>> parse_group("partner")
    <GroupBy.HOST_PARTNER: 'host_partner'>

    Raises:
        InvalidInput: it names no grouping.
    """
    if text == "partner":
        return GroupBy.HOST_PARTNER
    try:
        return GroupBy(text)
    except ValueError:
        allowed = ", ".join(["partner", *(g.value for g in GroupBy)])
        raise InvalidInput([Problem("group", "is not a grouping", text, allowed)]) from None
