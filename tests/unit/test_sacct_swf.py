"""Slurm accounting to SWF: the converter, and the simulator reading what it writes."""

from __future__ import annotations

import pytest

from accord.domain.errors import InvalidInput
from accord.domain.traces.sacct_swf import sacct_to_swf
from accord.domain.traces.trace import TraceFormat, parse_trace

SACCT = """JobID|User|Submit|Start|End|Timelimit|AllocTRES|State|Partition
10|ada|2026-11-02T09:00:00|2026-11-02T09:00:30|2026-11-02T10:00:30|01:30:00|billing=2,cpu=2,gres/gpu=2,gres/gpu:h100=2,node=1|COMPLETED|gpu
10.batch|ada|2026-11-02T09:00:30|2026-11-02T09:00:30|2026-11-02T10:00:30||cpu=2,gres/gpu=2|COMPLETED|
11|bob|2026-11-02T09:10:00|2026-11-02T09:20:00|2026-11-02T09:25:00|1-00:00:00|cpu=4,gres/gpu=4|FAILED|gpu
12|ada|2026-11-02T09:30:00|Unknown|Unknown|UNLIMITED||PENDING|gpu
13|cai|2026-11-02T09:40:00|2026-11-02T09:40:05|2026-11-02T09:50:05|10:00|cpu=1|CANCELLED by 0|gpu
"""


def test_allocations_become_swf_jobs_with_gpus_as_processors() -> None:
    out = sacct_to_swf(SACCT, "s.txt")
    assert out.jobs == 2
    assert out.skipped == {"job steps": 1, "never started": 1, "no GPUs allocated": 1}
    rows = [line.split() for line in out.text.splitlines() if not line.startswith(";")]
    # job, submit, wait, run, procs, cpu, mem, req procs, req time, req mem, status, user
    assert rows[0][:12] == ["1", "0", "30", "3600", "2", "-1", "-1", "2", "5400", "-1", "1", "1"]
    assert rows[1][:12] == ["2", "600", "600", "300", "4", "-1", "-1", "4", "86400", "-1", "0", "2"]
    assert "; UnixStartTime: 1793610000" in out.text        # 2026-11-02 09:00 UTC
    trace = parse_trace(out.text, "s.swf", TraceFormat.SWF)
    assert trace.gpus.tolist() == [2, 4] and trace.runtime_s.tolist() == [3600.0, 300.0]
    assert trace.requested_s.tolist() == [5400.0, 86400.0]


def test_bad_input_names_line_column_and_value() -> None:
    with pytest.raises(InvalidInput, match="lacks column"):
        sacct_to_swf("JobID|User\n1|x\n", "s.txt")
    bad = SACCT.replace("01:30:00", "soon").replace("2026-11-02T09:10:00", "yesterday")
    with pytest.raises(InvalidInput) as exc:
        sacct_to_swf(bad, "s.txt")
    text = str(exc.value)
    assert "s.txt:2: Timelimit: is not a Slurm time limit (got soon" in text
    assert "s.txt:4: Submit: is not a time (got yesterday" in text
    with pytest.raises(InvalidInput, match="empty"):
        sacct_to_swf("\n", "s.txt")
