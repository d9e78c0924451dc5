"""Placement: choosing a site, pool and start time for a job, and saying why. The public
functions (``place``, ``choose`` and what the simulator asks) are in :mod:`.place`; the
records a decision returns in :mod:`.records`; zone forecasts and the placement context in
:mod:`.forecast`; the per-federation index and caches in :mod:`.index`; the decision itself
in :mod:`.scoring`; and choose()'s last step in scalar form, which the simulator compiles, in
:mod:`.pick`."""
