"""Carbon: grid intensity series and their integrals (:mod:`.series`), a job's energy and
emissions (:mod:`.energy`), choosing when or where to run by intensity (:mod:`.shifting`),
and the footprint a finished job carries, its ledger memo lines and totals
(:mod:`.footprint`)."""
