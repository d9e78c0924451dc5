"""A real Slurm cluster's accounting, converted to SWF by ``accord trace from-sacct``, is a
trace the simulator reads: GPUs, run times and time limits as Slurm recorded them."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from accord.adapters.slurm.backend import SlurmBackend
from accord.cli import main
from accord.domain.jobs.site import RemoteState
from accord.domain.traces.trace import TraceFormat, parse_trace
from tests.contract.backend_suite import BackendHarness, make_job, wait_final
from tests.integration.slurm_testbed import SERIAL, cluster_settings, slurm_federation

pytestmark = [pytest.mark.integration, SERIAL]
FORMAT = "JobID,User,Submit,Start,End,Timelimit,AllocTRES,State"


def accord(*argv: str) -> int:
    """Run the ``accord`` command in process; its exit status."""
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


def settled_sacct(refs: list[str], timeout_s: float = 60.0) -> str:
    """``sacct`` of the jobs ``refs`` once slurmdbd holds all of each record: it fills a
    finished job's record in several messages, and for a moment after the job ends its
    Timelimit can still be empty (seen in about 1 run in 15)."""
    env = {"SLURM_CONF": cluster_settings("isambard").slurm_conf, "PATH": "/usr/bin:/bin", "TZ": "UTC"}
    argv = ["sacct", "-M", "isambard", "-X", "-P", "-S", "now-1days", "-j", ",".join(refs),
            f"--format={FORMAT}"]
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
        rows = [line.split("|") for line in out.splitlines()[1:]]
        if len(rows) == len(refs) and all(r[5] and r[4] not in ("", "Unknown") for r in rows):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"slurmdbd's records of {refs} still incomplete after {timeout_s} s:\n{out}")
        time.sleep(0.5)


def test_sacct_of_real_jobs_becomes_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = slurm_federation().site("isambard")
    h = BackendHarness(SlurmBackend(site, tmp_path), "h100", 8, timeout_s=120)
    tag = secrets.token_hex(3)
    shapes = [(2, ["sleep", "3"], 120), (1, ["sleep", "1"], 300)]
    refs = [h.backend.submit(make_job(h, f"trace-{tag}-{i}", cmd, gpus=g, time_limit_s=limit)).backend_ref
            for i, (g, cmd, limit) in enumerate(shapes)]
    for ref in refs:
        assert wait_final(h, ref).state is RemoteState.COMPLETED
    out = settled_sacct(refs)
    (tmp_path / "sacct.txt").write_text(out)
    swf = tmp_path / "site.swf"
    assert accord("trace", "from-sacct", str(tmp_path / "sacct.txt"), "--out", str(swf)) == 0
    assert "2 job(s) written" in capsys.readouterr().err
    trace = parse_trace(swf.read_text(), str(swf), TraceFormat.SWF, round_s=1)
    seen = f"sacct printed:\n{out}\nSWF:\n{swf.read_text()}"
    asked = sorted(zip(trace.gpus.tolist(), trace.requested_s.tolist(), strict=True))
    assert asked == [(1, 300.0), (2, 120.0)], seen
    runs = dict(zip(trace.gpus.tolist(), trace.runtime_s.tolist(), strict=True))
    assert 1 <= runs[1] <= 30 and 3 <= runs[2] <= 30, seen


def test_a_bad_sacct_file_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{FORMAT.replace(',', '|')}\n7|ada|now|2026-11-02T09:00:00|2026-11-02T09:01:00|"
                   "01:00:00|gres/gpu=1|COMPLETED\n")
    assert accord("trace", "from-sacct", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: Submit: is not a time (got now" in err and "Traceback" not in err
    assert accord("trace", "from-sacct", str(tmp_path / "missing.txt")) == 2
