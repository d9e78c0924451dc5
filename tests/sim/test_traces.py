"""Trace loaders: the four formats, their errors (file:line, field, value, allowed), scaling
and home partners. Real traces are read in small slices from the shared data directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accord.adapters.carbon.files import shared_data_dir
from accord.domain.errors import InvalidInput
from accord.domain.traces.trace import HomeRule, TraceFormat, assign_homes, parse_trace, scale, sniff_trace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sim"


def _head(name: str, lines: int) -> str:
    path = shared_data_dir() / "traces" / name
    with path.open(encoding="utf-8") as f:
        return "".join(next(f) for _ in range(lines))


def test_swf_fields_map_to_jobs() -> None:
    t = parse_trace((FIXTURES / "small.swf").read_text(), "small.swf", TraceFormat.SWF)
    # sorted by submit; job 3 (run time 0, cancelled) is skipped
    assert t.submit_s.tolist() == [0, 30, 60, 180]
    assert t.gpus.tolist() == [8, 2, 4, 16]                 # job 4: the requested processors
    assert t.runtime_s.tolist() == [3600, 600, 1800, 900]
    # the trace's requested time when it covers the run, else the run rounded up to 30 min
    assert t.requested_s.tolist() == [7200, 1800, 1800, 1800]
    assert t.groups == ("1", "2", "3") and t.group.tolist() == [0, 0, 1, 2]
    assert t.skipped == {"no run time": 1}


def test_swf_processors_per_gpu() -> None:
    t = parse_trace((FIXTURES / "small.swf").read_text(), "small.swf", TraceFormat.SWF, procs_per_gpu=4)
    assert t.gpus.tolist() == [2, 1, 1, 4]


def test_bad_swf_names_file_line_and_field() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_trace((FIXTURES / "bad.swf").read_text(), "bad.swf", TraceFormat.SWF)
    lines = [p.render() for p in e.value.problems]
    assert lines == [
        "bad.swf:3: record: an SWF record has 18 whitespace-separated fields (got 8 fields, "
        "allowed 18 numbers (job, submit, wait, run time, processors, ...))",
        "bad.swf:4: field 2 (submit time): is not a number (got abc, allowed a number, -1 when unknown)"]


def test_generic_csv_with_every_column() -> None:
    t = parse_trace((FIXTURES / "jobs.csv").read_text(), "jobs.csv", TraceFormat.CSV)
    assert t.submit_s.tolist() == [0, 30, 600]
    assert t.requested_s.tolist() == [7200, 1800, 1800]
    assert t.partner == ("uk", "uk", "fr")
    homes, partners = assign_homes(t, {}, HomeRule.COLUMN, 0, ["uk", "fr"])
    assert [partners[i] for i in homes] == ["uk", "uk", "fr"]


def test_bad_generic_csv_lists_every_row() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_trace((FIXTURES / "bad_jobs.csv").read_text(), "bad_jobs.csv", TraceFormat.CSV)
    assert [p.render() for p in e.value.problems] == [
        "bad_jobs.csv:3: gpus: is not a number in range (got two, allowed a whole number >= 1)",
        "bad_jobs.csv:4: gpus: is not a whole number (got 1.5, allowed a whole number >= 1)",
        "bad_jobs.csv:5: runtime: is not a number in range (got -5, allowed seconds > 0)"]


def test_missing_column_is_named() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_trace("submit,gpus\n0,1\n", "x.csv", TraceFormat.CSV)
    assert e.value.problems[0].render() == ("x.csv:1: header: missing column(s) runtime "
                                            "(got submit,gpus, allowed submit,gpus,runtime (or map yours: "
                                            "--columns runtime=YOUR_NAME))")


def test_philly_slice() -> None:
    text = _head("philly_sia.csv", 501)
    assert sniff_trace(text) is TraceFormat.PHILLY
    t = parse_trace(text, "philly", TraceFormat.PHILLY)
    assert len(t) == 500 and t.submit_s[0] == 0 and np.all(np.diff(t.submit_s) >= 0)
    assert t.gpus.min() >= 1 and np.all(t.requested_s >= t.runtime_s)
    assert len(t.groups) > 1   # virtual clusters


def test_alibaba_slice_skips_pods_without_gpus_or_run() -> None:
    text = _head("alibaba_gpu2023_pods.csv", 1001)
    assert sniff_trace(text) is TraceFormat.ALIBABA
    t = parse_trace(text, "alibaba", TraceFormat.ALIBABA)
    assert 0 < len(t) < 1000 and sum(t.skipped.values()) == 1000 - len(t)
    assert t.gpus.min() >= 1 and t.runtime_s.min() > 0


def test_real_swf_slice() -> None:
    text = _head("lublin_256_synthetic.swf", 400)
    assert sniff_trace(text) is TraceFormat.SWF
    assert len(parse_trace(text, "lublin", TraceFormat.SWF)) > 300


def test_philly_bad_time_is_located() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_trace("timestamp,duration,num_gpus,gpu_time,cluster\nyesterday,10,1,10,a\n", "p.csv",
                    TraceFormat.PHILLY)
    assert e.value.problems[0].render().startswith("p.csv:2: timestamp: is not a time (got yesterday")


def test_scaling_copies_compresses_and_resizes() -> None:
    t = parse_trace((FIXTURES / "small.swf").read_text(), "small.swf", TraceFormat.SWF)
    s = scale(t, jobs=10, load=2.0, size=0.5)
    assert len(s) == 10
    assert s.submit_s[:4].tolist() == (t.submit_s / 2).tolist()
    assert s.submit_s[4] == pytest.approx((180 + 60) / 2)   # span + mean gap, compressed
    assert s.gpus[:4].tolist() == [4, 1, 2, 8]
    assert scale(t, jobs=2).submit_s.tolist() == [0, 30]
    with pytest.raises(InvalidInput):
        scale(t, load=0)


def test_homes_are_deterministic_for_a_seed_and_follow_groups() -> None:
    t = parse_trace(_head("philly_sia.csv", 2001), "philly", TraceFormat.PHILLY)
    a, names = assign_homes(t, {"uk": 2, "fr": 1}, HomeRule.GROUP, 7, ["uk", "fr", "de"])
    b, _ = assign_homes(t, {"uk": 2, "fr": 1}, HomeRule.GROUP, 7, ["uk", "fr", "de"])
    assert names == ("de", "fr", "uk") and np.array_equal(a, b)
    assert not (a == 0).any()   # de has no share
    for g in range(len(t.groups)):   # one partner per virtual cluster
        assert len(set(a[t.group == g].tolist())) <= 1
    with pytest.raises(InvalidInput) as e:
        assign_homes(t, {"xx": 1}, HomeRule.JOB, 7, ["uk"])
    assert "xx" in str(e.value)
