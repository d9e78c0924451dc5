"""What the kernel's loop is fed is what the Python paths compute, to the bit: the perfect
forecast's arrays (``PerfectForecast.arrays``) are the broker's context builder's forecasts
(``build_context`` → ``ZoneForecast``), on real irregular, 15-minute and hourly series; the
loop's microsecond rounding is a ``datetime``'s; the ledger's month per day is ``strftime``'s."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.carbon.files import shared_data_dir
from accord.domain.placement.records import MAX_START_SLOTS
from accord.domain.placement.table import forecast_arrays, zones
from accord.service.placement_context import RUN_HORIZON_S, build_context
from accord.sim.accounting import SimLedger
from accord.sim.forecast import PerfectForecast
from accord.sim.native_run import kernel
from accord.sim.runner import load_carbon
from tests.sim.helpers import T0_S, federation, flat

FED = federation([("a", "uk", "GB", 8), ("b", "fr", "FR", 8), ("c", "de", "DE", 8)])
CARBON, _ = load_carbon(shared_data_dir() / "carbon", ["GB", "FR", "DE"], flat("GB", 1.0).start,
                        flat("GB", 1.0, hours=24 * 120).end)


@settings(max_examples=60, deadline=None)
@given(st.floats(-3 * 86_400, 130 * 86_400), st.sampled_from([1800, 3600, 900]), st.booleans())
def test_the_perfect_forecast_windows_are_the_context_builders(offset: float, slot: int,
                                                                compiled: bool) -> None:
    at = datetime.fromtimestamp(T0_S + offset, UTC)
    source = PerfectForecast(CARBON, 2 * slot)
    fed = FED if slot == FED.placement.slot_s else _with_slot(slot)
    slow = forecast_arrays(fed, build_context(fed, source, at))
    names = zones(fed)
    info, secs, vals, least = source.series_arrays(names)
    horizon = MAX_START_SLOTS * slot + RUN_HORIZON_S
    fast = (np.zeros((len(names), 4)), np.zeros((len(names), 400)), np.zeros((len(names), 401)))
    scratch = np.empty((2, horizon // least + 8))
    for z in range(len(names)):
        kernel(compiled).forecast_window(z, (at.timestamp() // slot) * slot, slot, horizon, 2 * slot, info,
                                         secs, vals, scratch, *fast)
    assert np.array_equal(fast[0], slow[0])
    for z in range(len(names)):
        n = int(slow[0][z, 2])
        assert np.array_equal(fast[1][z, :n], slow[1][z, :n])
        assert np.array_equal(fast[2][z, :n + 1], slow[2][z, :n + 1])


def _with_slot(slot: int):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(FED, placement=replace(FED.placement, slot_s=slot))


@settings(max_examples=300, deadline=None)
@given(st.floats(1.4e9, 1.9e9))
def test_the_loops_microseconds_are_a_datetimes(x: float) -> None:
    out = np.empty(1)
    kernel(False).deadlines(np.array([x]), np.array([0.0]), 0.0, out)
    assert out[0] == datetime.fromtimestamp(x, UTC).timestamp()
    kernel(True).deadlines(np.array([x]), np.array([0.0]), 0.0, out)
    assert out[0] == datetime.fromtimestamp(x, UTC).timestamp()


@given(st.floats(1.4e9, 1.9e9))
def test_the_ledgers_month_is_strftimes(t: float) -> None:
    ledger = SimLedger(FED)
    for x in (t, t + 0.4, np.floor(t / 86_400) * 86_400 + 86_399.9999999):
        assert ledger._month(x) == datetime.fromtimestamp(x, UTC).strftime("%Y-%m")


def test_the_kernels_cache_name_changes_with_any_function_or_constant_it_compiles() -> None:
    """numba's disk cache checks only the compiled function's own file: the kernel's names
    carry a digest of every function and constant compiled into them instead."""
    from accord.sim.native import _sources_stamp

    def a(x: int) -> int:
        return x + 1

    def b(x: int) -> int:
        return x + 2

    base = _sources_stamp({"f": (a, {})}, {"K": 3, "T": (1, 2)})
    assert base == _sources_stamp({"f": (a, {})}, {"K": 3, "T": (1, 2), "g": a})
    assert base != _sources_stamp({"f": (b, {})}, {"K": 3, "T": (1, 2)})
    assert base != _sources_stamp({"f": (a, {})}, {"K": 4, "T": (1, 2)})
    assert base != _sources_stamp({"f": (a, {"cache": False})}, {"K": 3, "T": (1, 2)})
