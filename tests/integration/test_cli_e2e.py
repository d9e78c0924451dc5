"""The issue's "done when" checks, through the real CLI and a real ``accord up``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import AccordProcess

# One worker runs the module under pytest-xdist: one server (the module's fixture) for all its tests.
pytestmark = pytest.mark.xdist_group("cli-e2e")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccordProcess]:
    proc = AccordProcess(tmp_path_factory.mktemp("e2e"))
    proc.start()
    yield proc
    proc.stop()


def test_hello_runs_and_its_story_is_shown(server: AccordProcess) -> None:
    sub = server.cli("submit", "--wait", "--json", "--", "python", "-c", "print('hello')")
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)
    assert job["state"] == "completed"
    logs = server.cli("logs", job["id"])
    assert logs.stdout == "hello\n"
    shown = json.loads(server.cli("show", "--json", job["id"], check=True).stdout)
    assert [e["after"] for e in shown["story"] if e["kind"] != "note"] == [
        "submitted", "placed", "dispatched", "running", "completed"]
    assert shown["outcome"]["exit_code"] == 0
    text = server.cli("show", job["id"], check=True).stdout
    assert "story:" in text and "Placed at" in text


def test_script_file_and_listing(server: AccordProcess, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho from-script $CUDA_VISIBLE_DEVICES\n")
    sub = server.cli("submit", "--gpus", "2", "--wait", "--json", str(script))
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)
    assert server.cli("logs", job["id"]).stdout.startswith("from-script ")
    listing = server.cli("jobs").stdout
    assert job["id"] in listing and "completed" in listing


def test_cancel_a_running_job(server: AccordProcess) -> None:
    job = json.loads(server.cli("submit", "--json", "--", "sleep", "300", check=True).stdout)
    server.cli("cancel", job["id"], check=True)
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = json.loads(server.cli("show", "--json", job["id"], check=True).stdout)["state"]
        if state == "cancelled":
            break
        time.sleep(0.3)
    assert state == "cancelled"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["submit", "--gpus", "100000", "--", "true"], "gpus: more GPUs than any pool has"),
        (["submit", "--time-limit", "soon", "--", "true"], "time_limit: is not a valid time limit"),
        (["submit", "--gpu-model", "TPU", "--", "true"], "gpu_model: names an unknown GPU model"),
        (["show", "no-such-job"], "no job 'no-such-job'"),
        (["submit"], "command: nothing to run"),
        (["submit", "--gpus", "two", "--", "true"], "argument --gpus: must be a whole number (got 'two'"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(
    server: AccordProcess, args: list[str], fragment: str
) -> None:
    result = server.cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_server_down_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "accord", "jobs", "--server",
                             "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "cannot reach Accord at http://127.0.0.1:9" in result.stderr


def test_broken_federation_file(tmp_path: Path) -> None:
    bad = tmp_path / "f.toml"
    bad.write_text('[federation]\nname = "x"\nreference_unit = "u"\n'
                   '[[sites]]\nid = "a"\nname = "A"\npartner = "nobody"\ngrid_zone = "GB"\n'
                   'pue = 1.1\nbackend = "local"\n')
    result = subprocess.run([sys.executable, "-m", "accord", "validate", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{bad}:7: sites[0].partner: names an unknown partner (got 'nobody'" in result.stderr
    assert f"{bad}:4: sites[0].pools: a site needs at least one GPU pool" in result.stderr
    up = subprocess.run([sys.executable, "-m", "accord", "up", "--federation", str(bad),
                         "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                        timeout=60)
    assert up.returncode == 2 and "Traceback" not in up.stderr


def test_second_accord_up_on_the_same_data_dir_is_refused(server: AccordProcess) -> None:
    other = subprocess.run([sys.executable, "-m", "accord", "up", "--port", "1"],
                           env=server.env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 2
    assert "another 'accord up'" in other.stderr
