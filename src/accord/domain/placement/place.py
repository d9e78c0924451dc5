"""Placement: choose a site, pool and start time for a job, and say why.

One pure function, :func:`place`, used by the broker (and later the simulator).
Candidates are (site, pool, start) triples, the starts lying in the job's
flexibility window on a slot grid; hard constraints remove (site, pool) pairs,
each with its reason; the remaining candidates are scored (lower is better)
term by term, so a decision can be explained. ``docs/design/placement.md``
describes the terms and their scales.

Without a :class:`PlacementContext` the placement is the pre-carbon one: terms
``wait`` and ``border``, start now. With one, it adds ``emissions`` (from a
forecast per grid zone), ``reciprocity`` and ``cost``, checks the quota left,
and may choose a later start (verdict DEFER).

The code is split over the modules of :mod:`accord.domain.placement` by what they
hold; this one has the public functions, and each record is imported from the module that
defines it: :mod:`~accord.domain.placement.records` (the verdict, loads, candidates, the
decision and its explanation, :class:`Choice`, the shared constants),
:mod:`~accord.domain.placement.forecast` (:class:`ZoneForecast`, :class:`PlacementContext`),
:mod:`~accord.domain.placement.index` (the per-federation index and caches, internal),
:mod:`~accord.domain.placement.scoring` (the decision itself, ``_Placer``, internal),
:mod:`~accord.domain.placement.scalar` (the scalar arithmetic it shares with the simulator) and
:mod:`~accord.domain.placement.pick` (:func:`~accord.domain.placement.pick.pick`, choose()'s
last step in scalar form, what the simulator compiles).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import HOUR_S
from accord.domain.federation.model import Agreement, Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.forecast import PlacementContext
from accord.domain.placement.index import _index, _static_reason
from accord.domain.placement.pick import Picker
from accord.domain.placement.records import Choice, Decision, PoolLoad
from accord.domain.placement.scoring import _Placer


def place(
    spec: JobSpec,
    federation: Federation,
    loads: Mapping[tuple[str, str], PoolLoad],
    at: datetime,
    *,
    context: PlacementContext | None = None,
) -> Decision:
    """Choose the best (site, pool, start) for ``spec`` at time ``at``.

    ``loads`` maps (site id, pool id) to its current load; a pool missing from it is taken
    as idle and available. Without ``context`` the start is now and only the wait and
    border terms count. With it, starts run from max(at, earliest start) to the latest
    that finishes by the deadline (no deadline: the agreement's default flexibility; at
    home, now only), at most :data:`MAX_START_SLOTS`, and the emissions, reciprocity and
    cost terms and the quota left count too.

    The verdict is PLACE (start now) or DEFER (start later) with a chosen candidate, WAIT
    when every ruled-out pool may pass later (busy, down, quota to renew), or REJECT when
    nothing can ever take the job.
    """
    return _Placer(spec, federation, loads, at, context).decide()


def forecast_zones(spec: JobSpec, federation: Federation) -> frozenset[str]:
    """The grid zones whose forecast could change where or when ``spec`` runs: those of the
    sites that could take it, when it has a choice of site or of start (a deadline, or a
    partner abroad under an agreement with default flexibility). Empty when it has neither:
    then a pass need not ask for any forecast on its account.
    """
    ix = _index(federation)
    sites = {p.site.id: p.site for p in ix.pools if _static_reason(spec, p) is None}
    abroad = [s for s in sites.values() if spec.partner is not None and s.partner != spec.partner]
    flexible = spec.deadline is not None or any(
        a.default_flexibility_hours > 0 for s in abroad
        for a in ix.between.get((spec.partner or "", s.partner), ()))
    if len(sites) < 2 and not flexible:
        return frozenset()
    return frozenset(s.grid_zone for s in sites.values() if s.grid_zone)


def pool_keys(federation: Federation) -> tuple[tuple[str, str], ...]:
    """The (site id, pool id) of every pool, in the order :func:`choose` uses for its load
    arrays and its answer (sorted by site id, then pool id)."""
    return _index(federation).keys


def choose(
    spec: JobSpec,
    federation: Federation,
    free: NDArray[np.float64],
    queued: NDArray[np.float64],
    available: NDArray[np.bool_],
    at: datetime,
    *,
    context: PlacementContext | None = None,
    pick: Picker | None = None,
) -> Choice:
    """The fast path of :func:`place` for callers that keep the loads as arrays (the
    simulator): the same constraints, scores and choice, without the decision's records
    (explanation, alternatives, reference). ``free``, ``queued`` and ``available`` are per
    pool in :func:`pool_keys` order; the caller must not change them while this runs.

    ``place(spec, fed, loads, at, context=c).chosen`` is the pool and start this returns
    (a property test checks it on random federations and loads). ``pick`` is
    :func:`~accord.domain.placement.pick.pick` or that function compiled: the same
    choice, from the decision's standing table in scalar loops (a property test checks
    that too).
    """
    return _Placer(spec, federation, {}, at, context, (free, queued, available)).quick(pick)


def allowed_pools(spec: JobSpec, federation: Federation, at: datetime) -> tuple[bool, ...]:
    """Per pool (in :func:`pool_keys` order), whether the job may ever run there, capacity
    and quota left aside: its shape fits and, abroad, an agreement in force on ``at``'s day
    covers its partner, theme and sector. What the simulator's emissions oracle may use."""
    ix = _index(federation)
    elig, _ = ix.eligible(spec)
    hosts = ix.hosts(spec.partner, spec.theme, at.date(), spec.sector)
    return tuple((elig & (hosts.home | hosts.has)).tolist())


def flexibility_s(spec: JobSpec, federation: Federation, at: datetime) -> tuple[float, ...]:
    """Per pool (in :func:`pool_keys` order), how long after max(at, earliest start) the job
    could start there by its window: up to its deadline minus its run, else, abroad, the
    default flexibility of the agreement that applies; 0 at home without a deadline. Not
    capped at the slots :func:`place` looks at in one decision (a deferred job is placed
    again at its start)."""
    ix = _index(federation)
    s0 = max(at, spec.earliest_start or at).timestamp()
    if spec.deadline is not None:
        span = max(0.0, spec.deadline.timestamp() - spec.time_limit_s - s0)
        return (span,) * len(ix.pools)
    hosts = ix.hosts(spec.partner, spec.theme, at.date(), spec.sector)
    return tuple(0.0 if a is None else a.default_flexibility_hours * HOUR_S for a in hosts.first)



class Standing(NamedTuple):
    """What :func:`choose` weighs, without a context, that the loads do not change; per pool
    in :func:`pool_keys` order (see :func:`standing_terms`)."""

    allowed: NDArray[np.bool_]          # the job may run there, availability aside
    part: NDArray[np.float64]           # the weighted terms other than wait (border, ...)
    wait_scale: NDArray[np.float64]     # the wait weight per GPU: wait term = GPUs ahead × this
    agreements: tuple[Agreement | None, ...]   # what it runs under there (None: at home)
    transient: NDArray[np.bool_]        # refused, but the refusal may pass later


def standing_terms(spec: JobSpec, federation: Federation, at: datetime) -> Standing:
    """The part of the pre-carbon placement (``choose`` without a context) that the loads
    do not change, for a loop that keeps the loads itself (the simulator's compiled loop).
    From it and the loads, ``choose``'s answer is: over the allowed pools that are
    available, the least ``max(GPUs − free, 0) + queued`` × ``wait_scale`` + ``part``, scores
    within :data:`TIE` of the least going to the first pool in order; if there is none,
    WAIT when an allowed pool is down or a refusal is transient, else REJECT (a property
    test checks this against ``choose``).
    """
    p = _Placer(spec, federation, {}, at, None)
    fx = p._fixed()
    transient = np.zeros(len(fx.ok), np.bool_)
    for k, why in fx.refused:
        transient[k] = why.transient
    return Standing(fx.ok.copy(), fx.part.copy(), fx.wait_scale.copy(), tuple(fx.agreements), transient)
