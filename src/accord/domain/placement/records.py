"""Placement's records: the verdict, the loads placement reads, the candidates and the
decision it returns (:class:`Decision`, with the text of its explanation), the fast path's
:class:`Choice`, and the constants they share.

Pure records and text, no I/O.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from accord.domain.federation.model import Agreement

MAX_START_SLOTS = 48   # start times considered per job: now and up to 47 slot boundaries
ALTERNATIVES = 3       # alternatives kept in a decision (the best ones)
TIE = 1e-9             # scores this close are equal; equal scores go to the earliest start


class Verdict(enum.Enum):
    """What the broker should do with a job after a placement attempt."""

    PLACE = "place"    # start now at the chosen site
    DEFER = "defer"    # start later (``Decision.start``) at the chosen site; reconsidered then
    WAIT = "wait"      # nothing can take it now, but something may later
    REJECT = "reject"  # nothing can ever take it


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """What a site reports about one pool right now."""

    free_gpus: int
    queued_gpus: int = 0
    available: bool = True
    note: str = ""


def retry_waiting_at(t: float) -> float:
    """When a job that had to WAIT while every site answered is tried again (epoch
    seconds): the next UTC midnight, as only a new day (an agreement in force) or month
    (quotas renewed) can change that verdict. The broker and the simulator both use it.

    >>> retry_waiting_at(86_400.0 * 3 + 5)
    345600.0
    """
    return (math.floor(t / 86_400) + 1) * 86_400.0


def after_placing(free: int, queued: int, gpus: int) -> tuple[int, int]:
    """A pool's (free, queued) GPUs as the rest of a dispatcher pass sees them once a job of
    ``gpus`` GPUs is placed there: they come off the free GPUs (which may go below zero),
    and what the free ones cannot cover is queued. The broker's passes and the simulator's
    both update their loads with this.

    >>> after_placing(10, 0, 4), after_placing(10, 0, 12), after_placing(-2, 2, 4)
    ((6, 0), (-2, 2), (-6, 6))
    """
    return free - gpus, queued + max(0, gpus - max(free, 0))


class Candidate(NamedTuple):
    """A (site, pool, start) that passed every hard constraint, with its weighted score
    terms. (An immutable record; a NamedTuple because a decision builds several.)"""

    site: str
    pool: str
    agreement: str | None                  # the agreement it runs under abroad; None at home
    terms: tuple[tuple[str, float], ...]   # (name, weighted value), in a fixed order
    start: datetime | None = None          # when it would start (``at`` without a context)
    emissions_g: float | None = None       # estimated from the forecast; None without one

    @property
    def score(self) -> float:
        """Sum of the terms; lower is better."""
        return sum(v for _, v in self.terms)

    def term(self, name: str) -> float:
        """One term's weighted value (0 if the decision did not use it)."""
        return next((v for n, v in self.terms if n == name), 0.0)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A (site, pool) ruled out, and why; ``transient`` if it may pass later."""

    site: str
    pool: str
    reason: str
    transient: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`place`.

    ``alternatives`` are the best other candidates (one per pool at its best start, and
    the chosen pool starting now when the choice is later), best first, at most
    :data:`ALTERNATIVES`. ``reference`` is running now at the job's home site (else the
    best site on the other terms): what the emissions saving is measured against.
    ``chosen_now`` is the chosen pool starting now, when the choice is a later start.
    """

    verdict: Verdict
    chosen: Candidate | None
    alternatives: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    at: datetime | None = None
    reference: Candidate | None = None
    notes: tuple[str, ...] = ()
    chosen_now: Candidate | None = None

    @property
    def start(self) -> datetime | None:
        """When the chosen candidate should start (None when nothing was chosen)."""
        return self.chosen.start if self.chosen else None

    def placed_now(self, why: str) -> Decision:
        """This DEFER decision turned into PLACE at the same pool, starting now, with
        ``why`` added to the explanation; any other decision unchanged."""
        if self.verdict is not Verdict.DEFER or self.chosen_now is None or self.chosen is None:
            return self
        others = tuple(a for a in self.alternatives if a is not self.chosen_now)
        return replace(self, verdict=Verdict.PLACE, chosen=self.chosen_now,
                       alternatives=(self.chosen, *others)[:ALTERNATIVES],
                       notes=(why, *self.notes), chosen_now=None)

    def explain(self) -> str:
        """One readable paragraph: where and when, why, what it saves, what else was
        considered and what was ruled out."""
        if self.chosen is None:
            why = "; ".join(f"{r.site}/{r.pool}: {r.reason}" for r in self.rejected)
            verb = "waits" if self.verdict is Verdict.WAIT else "cannot run anywhere"
            return f"The job {verb}: {why or 'the federation has no sites'}."
        c = self.chosen
        parts = [f"{_where(c, self.at, self.verdict)} ({_score_text(c)})"
                 + (f" under agreement {c.agreement}" if c.agreement else "")]
        saving = _saving_text(c, self.reference, self.at)
        if saving:
            parts.append(saving)
        if self.alternatives:
            runner, *rest = self.alternatives
            text = f"Runner-up: {_label(runner, self.at)} (score {runner.score:.2f})"
            if rest:
                text += "; then " + ", ".join(f"{_label(a, self.at)} ({a.score:.2f})" for a in rest[:2])
            parts.append(text)
        if self.rejected:
            r = self.rejected[0]
            parts.append(f"Ruled out: {len(self.rejected)} pool(s), e.g. {r.site}/{r.pool}: {r.reason}")
        parts.extend(self.notes)
        return ". ".join(p.rstrip(".") for p in parts) + "."



class Choice(NamedTuple):
    """What :func:`choose` returns: the verdict, the chosen pool (an index into
    :func:`pool_keys`; -1 when nothing was chosen), its start (epoch seconds), the
    agreement it runs under abroad and its estimated emissions (g; None without a forecast)."""

    verdict: Verdict
    pool: int
    start_s: float
    agreement: Agreement | None
    emissions_g: float | None


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _label(c: Candidate, at: datetime | None) -> str:
    if c.start is not None and at is not None and c.start > at:
        return f"{c.site}/{c.pool} at {_utc(c.start)}"
    return f"{c.site}/{c.pool} now"


def _where(c: Candidate, at: datetime | None, verdict: Verdict) -> str:
    if verdict is Verdict.DEFER and c.start is not None and at is not None:
        wait = _duration(c.start - at)
        return f"Deferred to start at {_utc(c.start)} (in {wait}) at {c.site}/{c.pool}"
    return f"Placed at {c.site}/{c.pool} to start now"


def _score_text(c: Candidate) -> str:
    terms = ", ".join(f"{n} {v:.2f}" for n, v in c.terms)
    return f"score {c.score:.2f}: {terms}"


def _saving_text(c: Candidate, ref: Candidate | None, at: datetime | None) -> str:
    if c.emissions_g is None:
        return ""
    text = f"Estimated emissions {_grams(c.emissions_g)} CO2e"
    if ref is None or ref.emissions_g is None or ref.emissions_g <= 0:
        return text
    if (ref.site, ref.pool) == (c.site, c.pool) and c.start == ref.start:
        return text + f" (running now at {ref.site}/{ref.pool}: the baseline, nothing saved)"
    delta = ref.emissions_g - c.emissions_g
    how = "less" if delta >= 0 else "more"
    return (text + f", {_grams(abs(delta))} ({abs(delta) / ref.emissions_g:.0%}) {how} than "
            f"running now at {ref.site}/{ref.pool}")


def _grams(g: float) -> str:
    return f"{g / 1000:.2f} kg" if g >= 1000 else f"{g:.0f} g"


def _duration(d: timedelta) -> str:
    minutes = round(d.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
