"""The event-driven simulation kernel: a federation, a workload, one policy, one run.

Time jumps from event to event (a heap; no fixed step). Jobs arrive in submit order (a
sorted stream merged with the heap, so arrivals cost no heap operation); the broker places
the jobs that arrived in dispatcher passes (every ``pass_s``, at most the broker's
``BATCH`` a pass, oldest first; 0: at once), deciding as
:func:`accord.domain.placement.place.choose` does (the domain's standing table,
:func:`accord.domain.placement.table.fill_table`, and its
:func:`~accord.domain.placement.pick.pick`), over loads it updates within a pass by the
broker's rule (:func:`~accord.domain.placement.records.after_placing`), with contexts built
by the broker's :func:`~accord.service.placement_context.build_context` over the simulated
ledger, and forecasts from :mod:`accord.sim.forecast`. Each site runs the jobs placed at
each of its pools first come, first served, optionally with EASY backfilling.

As the broker does, a deferred job is reconsidered every ``replan_s`` and released at once
when the best choice moved to another site or at least a slot earlier; otherwise it is
released at its start and placed then, at the pool then chosen (a job is shifted in time
once); a deferral that would end the run after the job's deadline places it now.
When a job ends, its cross-border use goes into the simulated ledger
(``accord.sim.accounting``), whose quota used and balances feed the next placement
contexts; once every job has run, the energy and emissions of all come from
``accord.domain.carbon.energy`` at once (:meth:`~accord.sim.accounting.Accounts.record_all`: the
arithmetic of the broker's usage records, in vector form). The same inputs give the same run.

The loop itself is written once, in :mod:`accord.sim.native` (compiled with numba; tests
also run the same source interpreted), and fed by :mod:`accord.sim.native_run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from accord.domain.carbon.series import IntensitySeries
from accord.domain.federation.model import Federation
from accord.sim.forecast import forecast_source
from accord.sim.model import Outcome, Settings, Workload
from accord.sim.native_run import run_native
from accord.sim.run_state import RunState


class Simulation(RunState):
    """One run of one policy over one federation and workload. Call :meth:`run` once.

    ``carbon`` maps grid zones to their actual intensity (what jobs pay, and what a
    perfect forecast sees); zones without a series get no forecast and unknown emissions.
    ``settings.outages`` take sites down for a while (:class:`~accord.sim.model.Outage`).
    ``compiled=False`` runs the loop's same source interpreted (slow: for tests).

    Raises:
        InvalidInput: an outage names no site of the federation, or does not end after it
            starts; the profile forecast without the built-in profiles.
    """

    def __init__(self, federation: Federation, workload: Workload, carbon: Mapping[str, IntensitySeries],
                 settings: Settings, progress: Callable[[int, int], None] | None = None, *,
                 compiled: bool = True) -> None:
        super().__init__(federation, workload, carbon, settings, progress)
        self.compiled = compiled
        self.source = forecast_source(settings.forecast, carbon, 2 * self.weights.slot_s, settings.profiles)

    def run(self) -> Outcome:
        """Simulate every job to its end (or rejection); the per-job outcome."""
        if len(self.work) == 0:
            self.ledger.flush(math.inf)
            self.account()
            return self.out
        return run_native(self, self.source, self.compiled)
