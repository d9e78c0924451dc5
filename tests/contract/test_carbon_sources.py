"""The CarbonSource contract, run against every source: built-in profiles, the shared
files, the GB Carbon Intensity and Electricity Maps clients, and the fallback chain.

The live clients talk HTTP to a real server on 127.0.0.1 started here, which answers with
recorded responses (tests/fixtures/carbon) in the services' documented formats.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from accord.adapters.carbon.chain import FallbackChain, Step, standard_chain
from accord.adapters.carbon.files import FileSource, shared_data_dir
from accord.adapters.carbon.live import ElectricityMapsApi, GbCarbonIntensityApi, TtlCache
from accord.adapters.carbon.profiles import ProfileSource
from accord.adapters.clock import FakeClock
from accord.domain.errors import InvalidInput, Unavailable
from accord.ports import CarbonSource

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "carbon"
TOKEN = "test-token-7f3a"
GB_PATH = "/intensity/2021-06-01T10:00Z/2021-06-01T13:00Z"
EM_HISTORY_NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ─── a recorded-response HTTP server ────────────────────────────────────────────────────


@dataclass
class Route:
    status: int
    body: str
    delay_s: float = 0.0


@dataclass
class Recorded:
    """Routes by path and sorted query; every request seen, with its headers."""

    base_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add(self, path: str, fixture: str | None = None, status: int = 200, body: str = "",
            delay_s: float = 0.0) -> None:
        text = (FIX / fixture).read_text(encoding="utf-8") if fixture else body
        self.routes[path] = Route(status, text, delay_s)

    def paths(self) -> list[str]:
        return [p for p, _ in self.seen]


def route_key(raw_path: str) -> str:
    parts = urlsplit(raw_path)
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query)))
    return unquote(parts.path) + (f"?{query}" if query else "")


def handler_for(rec: Recorded) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            key = route_key(self.path)
            rec.seen.append((key, {k.lower(): v for k, v in self.headers.items()}))
            route = rec.routes.get(key, Route(404, '{"error":"no recorded response for ' + key + '"}'))
            time.sleep(route.delay_s)
            body = route.body.encode()
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass   # the client gave up (the timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Recorded]:
    rec = Recorded()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(rec))
    httpd.daemon_threads = True
    rec.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def gb_routes(rec: Recorded) -> None:
    rec.add(GB_PATH, "gb_api_2021-06-01.json")


def em_routes(rec: Recorded) -> None:
    rec.add("/v3/carbon-intensity/history?zone=DE", "em_history_DE.json")
    rec.add("/v3/carbon-intensity/history?zone=XX", "em_error_zone.json", status=404)
    rec.add("/v3/carbon-intensity/past-range?end=2021-06-01T02:00:00Z&start=2021-06-01T00:00:00Z&zone=FR",
            "em_past_range_FR_a.json")
    rec.add("/v3/carbon-intensity/past-range?end=2021-06-01T04:00:00Z&start=2021-06-01T02:00:00Z&zone=FR",
            "em_past_range_FR_b.json")


# ─── the contract ───────────────────────────────────────────────────────────────────────


@dataclass
class Case:
    source: CarbonSource
    zone: str
    start: datetime
    end: datetime
    close: Callable[[], None] = lambda: None


class CarbonSourceContract:
    """What every CarbonSource promises. Subclasses provide the ``case`` fixture."""

    def test_answer_covers_the_span_and_names_its_source(self, case: Case) -> None:
        s = case.source.intensity(case.zone, case.start, case.end)
        assert s.zone == case.zone and s.covers(case.start, case.end)
        assert all(v >= 0 for v in s.values) and s.source
        assert all(t.utcoffset() == timedelta(0) for t in s.starts)

    def test_unknown_zone_is_unavailable(self, case: Case) -> None:
        with pytest.raises(Unavailable):
            case.source.intensity("XX", case.start, case.end)

    def test_naive_or_reversed_times_are_invalid(self, case: Case) -> None:
        with pytest.raises(InvalidInput):
            case.source.intensity(case.zone, case.start.replace(tzinfo=None), case.end)
        with pytest.raises(InvalidInput):
            case.source.intensity(case.zone, case.end, case.start)

    def test_a_span_it_cannot_cover_is_unavailable_not_wrong(self, case: Case) -> None:
        far = utc(1999, 1, 1)
        try:
            s = case.source.intensity(case.zone, far, far + timedelta(hours=2))
        except Unavailable:
            return
        assert s.covers(far, far + timedelta(hours=2))


class TestProfileSource(CarbonSourceContract):
    @pytest.fixture
    def case(self) -> Case:
        return Case(ProfileSource(), "KR", utc(2026, 1, 5, 9, 10), utc(2026, 1, 5, 12))


class TestFileSource(CarbonSourceContract):
    @pytest.fixture
    def case(self) -> Case:
        return Case(FileSource.shared(shared_data_dir()), "GB", utc(2020, 6, 1, 10), utc(2020, 6, 2))


class TestGbCarbonIntensityApi(CarbonSourceContract):
    @pytest.fixture
    def case(self, server: Recorded) -> Iterator[Case]:
        gb_routes(server)
        api = GbCarbonIntensityApi(server.base_url, timeout_s=5)
        yield Case(api, "GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 12, 45))
        api.close()


class TestElectricityMapsHistory(CarbonSourceContract):
    @pytest.fixture
    def case(self, server: Recorded) -> Iterator[Case]:
        em_routes(server)
        api = ElectricityMapsApi(TOKEN, server.base_url, timeout_s=5, clock=FakeClock(EM_HISTORY_NOW))
        yield Case(api, "DE", utc(2024, 2, 29, 13), utc(2024, 3, 1, 8, 30))
        api.close()


class TestElectricityMapsPastRange(CarbonSourceContract):
    @pytest.fixture
    def case(self, server: Recorded) -> Iterator[Case]:
        em_routes(server)
        api = ElectricityMapsApi(TOKEN, server.base_url, timeout_s=5, max_span_s=7200,
                                 clock=FakeClock(EM_HISTORY_NOW))
        yield Case(api, "FR", utc(2021, 6, 1), utc(2021, 6, 1, 4))
        api.close()


class TestFallbackChain(CarbonSourceContract):
    @pytest.fixture
    def case(self, server: Recorded) -> Iterator[Case]:
        api = GbCarbonIntensityApi(server.base_url, timeout_s=5)   # no routes: every call 404s
        chain = FallbackChain([Step("file", FileSource.shared(shared_data_dir()))],
                              {"GB": [Step("gb-api", api), Step("file", FileSource.shared(shared_data_dir())),
                                      Step("profile", ProfileSource())]})
        yield Case(chain, "GB", utc(2020, 6, 1, 10), utc(2020, 6, 1, 14))
        api.close()


# ─── the GB Carbon Intensity API client ─────────────────────────────────────────────────


def test_gb_api_request_parse_and_forecast_note(server: Recorded) -> None:
    gb_routes(server)
    with GbCarbonIntensityApi(server.base_url) as api:
        s = api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
    assert server.paths() == [GB_PATH]
    assert s.starts[0] == utc(2021, 6, 1, 10) and s.values == (160.0, 153.0, 147.0, 141.0, 139.0, 137.0)
    assert s.source.startswith(f"live:{server.base_url}") and "forecasts, not actuals" in s.source


def test_gb_api_cache_and_its_expiry(server: Recorded) -> None:
    gb_routes(server)
    clock = [0.0]
    with GbCarbonIntensityApi(server.base_url, cache_ttl_s=60, monotonic=lambda: clock[0]) as api:
        first = api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
        assert api.intensity("GB", utc(2021, 6, 1, 10, 5), utc(2021, 6, 1, 12, 55)).values == first.values
        assert len(server.seen) == 1
        clock[0] = 61.0
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
        assert len(server.seen) == 2


def test_gb_api_splits_long_spans(server: Recorded) -> None:
    server.add("/intensity/2021-06-01T10:00Z/2021-06-01T11:30Z", "gb_api_2021-06-01.json")
    server.add("/intensity/2021-06-01T11:30Z/2021-06-01T13:00Z", "gb_api_2021-06-01.json")
    with GbCarbonIntensityApi(server.base_url, max_span_s=5400) as api:
        s = api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
    assert len(server.seen) == 2 and len(s.values) == 6


def test_gb_api_failures_are_unavailable_with_status_and_body(server: Recorded) -> None:
    server.add(GB_PATH, status=500, body='{"error":{"code":"500 Internal Server Error","message":"db down"}}')
    with GbCarbonIntensityApi(server.base_url) as api, pytest.raises(Unavailable) as e:
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
    assert "answered HTTP 500" in str(e.value) and "db down" in str(e.value)


def test_gb_api_malformed_answer_is_invalid_input(server: Recorded) -> None:
    server.add(GB_PATH, "gb_api_bad.json")
    with GbCarbonIntensityApi(server.base_url) as api, pytest.raises(InvalidInput) as e:
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
    assert e.value.problems[0].source is not None and GB_PATH in e.value.problems[0].source
    server.add(GB_PATH, body="<html>maintenance</html>")
    with GbCarbonIntensityApi(server.base_url) as api, pytest.raises(InvalidInput, match="malformed JSON"):
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))


def test_gb_api_answer_that_does_not_cover_is_unavailable(server: Recorded) -> None:
    server.add("/intensity/2021-06-01T10:00Z/2021-06-01T15:00Z", "gb_api_2021-06-01.json")
    with GbCarbonIntensityApi(server.base_url) as api, pytest.raises(Unavailable, match="does not cover"):
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 15))


def test_timeout_is_unavailable(server: Recorded) -> None:
    server.add(GB_PATH, "gb_api_2021-06-01.json", delay_s=1.0)
    with GbCarbonIntensityApi(server.base_url, timeout_s=0.2) as api, pytest.raises(Unavailable) as e:
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))
    assert "no answer from" in str(e.value) and "within 0.2 s" in str(e.value)


def test_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with GbCarbonIntensityApi(f"http://127.0.0.1:{port}", timeout_s=2) as api, \
            pytest.raises(Unavailable, match="cannot reach"):
        api.intensity("GB", utc(2021, 6, 1, 10), utc(2021, 6, 1, 13))


# ─── the Electricity Maps client ────────────────────────────────────────────────────────


def test_em_history_sends_the_token_and_skips_null_hours(server: Recorded) -> None:
    em_routes(server)
    with ElectricityMapsApi(TOKEN, server.base_url, clock=FakeClock(EM_HISTORY_NOW)) as api:
        s = api.intensity("DE", utc(2024, 3, 1, 7), utc(2024, 3, 1, 11))
    path, headers = server.seen[0]
    assert path == "/v3/carbon-intensity/history?zone=DE" and headers["auth-token"] == TOKEN
    assert s.values == (426.0, 419.0, 397.0) and s.value_at(utc(2024, 3, 1, 9, 30)) == 419.0
    assert "1 hours without data skipped" in s.source and s.source.startswith("live:")


def test_em_past_range_in_pieces(server: Recorded) -> None:
    em_routes(server)
    with ElectricityMapsApi(TOKEN, server.base_url, max_span_s=7200, clock=FakeClock(EM_HISTORY_NOW)) as api:
        s = api.intensity("FR", utc(2021, 6, 1, 0, 30), utc(2021, 6, 1, 3, 30))
    assert [p.split("?")[0] for p in server.paths()] == ["/v3/carbon-intensity/past-range"] * 2
    assert s.values == (31.0, 30.0, 29.0, 33.0) and "2 requests" in s.source


def test_em_errors_never_show_the_token(server: Recorded) -> None:
    em_routes(server)
    with ElectricityMapsApi(TOKEN, server.base_url, clock=FakeClock(EM_HISTORY_NOW)) as api:
        with pytest.raises(Unavailable) as e:
            api.intensity("XX", utc(2024, 3, 1, 7), utc(2024, 3, 1, 11))
        assert "HTTP 404" in str(e.value) and "does not exist" in str(e.value)
        assert TOKEN not in str(e.value) and TOKEN not in repr(api.__dict__)


def test_em_answer_for_another_zone_is_invalid(server: Recorded) -> None:
    server.add("/v3/carbon-intensity/history?zone=FR", "em_history_DE.json")
    with ElectricityMapsApi(TOKEN, server.base_url, clock=FakeClock(EM_HISTORY_NOW)) as api, \
            pytest.raises(InvalidInput, match="another zone"):
        api.intensity("FR", utc(2024, 3, 1, 7), utc(2024, 3, 1, 11))


def test_ttl_cache_limits() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(10, lambda: now[0], max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    now[0] = 10.0
    assert cache.get("b") is None
    off: TtlCache[str, int] = TtlCache(0)
    off.put("a", 1)
    assert off.get("a") is None


# ─── the fallback chain ─────────────────────────────────────────────────────────────────


def test_chain_records_which_source_answered_and_why_others_did_not(server: Recorded) -> None:
    server.add("/intensity/2020-06-01T10:00Z/2020-06-01T14:00Z", status=503, body="Service Unavailable")
    with GbCarbonIntensityApi(server.base_url) as api:
        chain = FallbackChain([Step("profile", ProfileSource())],
                              {"GB": [Step("gb-api", api), Step("file", FileSource.shared(shared_data_dir())),
                                      Step("profile", ProfileSource())]})
        s = chain.intensity("GB", utc(2020, 6, 1, 10), utc(2020, 6, 1, 14))
        assert s.source.startswith("file: ") and s.source.rstrip("]").endswith("Service Unavailable")
        assert "[after: gb-api: GB Carbon Intensity API: " in s.source and "HTTP 503" in s.source
        kr = chain.intensity("KR", utc(2020, 6, 1, 10), utc(2020, 6, 1, 14))
        assert kr.source.startswith("profile: profile:KR annual average") and "[after" not in kr.source


def test_chain_with_nothing_left_lists_every_reason(tmp_path: Path) -> None:
    chain = FallbackChain([Step("file", FileSource({})), Step("profile", ProfileSource({}))])
    with pytest.raises(Unavailable) as e:
        chain.intensity("KR", utc(2020, 6, 1), utc(2020, 6, 2))
    message = str(e.value)
    assert "tried file, profile" in message and "file: no carbon file" in message
    assert "profile: no built-in carbon profile for zone 'KR'" in message


def test_standard_chain_works_offline() -> None:
    s = standard_chain().intensity("CA-QC", utc(2026, 1, 1), utc(2026, 1, 1, 2))
    assert s.values == (30.0, 30.0) and s.source.startswith("profile: profile:CA-QC")
