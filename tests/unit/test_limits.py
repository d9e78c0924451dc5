"""Every count, size and duration of a federation file has a maximum (issue 18:
``gpus = 99999999999999999999`` in a pool passed ``accord validate``, and a job of a million
GPUs then made the local backend list every index until the kernel killed the server).

Each bound of :mod:`accord.domain.federation.limits` is refused one over, naming the field,
the value and the maximum; the table of ``docs/federation-format.md`` ("Limits") is the
declaration's, row for row.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accord import cli
from accord.adapters.federation_file import load_federation, parse_federation_text
from accord.domain.errors import InvalidInput
from accord.domain.federation import limits as lim
from accord.domain.federation.schema import parse_federation
from accord.domain.fieldreader import LIST_ITEMS, TABLES, TEXT_LENGTH
from tests.conftest import ROOT, SMALL_FEDERATION

Doc = dict[str, Any]
BASE: Doc = tomllib.loads(SMALL_FEDERATION)


def _tables(n: int, make: Callable[[int], Doc]) -> list[Doc]:
    return [make(i) for i in range(n)]


def _over(b: lim.Bound) -> int:
    return b.maximum + 1


def _set(path: str, value: Callable[[], object]) -> Callable[[Doc], None]:
    """Set the dotted ``path`` (``sites.0.name``) of a document to ``value()``."""

    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        node[int(last) if last.isdigit() else last] = value()

    return change


SITE = {"id": "s", "name": "S", "partner": "uk", "grid_zone": "GB", "pue": 1.1, "backend": "local",
        "pools": [{"id": "p", "gpu_model": "H100", "gpus": 1, "power_w": 700}]}
POOL = {"gpu_model": "H100", "gpus": 1, "power_w": 700}

#: Per bound: how to break it one over, and where the problem must be reported.
CASES: dict[lim.Bound, tuple[Callable[[Doc], None], str]] = {
    lim.TEXT: (_set("sites.0.name", lambda: "n" * _over(lim.TEXT)), "sites[0].name"),
    lim.PATH: (_set("sites.0.local", lambda: {"workdir": "/" + "w" * lim.PATH.maximum}),
               "sites[0].local.workdir"),
    lim.THEME: (_set("federation.themes", lambda: ["t" * _over(lim.THEME)]), "federation.themes[0]"),
    lim.THEMES: (_set("federation.themes", lambda: [f"t{i}" for i in range(_over(lim.THEMES))]),
                 "federation.themes"),
    lim.GPU_MODELS: (_set("gpu_models", lambda: _tables(_over(lim.GPU_MODELS), lambda i: {"name": f"m{i}"})),
                     "gpu_models"),
    lim.GPU_MODEL_NAME: (_set("gpu_models.0.name", lambda: "m" * _over(lim.GPU_MODEL_NAME)),
                         "gpu_models[0].name"),
    lim.MEMORY_GB: (_set("gpu_models.0.memory_gb", lambda: _over(lim.MEMORY_GB)), "gpu_models[0].memory_gb"),
    lim.TDP_W: (_set("gpu_models.0.tdp_w", lambda: _over(lim.TDP_W)), "gpu_models[0].tdp_w"),
    lim.PEAK_TFLOPS: (_set("gpu_models.0.peak_tflops", lambda: _over(lim.PEAK_TFLOPS)),
                      "gpu_models[0].peak_tflops"),
    lim.RATES: (_set("exchange_rates", lambda: _tables(_over(lim.RATES), lambda i: {})), "exchange_rates"),
    lim.UNITS_PER_GPU_HOUR: (
        _set("exchange_rates.0.units_per_gpu_hour", lambda: _over(lim.UNITS_PER_GPU_HOUR)),
        "exchange_rates[0].units_per_gpu_hour"),
    lim.PARTNERS: (_set("agreements.0.parties", lambda: ["uk"] * _over(lim.PARTNERS)),
                   "agreements[0].parties"),
    lim.INSTITUTIONS: (_set("institutions", lambda: _tables(_over(lim.INSTITUTIONS), lambda i: {})),
                       "institutions"),
    lim.SITES: (_set("sites", lambda: _tables(_over(lim.SITES), lambda i: {**SITE, "id": f"s{i}"})), "sites"),
    lim.POOLS: (_set("sites.0.pools", lambda: _tables(_over(lim.POOLS), lambda i: {**POOL, "id": f"p{i}"})),
                "sites[0].pools"),
    lim.POOL_GPUS: (_set("sites.0.pools.0.gpus", lambda: 99999999999999999999), "sites[0].pools[0].gpus"),
    lim.POWER_W: (_set("sites.0.pools.0.power_w", lambda: _over(lim.POWER_W)), "sites[0].pools[0].power_w"),
    lim.PUE: (_set("sites.0.pue", lambda: 3.5), "sites[0].pue"),
    lim.AGREEMENTS: (_set("agreements", lambda: _tables(_over(lim.AGREEMENTS), lambda i: {})), "agreements"),
    lim.QUOTAS: (_set("agreements.0.quotas", lambda: _tables(_over(lim.QUOTAS), lambda i: {})),
                 "agreements[0].quotas"),
    lim.QUOTA_UNITS: (_set("agreements.0.quotas.0.units", lambda: _over(lim.QUOTA_UNITS)),
                      "agreements[0].quotas[0].units"),
    lim.FLEXIBILITY_H: (_set("agreements.0.default_flexibility_hours", lambda: _over(lim.FLEXIBILITY_H)),
                        "agreements[0].default_flexibility_hours"),
    lim.COUNTRIES: (_set("agreements.0.residency_countries", lambda: ["GB"] * _over(lim.COUNTRIES)),
                    "agreements[0].residency_countries"),
    lim.RULES: (_set("compliance.large_runs", lambda: _tables(_over(lim.RULES), lambda i: {})),
                "compliance.large_runs"),
    lim.RULE_GPU_HOURS: (_set("compliance.large_runs", lambda: [{"id": "r", "gpu_hours": 10**12 + 1}]),
                         "compliance.large_runs[0].gpu_hours"),
    lim.RULE_FLOP: (_set("compliance.large_runs", lambda: [{"id": "r", "flop": 1e31}]),
                    "compliance.large_runs[0].flop"),
    lim.ALLOCATION_THRESHOLD: (_set("allocations.hold_at", lambda: 11), "allocations.hold_at"),
    lim.WEIGHT: (_set("federation.placement.wait", lambda: 101), "federation.placement.wait"),
    lim.SLOT_MINUTES: (_set("federation.placement.slot_minutes", lambda: 480),
                       "federation.placement.slot_minutes"),
    lim.WITNESSES: (_set("witnessing.witnesses", lambda: _tables(_over(lim.WITNESSES), lambda i: {})),
                    "witnessing.witnesses"),
    lim.WITNESS_INTERVAL_S: (_set("witnessing.interval_s", lambda: _over(lim.WITNESS_INTERVAL_S)),
                             "witnessing.interval_s"),
    lim.WITNESS_TIMEOUT_S: (_set("witnessing.timeout_s", lambda: _over(lim.WITNESS_TIMEOUT_S)),
                            "witnessing.timeout_s"),
}


def _numbers(b: lim.Bound) -> set[str]:
    """How a message may write the maximum."""
    m = b.maximum
    return {f"{m:,}", str(m), f"{float(m):g}"}


def test_every_bound_has_a_case() -> None:
    assert set(CASES) | {lim.FILE_BYTES} == set(lim.BOUNDS)


@pytest.mark.parametrize("bound", list(CASES), ids=lambda b: b.what[:40])
def test_each_bound_is_refused_one_over_naming_the_field_and_the_maximum(bound: lim.Bound) -> None:
    assert parse_federation(copy.deepcopy(BASE))        # the base is valid
    doc = copy.deepcopy(BASE)
    change, where = CASES[bound]
    change(doc)
    with pytest.raises(InvalidInput) as info:
        parse_federation(doc)
    found = [p for p in info.value.problems if p.where == where]
    assert found, [p.render() for p in info.value.problems]
    text = found[0].render()
    assert any(n in text for n in _numbers(bound)), text
    assert found[0].got is not None, text


@pytest.mark.parametrize("bound", [lim.POOL_GPUS, lim.QUOTA_UNITS, lim.SITES, lim.TEXT],
                         ids=lambda b: b.what[:20])
def test_each_bound_admits_its_maximum(bound: lim.Bound) -> None:
    doc = copy.deepcopy(BASE)
    at_most = {
        lim.POOL_GPUS: _set("sites.0.pools.0.gpus", lambda: lim.POOL_GPUS.maximum),
        lim.QUOTA_UNITS: _set("agreements.0.quotas.0.units", lambda: lim.QUOTA_UNITS.maximum),
        lim.SITES: _set("sites", lambda: _tables(lim.SITES.maximum, lambda i: {**SITE, "id": f"s{i}"})),
        lim.TEXT: _set("sites.0.name", lambda: "n" * lim.TEXT.maximum),
    }[bound]
    at_most(doc)
    assert parse_federation(doc)


def test_a_pool_of_too_many_gpus_fails_accord_validate_naming_field_value_and_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(SMALL_FEDERATION.replace("gpus = 4", "gpus = 99999999999999999999"))
    with pytest.raises(SystemExit) as info:
        cli.main(["validate", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"{path}:55: sites[0].pools[0].gpus: is out of range (got 99999999999999999999, "
                   "allowed a whole number from 1 to 1,000,000)")


def test_a_file_over_its_size_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(SMALL_FEDERATION.encode() + b"#" * lim.FILE_BYTES.maximum)
    with pytest.raises(InvalidInput) as info:
        load_federation(path)
    assert [(p.where, p.message, p.allowed) for p in info.value.problems] == [
        ("federation", "file is too large", "at most 10,000,000 bytes")]
    with pytest.raises(InvalidInput) as again:
        parse_federation_text(SMALL_FEDERATION + "é" * (lim.FILE_BYTES.maximum // 2))
    assert again.value.problems[0].message == "file is too large"


@pytest.mark.parametrize("day", ["1969-12-31", "9000-01-01", "9999-12-31"])
def test_dates_stay_inside_the_federations_calendar(day: str) -> None:
    text = SMALL_FEDERATION.replace("end = 2027-12-31", f"end = {day}")
    with pytest.raises(InvalidInput) as info:
        parse_federation_text(text)
    assert [p.render() for p in info.value.problems] == [
        f"<federation>:76: agreements[0].end: is out of range (got '{day}', allowed a date from "
        f"1970-01-01 to 8999-12-31)"]


# ---------------------------------------------------------------- the docs
def _limits_table(doc: str) -> dict[str, str]:
    section = doc.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.MULTILINE)
    return {what: maximum for what, maximum in rows if what not in ("Limit", "---")}


def test_the_docs_list_every_bound_as_declared() -> None:
    doc = (ROOT / "docs" / "federation-format.md").read_text()
    assert _limits_table(doc) == {b.what: b.shown for b in lim.BOUNDS}
    prose = " ".join(doc.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0].split())
    for fact in (f"from {lim.EARLIEST_DAY} to {lim.LATEST_DAY}", f"{TEXT_LENGTH:,} characters",
                 f"{LIST_ITEMS:,} items", f"{TABLES:,} tables"):
        assert fact in prose, fact



# Each list of a [compliance] rule is bounded where it is read, not only the rules' count.
COMPLIANCE_LISTS = [
    ("denied_parties", lambda: _tables(_over(lim.RULES), lambda i: {"id": f"d{i}", "countries": ["KP"]}),
     "compliance.denied_parties", lim.RULES),
    ("denied_parties", lambda: [{"id": "d", "countries": ["KP"] * _over(lim.COUNTRIES)}],
     "compliance.denied_parties[0].countries", lim.COUNTRIES),
    ("residency", lambda: [{"id": "r", "countries": ["GB"] * _over(lim.COUNTRIES)}],
     "compliance.residency[0].countries", lim.COUNTRIES),
    ("large_runs", lambda: [{"id": "l", "hosts": ["uk"] * _over(lim.PARTNERS), "gpu_hours": 1}],
     "compliance.large_runs[0].hosts", lim.PARTNERS),
    ("denied_parties", lambda: [{"id": "d", "institutions": ["bristol"] * _over(lim.INSTITUTIONS)}],
     "compliance.denied_parties[0].institutions", lim.INSTITUTIONS),
]


@pytest.mark.parametrize(("kind", "rules", "where", "bound"), COMPLIANCE_LISTS,
                         ids=[c[2] for c in COMPLIANCE_LISTS])
def test_each_compliance_list_is_refused_one_over(
        kind: str, rules: Callable[[], list[Doc]], where: str, bound: lim.Bound) -> None:
    doc = copy.deepcopy(BASE)
    doc["compliance"] = {kind: rules()}
    with pytest.raises(InvalidInput) as info:
        parse_federation(doc)
    found = [p for p in info.value.problems if p.where == where]
    assert found, [p.render() for p in info.value.problems][:5]
    assert any(n in found[0].render() for n in _numbers(bound)), found[0].render()
