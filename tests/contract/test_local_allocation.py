"""The local backend's GPU allocation works in proportion to the job, not to the pool (issue
18: a job of a million GPUs made it list every index of a huge pool until the kernel killed
the server at 23 GB). The pools here are larger than a federation file allows, so the test
shows the allocation never depends on the pool's size."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from accord.adapters.local_backend import LocalBackend
from accord.domain.errors import Busy
from accord.domain.federation.model import Federation
from accord.domain.jobs.site import RemoteState
from tests.contract.backend_suite import BackendHarness, make_job, wait_final

HUGE = 2_000_000
T = TypeVar("T")


def peak_bytes(run: Callable[[], T]) -> tuple[T, int]:
    """What ``run()`` returns and the most memory Python held for it at once."""
    tracemalloc.start()
    try:
        return run(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def huge(small_federation: Federation, tmp_path: Path) -> Iterator[BackendHarness]:
    site = small_federation.site("bristol")
    site = replace(site, pools=(replace(site.pools[0], gpus=HUGE),))
    h = BackendHarness(LocalBackend(site, tmp_path), "h100", HUGE, timeout_s=30)
    yield h
    for ref in [p.name for p in (tmp_path / "bristol").iterdir()]:   # stop what the test started
        wait_final(h, ref, until=lambda s: s.state is not RemoteState.PENDING)
        h.backend.cancel(ref)
        wait_final(h, ref)


def test_a_small_job_on_a_huge_pool_allocates_only_its_gpus(huge: BackendHarness) -> None:
    first, peak = peak_bytes(lambda: huge.backend.submit(make_job(huge, "a", ["sleep", "30"], gpus=3)))
    assert first.gpu_indices == (0, 1, 2)
    assert peak < 1_000_000, f"{peak} bytes to allocate 3 GPUs of {HUGE:,}"
    second = huge.backend.submit(make_job(huge, "b", ["true"], gpus=2))
    assert second.gpu_indices == (3, 4)
    wait_final(huge, second.backend_ref)
    third = huge.backend.submit(make_job(huge, "c", ["sleep", "30"], gpus=2))
    assert third.gpu_indices == (3, 4)       # the lowest free indices again
    assert huge.backend.loads()["h100"].free_gpus == HUGE - 5


def test_a_job_larger_than_the_free_gpus_is_busy_without_listing_the_pool(huge: BackendHarness) -> None:
    huge.backend.submit(make_job(huge, "a", ["sleep", "30"], gpus=10))

    def too_many() -> str:
        with pytest.raises(Busy) as info:
            huge.backend.submit(make_job(huge, "b", ["true"], gpus=HUGE))
        return str(info.value)

    message, peak = peak_bytes(too_many)
    assert message == f"pool bristol/h100 has {HUGE - 10} free GPUs, the job needs {HUGE}"
    assert peak < 1_000_000, f"{peak} bytes to refuse a job of {HUGE:,} GPUs"
