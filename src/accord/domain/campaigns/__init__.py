"""Campaigns: joint model-testing campaigns (Inspect tasks × model endpoints) run under
agreements, with results shared by policy (:mod:`.campaign`)."""
