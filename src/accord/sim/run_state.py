"""What one simulation run holds whichever loop runs it: the inputs, the pools in
:func:`~accord.domain.placement.place.pool_keys` order, the simulated ledger, the accounts
and the per-job outcome, with a job's spec, the posting of a job's usage and the energy and
emissions of every job once the run is over.

A run (:class:`accord.sim.kernel.Simulation`, which extends :class:`RunState`) and the
kernel loop's glue (:mod:`accord.sim.native_run`) both work on it, so neither imports the
other for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.place import pool_keys
from accord.sim.accounting import Accounts, SimLedger
from accord.sim.model import Outcome, Policy, Settings, Workload, checked_outages, policy_weights


class RunState:
    """The inputs of one run and what it has produced so far (see the module's text).

    Raises:
        InvalidInput: an outage names no site of the federation, or does not end after it starts.
    """

    def __init__(self, federation: Federation, workload: Workload, carbon: Mapping[str, IntensitySeries],
                 settings: Settings, progress: Callable[[int, int], None] | None = None) -> None:
        self.work, self.carbon, self.cfg = workload, carbon, settings
        self.progress = progress
        self.weights = policy_weights(settings.policy, federation.placement)
        self.fed = replace(federation, placement=self.weights)
        self.keys = pool_keys(federation)
        sites = {s.id: s for s in federation.sites}
        self.sites = [sites[k[0]] for k in self.keys]
        self.pools = [sites[k[0]].pool(k[1]) for k in self.keys]
        self.site_index = [sorted({k[0] for k in self.keys}).index(k[0]) for k in self.keys]
        self.ledger = SimLedger(federation)
        self.accounts = Accounts(federation, self.keys, carbon)
        self.out = Outcome.empty(len(workload))
        self.residency = tuple((federation.partner(p).country,) for p in workload.partners)
        self.outages = checked_outages(settings.outages, (s.id for s in federation.sites))
        self.fills = 0   # standing tables the compiled loop filled (decisions no table cache answered)

    def account(self, runs: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]] | None = None,
                ) -> None:
        """Energy and emissions of every job that ran, into the outcome; ``runs`` is the
        outcome's (pool, start, end) as arrays, when the caller has them."""
        o = self.out
        pool, start, end = runs or (np.array(o.pool, np.int64), np.array(o.start), np.array(o.end))
        energy, emissions = self.accounts.record_all(pool, np.asarray(self.work.gpus, np.int64), start, end)
        o.energy_kwh, o.emissions_g = energy.tolist(), emissions.tolist()

    def _spec(self, job: int) -> JobSpec:
        w = self.work
        home = int(w.home[job])
        deadline = None
        if w.window_s is not None:
            deadline = datetime.fromtimestamp(float(w.submit_s[job] + w.requested_s[job]) + w.window_s, UTC)
        return JobSpec("sim", int(w.gpus[job]), int(w.requested_s[job]), partner=w.partners[home],
                       theme=w.theme, sector=w.sector, deadline=deadline,
                       data_residency=self.residency[home] if self.cfg.policy is Policy.HOME else ())

    def _post(self, agreement: str, requester: str, pool: int, gpus: int, start: float, end: float,
              read: float | None = None) -> None:
        self.ledger.post(agreement, requester, pool, self.sites[pool], self.pools[pool], gpus, start, end,
                         read)
