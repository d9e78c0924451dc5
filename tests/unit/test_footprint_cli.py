"""`accord show` prints a finished job's energy and emissions; `accord emissions` totals them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accord import cli
from accord.domain.errors import NotFound

JOB: dict[str, Any] = {
    "id": "j1", "state": "completed", "reason": "completed", "site": "bristol", "pool": "h100",
    "agreement": None, "spec": {"name": "train", "command": ["x"], "gpus": 2, "gpu_model": None},
    "outcome": {"exit_code": 0, "gpu_seconds": 7200.0, "started_at": "2026-11-02T09:00:00+00:00",
                "ended_at": "2026-11-02T10:00:00+00:00"},
    "story": [],
}
FOOTPRINT: dict[str, Any] = {
    "recorded": True, "energy_kwh": 2.805, "energy_basis": "model", "emissions_g": 561.0,
    "emissions_kg": 0.561, "mean_intensity_g_per_kwh": 200.0,
    "intensity_source": "profile: GB month x hour means"}
TOTALS: dict[str, Any] = {"group": "site", "period": "2026-11",
          "totals": [{"key": "bristol", "jobs": 2, "gpu_hours": 4.0, "energy_kwh": 5.61,
                      "emissions_kg": 1.122, "energy_unknown": 0, "emissions_unknown": 1}],
          "total": {"jobs": 2, "gpu_hours": 4.0, "energy_kwh": 5.61, "emissions_kg": 1.122,
                    "energy_unknown": 0, "emissions_unknown": 1}}


class FakeClient:
    """Answers the two calls `show` and `emissions` make; records what was asked."""

    def __init__(self, job: dict[str, Any], footprint: dict[str, Any] | None) -> None:
        self._job = job
        self._footprint = footprint
        self.asked: list[tuple[str, Any]] = []

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._job)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.asked.append((path, kwargs.get("params")))
        if path.endswith("/footprint"):
            if self._footprint is None:
                raise NotFound("no such route")
            return self._footprint
        return TOTALS


def run(argv: list[str], client: FakeClient) -> None:
    args = cli.build_parser().parse_args(argv)
    assert cli._remote(args, [], client) == 0


def test_show_prints_energy_and_emissions(capsys: pytest.CaptureFixture[str]) -> None:
    run(["show", "j1"], FakeClient(JOB, FOOTPRINT))
    out = capsys.readouterr().out
    assert "  energy:   2.805 kWh (model, PUE included)" in out
    assert ("  emissions: 561 g CO2eq (mean 200.0 g/kWh; profile: GB month x hour means)"
            in out)


def test_show_scales_small_and_large_figures(capsys: pytest.CaptureFixture[str]) -> None:
    small = {**FOOTPRINT, "energy_kwh": 0.000976, "emissions_g": 0.0661}
    run(["show", "j1"], FakeClient(JOB, small))
    out = capsys.readouterr().out
    assert "energy:   0.976 Wh" in out and "emissions: 0.0661 g CO2eq" in out
    large = {**FOOTPRINT, "energy_kwh": 12345.678, "emissions_g": 2_469_135.6}
    run(["show", "j1"], FakeClient(JOB, large))
    out = capsys.readouterr().out
    assert "energy:   12,345.678 kWh" in out and "emissions: 2,469.136 kg CO2eq" in out


def test_show_says_why_emissions_are_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    unknown = {**FOOTPRINT, "emissions_g": None, "emissions_kg": None,
               "intensity_source": "unavailable: no carbon source answered for KR"}
    run(["show", "j1"], FakeClient(JOB, unknown))
    assert "  emissions: unknown — unavailable: no carbon source answered for KR" in (
        capsys.readouterr().out)


def test_show_of_a_running_job_or_an_older_server_has_no_footprint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    running = FakeClient({**JOB, "state": "running", "outcome": None}, FOOTPRINT)
    run(["show", "j1"], running)
    assert running.asked == [] and "energy" not in capsys.readouterr().out
    run(["show", "--json", "j1"], FakeClient(JOB, None))  # 404: the route is not there
    assert json.loads(capsys.readouterr().out)["footprint"] is None


def test_emissions_table(capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient(JOB, FOOTPRINT)
    run(["emissions", "--group", "site", "--period", "2026-11"], client)
    assert client.asked == [("/api/v1/emissions", {"group": "site", "period": "2026-11"})]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "emissions by site, 2026-11 (a job counts in the month it started):"
    assert lines[2].split() == ["bristol", "2", "4.00", "5.610", "1.122", "1"]
    assert lines[3].split() == ["TOTAL", "2", "4.00", "5.610", "1.122", "1"]
