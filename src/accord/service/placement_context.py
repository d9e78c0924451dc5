"""Build placement's pure inputs for one dispatcher pass: forecasts, quota left, balances.

:func:`build_context` asks the carbon source once per grid zone of the federation for
the span every job of the pass may need, and turns each answer into a
:class:`~accord.domain.placement.forecast.ZoneForecast` on the federation's slot grid; it
computes the quota left per (agreement, requester, host) and each agreement's net
balance per partner. The result is a frozen record that every decision of the pass
reads, so one pass costs one forecast request per zone, however many jobs it places.

Quota used and balances come from callables so this module needs no ledger: by default
nothing has been used and every agreement is balanced. Wire them to the ledger with::

    build_context(fed, carbon, now, quota_used=ledger_quota_used, balance=ledger_balance)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from accord.domain.errors import InvalidInput, Unavailable
from accord.domain.federation.model import Agreement, Federation, QuotaPeriod
from accord.domain.placement.forecast import PlacementContext, ZoneForecast
from accord.domain.placement.records import MAX_START_SLOTS
from accord.ports import CarbonSource

log = logging.getLogger("accord.placement")

RUN_HORIZON_S = 86_400  # forecast kept beyond the last start: a run up to a day long is covered

QuotaUsed = Callable[[str, str, str, str], Decimal]
"""``quota_used(agreement id, requester, host, period) -> units used`` in the agreement's
quota period containing the decision time: ``period`` is ``YYYY-MM`` for a monthly quota,
``YYYY`` for a yearly one and ``START/END`` (ISO dates) for one over the whole agreement."""

Balance = Callable[[str], Mapping[str, Decimal]]
"""``balance(agreement id) -> {partner: net units}``, provided − used under the agreement
so far (the ledger's ``net_by_partner`` restricted to the agreement)."""


def no_quota_used(agreement: str, requester: str, host: str, period: str) -> Decimal:
    """The default: nothing used yet."""
    return Decimal(0)


def no_balance(agreement: str) -> Mapping[str, Decimal]:
    """The default: every partner at zero."""
    return {}


def build_context(
    federation: Federation,
    carbon: CarbonSource | None,
    at: datetime,
    *,
    quota_used: QuotaUsed = no_quota_used,
    balance: Balance = no_balance,
    horizon_s: int | None = None,
    zones: Iterable[str] | None = None,
) -> PlacementContext:
    """The placement context for decisions made at ``at``.

    Forecasts are asked for ``zones`` (default: every zone of the federation; the broker
    passes only those its pass's jobs could use, see
    :func:`~accord.domain.placement.place.forecast_zones`) and cover [``at`` rounded down to a
    slot, + ``horizon_s``), by default the 48 start slots and a day more (48 h with
    30-minute slots). A zone the source cannot answer for gets no forecast and a note
    saying why (its sites are then placed as if carbon did not matter: no emissions term,
    start now).

    Raises:
        InvalidInput: ``at`` is naive (asked of no source).
    """
    if at.utcoffset() is None:
        raise InvalidInput.single("at", "must be timezone-aware", at.isoformat(), "a UTC time")
    weights = federation.placement
    horizon = horizon_s or MAX_START_SLOTS * weights.slot_s + RUN_HORIZON_S
    if zones is None:
        zones = {s.grid_zone for s in federation.sites if s.grid_zone}
    forecasts, notes = forecasts_for(sorted(zones), carbon, at, weights.slot_s, horizon)
    return PlacementContext(
        weights=weights,
        forecasts=forecasts,
        quota_left=quota_left(federation.agreements, at, quota_used),
        balances={a.id: {p: float(v) for p, v in balance(a.id).items()} for a in federation.agreements},
        notes=notes,
    )


def forecasts_for(
    zones: Iterable[str], carbon: CarbonSource | None, at: datetime, slot_s: int, horizon_s: int
) -> tuple[dict[str, ZoneForecast], dict[str, str]]:
    """One forecast per zone on the slot grid from ``at`` (rounded down) for ``horizon_s``,
    and, for zones without one, why."""
    forecasts: dict[str, ZoneForecast] = {}
    notes: dict[str, str] = {}
    origin = math.floor(at.timestamp() / slot_s) * slot_s
    start = datetime.fromtimestamp(origin, UTC)
    end = datetime.fromtimestamp(origin + horizon_s, UTC)
    for zone in zones:
        if carbon is None:
            notes[zone] = "no carbon source is configured"
            continue
        try:
            forecasts[zone] = ZoneForecast.of(carbon.intensity(zone, start, end), slot_s)
        except (Unavailable, InvalidInput) as exc:
            notes[zone] = str(exc)
            log.info("no intensity forecast for %s: %s", zone, exc)
    return forecasts, notes


def quota_period(agreement: Agreement, per: QuotaPeriod, at: datetime) -> str:
    """The label of the quota period containing ``at`` (see :data:`QuotaUsed`).

    >>> from datetime import date
    >>> a = Agreement("uk-fr", "x", ("uk", "fr"), date(2025, 1, 1), date(2027, 12, 31), (), (), ())
    >>> t = datetime(2026, 11, 2, tzinfo=UTC)
    >>> [quota_period(a, p, t) for p in QuotaPeriod]
    ['2026-11', '2026', '2025-01-01/2027-12-31']
    """
    if per is QuotaPeriod.MONTH:
        return at.astimezone(UTC).strftime("%Y-%m")
    if per is QuotaPeriod.YEAR:
        return at.astimezone(UTC).strftime("%Y")
    return f"{agreement.start.isoformat()}/{agreement.end.isoformat()}"


def quota_left(
    agreements: Iterable[Agreement], at: datetime, quota_used: QuotaUsed = no_quota_used
) -> dict[tuple[str, str, str], float]:
    """Units left per (agreement, requester, host) in the period containing ``at``, for the
    agreements in force then (negative when overdrawn)."""
    left: dict[tuple[str, str, str], float] = {}
    for a in agreements:
        if not a.in_force(at.date()):
            continue
        for q in a.quotas:
            used = quota_used(a.id, q.requester, q.host, quota_period(a, q.per, at))
            left[(a.id, q.requester, q.host)] = q.units - float(used)
    return left
