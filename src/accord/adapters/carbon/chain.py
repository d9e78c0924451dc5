"""A fallback chain of carbon sources, per zone: e.g. live API → file → built-in profile.

The first source that answers with a series covering the span wins; its name, and why
the sources before it did not answer, are written into the series' ``source``, so every
emission figure says whether it came from measured data or a typical profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from accord.adapters.carbon.files import FileSource
from accord.adapters.carbon.live import EM_API_URL, ElectricityMapsApi, GbCarbonIntensityApi
from accord.adapters.carbon.profiles import ProfileSource
from accord.domain.carbon.series import IntensitySeries
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.ports import CarbonSource

REASON_CHARS = 160  # of each skipped source's reason, kept in the answer's source


@dataclass(frozen=True, slots=True)
class Step:
    """One link of a chain: a name for the record, and the source."""

    name: str
    source: CarbonSource


class FallbackChain:
    """A :class:`~accord.ports.CarbonSource` that asks its steps in order.

    ``steps`` is the default order; ``per_zone`` replaces it for the zones it names (e.g.
    GB: gb-api → file → profile; KR: profile only).
    """

    def __init__(self, steps: Sequence[Step], per_zone: Mapping[str, Sequence[Step]] | None = None) -> None:
        self._steps = tuple(steps)
        self._per_zone = {z: tuple(s) for z, s in (per_zone or {}).items()}

    def steps_for(self, zone: str) -> tuple[Step, ...]:
        """The steps asked for ``zone``, in order."""
        return self._per_zone.get(zone, self._steps)

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The first covering answer, its ``source`` prefixed by the step's name and
        followed by the reasons earlier steps gave (``[after: gb-api: ...]``).

        Raises:
            InvalidInput: naive or reversed times (asked of no source).
            Unavailable: no step answered; the message lists every step's reason.
        """
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise InvalidInput([Problem("span", "need UTC-aware times with start < end",
                                        f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
        skipped: list[str] = []
        for step in self.steps_for(zone):
            try:
                s = step.source.intensity(zone, start, end)
            except (Unavailable, InvalidInput) as exc:
                skipped.append(f"{step.name}: {_short(str(exc))}")
                continue
            if not s.covers(start, end):
                skipped.append(f"{step.name}: answered {s.start.isoformat()}..{s.end.isoformat()} only")
                continue
            after = f" [after: {'; '.join(skipped)}]" if skipped else ""
            return IntensitySeries(s.zone, s.starts, s.values, s.step_s, f"{step.name}: {s.source}{after}")
        names = ", ".join(s.name for s in self.steps_for(zone)) or "none configured"
        raise Unavailable(f"no carbon source answered for {zone} [{start.isoformat()}, {end.isoformat()}) "
                          f"(tried {names}): {'; '.join(skipped)}")


def standard_chain(shared_data: Path | None = None, em_token: str | None = None,
                   gb_api_url: str | None = None, em_api_url: str | None = None,
                   timeout_s: float = 10.0) -> FallbackChain:
    """The usual chain: for GB the GB Carbon Intensity API (when ``gb_api_url`` is given),
    then Electricity Maps (when ``em_token`` is), then the shared files (when
    ``shared_data`` is), then the built-in profiles. With no arguments: profiles only,
    which works offline for every zone that has one.
    """
    tail: list[Step] = []
    if em_token:
        tail.append(Step("electricity-maps", ElectricityMapsApi(em_token, em_api_url or EM_API_URL,
                                                                timeout_s=timeout_s)))
    if shared_data is not None:
        tail.append(Step("file", FileSource.shared(shared_data)))
    tail.append(Step("profile", ProfileSource()))
    per_zone = {}
    if gb_api_url:
        per_zone["GB"] = [Step("gb-api", GbCarbonIntensityApi(gb_api_url, timeout_s=timeout_s)), *tail]
    return FallbackChain(tail, per_zone)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"
