"""Live carbon-intensity services, as :class:`~accord.ports.CarbonSource`\\ s.

* :class:`GbCarbonIntensityApi` — National Grid ESO / NESO's free API for Great Britain,
  ``GET /intensity/{from}/{to}`` (at most 14 days a request; half-hourly; no key).
* :class:`ElectricityMapsApi` — Electricity Maps v3, ``GET /v3/carbon-intensity/history``
  (the last 24 hours) and ``/v3/carbon-intensity/past-range`` (at most 10 days of hourly
  data a request), with the ``auth-token`` header.

Both take a configurable base URL and timeout, keep answers in an in-memory TTL cache,
and map failures at the edge: no answer, a refused connection or a non-200 status is
:class:`~accord.domain.errors.Unavailable` (with the status and the start of the body); an
answer that is not the documented shape is :class:`~accord.domain.errors.InvalidInput`.
The token never appears in messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Generic, Self, TypeVar

import httpx

from accord.adapters.carbon.formats import merge_series, parse_em_api_json, parse_gb_api_json
from accord.adapters.clock import SystemClock
from accord.domain.carbon.series import EPOCH, IntensitySeries
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.ports import Clock

GB_API_URL = "https://api.carbonintensity.org.uk"
EM_API_URL = "https://api.electricitymap.org"
SNIPPET = 200  # characters of an error body worth showing

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A small in-memory cache whose entries expire ``ttl_s`` seconds after they were put.
    ``monotonic`` is the time source (injectable for tests)."""

    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic,
                 max_entries: int = 512) -> None:
        self.ttl_s, self._now, self._max = ttl_s, monotonic, max_entries
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The value, or None if absent or expired."""
        item = self._items.get(key)
        if item is None or item[0] <= self._now():
            self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` for ``ttl_s`` seconds (the oldest entry goes when full)."""
        if self.ttl_s <= 0:
            return
        if len(self._items) >= self._max:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (self._now() + self.ttl_s, value)


class _Service:
    """An HTTP client for one service, with its error mapping and answer cache."""

    def __init__(self, name: str, base_url: str, timeout_s: float, cache_ttl_s: float,
                 headers: dict[str, str], monotonic: Callable[[], float]) -> None:
        self.name, self.base_url, self.timeout_s = name, base_url.rstrip("/"), timeout_s
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)
        self.cache: TtlCache[tuple[str, tuple[tuple[str, str], ...]], IntensitySeries] = TtlCache(
            cache_ttl_s, monotonic)

    def get(self, path: str, params: dict[str, str],
            parse: Callable[[str, str], IntensitySeries]) -> IntensitySeries:
        """The parsed answer to ``GET path?params``, from the cache while it is fresh.

        Raises:
            Unavailable: no answer in time, no connection, or a status other than 200.
            InvalidInput: the answer is not what ``parse`` expects.
        """
        key = (path, tuple(sorted(params.items())))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        url = self.base_url + path
        try:
            r = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{self.name}: no answer from {url} within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"{self.name}: cannot reach {url}: {exc}") from exc
        if r.status_code != 200:
            body = " ".join(r.text[:SNIPPET].split())
            raise Unavailable(f"{self.name}: {url} answered HTTP {r.status_code}: {body}")
        result = parse(r.text, str(r.url))
        self.cache.put(key, result)
        return result

    def close(self) -> None:
        self._http.close()


class _LiveSource:
    """Shared life cycle: close the HTTP client, or use as a context manager."""

    _service: _Service

    def close(self) -> None:
        """Release the HTTP connections."""
        self._service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class GbCarbonIntensityApi(_LiveSource):
    """Great Britain's intensity from the GB Carbon Intensity API: ``actual`` where the API
    has it, else its ``forecast`` (the series' source says how many half-hours)."""

    ZONE = "GB"

    def __init__(self, base_url: str = GB_API_URL, timeout_s: float = 10.0, cache_ttl_s: float = 300.0,
                 max_span_s: int = 14 * 86_400, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._service = _Service("GB Carbon Intensity API", base_url, timeout_s, cache_ttl_s,
                                 {"Accept": "application/json"}, monotonic)
        self._max_span_s = max_span_s

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """GB's half-hourly intensity covering [start, end).

        Raises:
            Unavailable: a zone other than GB, the service fails, or its answer does not
                cover the span.
            InvalidInput: naive or reversed times, or a malformed answer.
        """
        if zone != self.ZONE:
            raise Unavailable(f"the GB Carbon Intensity API covers only GB, not {zone!r}")
        a, b = _grid_span(start, end, 1800)
        parts = [self._service.get(f"/intensity/{_minute(x)}/{_minute(y)}", {}, parse_gb_api_json)
                 for x, y in _chunks(a, b, self._max_span_s)]
        forecasts = any("forecast" in p.source for p in parts)
        note = "; some half-hours are forecasts, not actuals" if forecasts else ""
        merged = merge_series(parts, f"live:{self._service.base_url} (GB Carbon Intensity API{note})")
        return _covering(merged, start, end, self._service.name)


class ElectricityMapsApi(_LiveSource):
    """Any zone's hourly intensity from Electricity Maps: ``history`` for spans within the
    last 24 hours (by ``clock``), ``past-range`` otherwise, split into ``max_span_s`` pieces."""

    def __init__(self, token: str, base_url: str = EM_API_URL, timeout_s: float = 10.0,
                 cache_ttl_s: float = 300.0, max_span_s: int = 10 * 86_400, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._service = _Service("Electricity Maps API", base_url, timeout_s, cache_ttl_s,
                                 {"auth-token": token, "Accept": "application/json"}, monotonic)
        self._max_span_s = max_span_s
        self._clock: Clock = clock or SystemClock()

    def history(self, zone: str) -> IntensitySeries:
        """The zone's last 24 hours.

        Raises:
            Unavailable: the service fails (an unknown zone is its 4xx answer).
            InvalidInput: a malformed answer.
        """
        return self._service.get("/v3/carbon-intensity/history", {"zone": zone}, parse_em_api_json)

    def intensity(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The zone's hourly intensity covering [start, end).

        Raises:
            Unavailable: the service fails or its answer does not cover the span.
            InvalidInput: naive or reversed times, or a malformed answer.
        """
        a, b = _grid_span(start, end, 3600)
        if a >= self._clock.now() - timedelta(hours=24):
            s = self.history(zone)
        else:
            parts = [self._service.get("/v3/carbon-intensity/past-range",
                                       {"zone": zone, "start": _second(x), "end": _second(y)},
                                       parse_em_api_json)
                     for x, y in _chunks(a, b, self._max_span_s)]
            label = f"{self._service.base_url}/v3/carbon-intensity/past-range ({len(parts)} requests)"
            s = merge_series(parts, parts[0].source if len(parts) == 1 else label)
        if s.zone != zone:
            raise InvalidInput([Problem("zone", "the answer is for another zone", s.zone, zone, s.source)])
        live = IntensitySeries(s.zone, s.starts, s.values, s.step_s, f"live:{s.source} (Electricity Maps)")
        return _covering(live, start, end, self._service.name)


def _grid_span(start: datetime, end: datetime, step_s: int) -> tuple[datetime, datetime]:
    """[start, end) widened to whole steps of the service's grid."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise InvalidInput([Problem("span", "need UTC-aware times with start < end",
                                    f"[{start.isoformat()}, {end.isoformat()})", "start < end")])
    a = math.floor((start - EPOCH).total_seconds() / step_s) * step_s
    b = math.ceil((end - EPOCH).total_seconds() / step_s) * step_s
    return EPOCH + timedelta(seconds=a), EPOCH + timedelta(seconds=b)


def _chunks(a: datetime, b: datetime, max_span_s: int) -> list[tuple[datetime, datetime]]:
    step = timedelta(seconds=max_span_s)
    out, x = [], a
    while x < b:
        out.append((x, min(x + step, b)))
        x += step
    return out


def _covering(s: IntensitySeries, start: datetime, end: datetime, name: str) -> IntensitySeries:
    if not s.covers(start, end):
        raise Unavailable(f"{name} answered with data from {s.start.isoformat()} to {s.end.isoformat()}, "
                          f"which does not cover [{start.isoformat()}, {end.isoformat()})")
    return s.slice(start, end)


def _minute(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _second(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
