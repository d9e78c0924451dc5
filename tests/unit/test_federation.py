"""The federation file: the demo loads, and every kind of mistake is located and explained."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.adapters.federation_file import load_federation, locate_lines, parse_federation_text
from accord.domain.errors import InvalidInput, NotFound
from accord.domain.federation.model import Federation
from tests.conftest import SMALL_FEDERATION


def test_demo_federation_has_the_seed_partnerships(demo_federation: Federation) -> None:
    assert {p.id for p in demo_federation.partners} == {"uk", "fr", "ca", "kr", "us"}
    assert {a.id for a in demo_federation.agreements} == {"uk-ca", "uk-fr", "uk-kr", "uk-us"}
    isambard = demo_federation.site("isambard-ai")
    assert isambard.total_gpus == 5448
    assert {s.backend.value for s in demo_federation.sites} == {"local"}


def test_rate_in_force_depends_on_the_day(small_federation: Federation) -> None:
    before = small_federation.rate("A100", datetime(2025, 12, 31, 23, tzinfo=UTC))
    after = small_federation.rate("A100", datetime(2026, 1, 1, 0, tzinfo=UTC))
    assert (before.units_per_gpu_hour, after.units_per_gpu_hour) == (0.6, 0.5)
    with pytest.raises(NotFound, match="no exchange rate for GPU model 'A100' on 2023-06-01"):
        small_federation.rate("A100", datetime(2023, 6, 1, tzinfo=UTC))


def _problems(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_federation_text(text, "f.toml")
    return [p.render() for p in info.value.problems]


def _edit(old: str, new: str) -> str:
    assert old in SMALL_FEDERATION, old
    return SMALL_FEDERATION.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('gpus = 4', 'gpus = -4', "sites[0].pools[0].gpus: must be a whole number (got -4"),
        ('gpus = 4', 'gpus = "four"', "sites[0].pools[0].gpus: must be a whole number (got 'four'"),
        ('gpu_model = "A100"\ngpus = 8', 'gpu_model = "B200"\ngpus = 8',
         "sites[1].pools[0].gpu_model: names an unknown GPU model (got 'B200', allowed H100, A100"),
        ('parties = ["uk", "fr"]', 'parties = ["uk", "de"]',
         "agreements[0].parties: names an unknown partner (got 'de', allowed uk, fr, kr)"),
        ('units = 1000\nper = "year"', 'units = -5\nper = "year"',
         "agreements[0].quotas[0].units: is out of range (got -5"),
        ('units = 1000\nper = "year"', 'units = "lots"\nper = "year"',
         "agreements[0].quotas[0].units: must be a number (got 'lots'"),
        ('per = "year"', 'per = "decade"',
         "agreements[0].quotas[0].per: is not a known value (got 'decade', allowed month, year, "
         "agreement)"),
        ("valid_from = 2026-01-01", "valid_from = 2025-06-01",
         "exchange_rates[2].valid_from: overlaps another rate for the same GPU model"),
        ('sector = "academia"', 'sector = "charity"',
         "institutions[0].sector: is not a known value (got 'charity', allowed academia, "
         "industry, government)"),
        ("pue = 1.1", "pue = 0.7", "sites[0].pue: is out of range (got 0.7, allowed a number "
         "from 1 to 3)"),
        ('country = "GB"', 'country = "Britain"',
         "partners[0].country: is not an ISO 3166-1 alpha-2 code (got 'Britain'"),
        ('backend = "local"', 'backend = "pbs"',
         "sites[0].backend: is not a known value (got 'pbs', allowed local, slurm, agent)"),
        ('backend = "local"', 'backend = "slurm"', "sites[0].backend: a slurm site needs a"),
        ("end = 2027-12-31", "end = 2024-12-31", "agreements[0].end: must not be before start"),
        ('themes = ["climate"]', 'themes = ["poetry"]',
         "agreements[0].themes: names an unknown theme (got 'poetry'"),
        ('id = "paris"', 'id = "bristol"', "sites[1].id: is used 2 times (got 'bristol'"),
        ('id = "paris"', 'id = "Paris Site"', "sites[1].id: is not a valid id (got 'Paris Site'"),
        ('power_w = 700', 'power_w = 700\nwatts = 3', "sites[0].pools[0].watts: unknown field"),
        ('host = "uk"', 'host = "fr"', "agreements[0].quotas[1].host: must differ from requester"),
    ],
)
def test_each_mistake_is_named_with_line_value_and_what_is_allowed(
    old: str, new: str, expected: str
) -> None:
    text = _edit(old, new)
    rendered = _problems(text)
    match = [p for p in rendered if expected in p]
    assert match, f"expected {expected!r} in {rendered}"
    edited_line = SMALL_FEDERATION[: SMALL_FEDERATION.index(old)].count("\n") + 1
    if "watts" in new:
        edited_line += 1
    assert match[0].startswith(f"f.toml:{edited_line}: "), match[0]


def test_all_problems_are_reported_at_once() -> None:
    text = _edit("gpus = 4", "gpus = 0").replace("pue = 1.2", "pue = 9")
    rendered = _problems(text)
    assert len(rendered) == 2
    lines = [int(r.split(":")[1]) for r in rendered]
    assert lines == sorted(lines)


def test_malformed_toml_gives_the_line() -> None:
    rendered = _problems("[federation]\nname = \n")
    assert rendered[0].startswith("f.toml:2: toml: malformed TOML")


def test_missing_file_is_one_clear_problem(tmp_path: object) -> None:
    with pytest.raises(InvalidInput, match="file not found"):
        load_federation("/nonexistent/federation.toml")


def test_locate_lines_handles_nested_arrays_of_tables() -> None:
    lines = locate_lines(SMALL_FEDERATION)
    assert lines["sites[1].pools[0].gpus"] == _line_of(SMALL_FEDERATION, "gpus = 8")
    assert lines["agreements[0].quotas[1].host"] == _line_of(SMALL_FEDERATION, 'host = "uk"')
