"""Site enforcement (pure): what an agreement asks of a site's own scheduler.

* :mod:`.grants` — the hub's allocations as the site must enforce them (GPU-minutes, end,
  open or closed), and why an allocation cannot be expressed;
* :mod:`.identity` — the site's policy for visitors' local usernames, and the linking states;
* :mod:`.planner` — the difference between the desired Slurm account tree and the actual
  associations, as an ordered list of actions that never leaves a half-built tree.

See ``docs/design/site-enforcement.md``.
"""
