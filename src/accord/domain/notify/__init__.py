"""Notifications: which events tell whom, on which channel, with what key and retry (:mod:`.rules`)."""
