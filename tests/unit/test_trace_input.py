"""Traces as users bring them (issue 22): NaN, infinities, negative and mixed times as
file:line errors or counted skips; SWF status, queue and partition, UnixStartTime and
processors per GPU; generic CSV column mapping and units; other GPU traces' column names
and pods that predate or outlive the trace."""

from __future__ import annotations

import pytest

from accord.domain.errors import InvalidInput
from accord.domain.traces.trace import (
    HomeRule,
    SwfStatus,
    TimeUnit,
    TraceFormat,
    TraceOptions,
    assign_homes,
    home_rule,
    parse_trace,
    sniff_trace,
)

SWF_OK = "1 0 0 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1"


def swf(*records: str, header: str = "; Version: 2.2\n") -> str:
    return header + "\n".join(records) + "\n"


def problems(text: str, fmt: TraceFormat, options: TraceOptions | None = None) -> list[str]:
    with pytest.raises(InvalidInput) as e:
        parse_trace(text, "t", fmt, options=options)
    return [p.render() for p in e.value.problems]


@pytest.mark.parametrize(("record", "expected"), [
    ("2 nan 0 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1",
     "t:3: field 2 (submit time): is not a finite number (got nan"),
    ("2 60 0 inf 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1",
     "t:3: field 4 (run time): is not a finite number (got inf"),
    ("2 60 0 3600 NaN -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1",
     "t:3: field 5 (allocated processors): is not a finite number (got NaN"),
    ("2 -60 0 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1",
     "t:3: field 2 (submit time): is negative (got -60"),
    ("2 60 0 -7 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1",
     "t:3: field 4 (run time): is negative (got -7"),
    ("2 60 0 60 8 -1 -1 8 7200 -1 9 1 1 -1 1 1 -1 -1",
     "t:3: field 11 (status): is not an SWF status (got 9"),
])
def test_swf_nan_inf_and_negative_fields_are_located_errors(record: str, expected: str) -> None:
    out = problems(swf(SWF_OK, record), TraceFormat.SWF)
    assert len(out) == 1 and out[0].startswith(expected), out


def test_bad_rows_can_be_skipped_counted_and_quoted() -> None:
    text = swf(SWF_OK, "2 nan 0 3600 8 -1 -1 8 7200 -1 1 1 1 -1 1 1 -1 -1", "3 1 2")
    t = parse_trace(text, "t", TraceFormat.SWF, options=TraceOptions(skip_bad_rows=True))
    assert len(t) == 1 and t.skipped == {"bad row": 2}
    assert t.notes[0].startswith("2 bad row(s) skipped (--skip-bad-rows), e.g. t:3: field 2 (submit time)")
    assert "t:4: record" in t.notes[0]


def test_a_row_with_two_bad_fields_is_skipped_once() -> None:
    text = "submit,gpus,runtime\n0,1,60\nnan,x,inf\n"
    t = parse_trace(text, "t", TraceFormat.CSV, options=TraceOptions(skip_bad_rows=True))
    assert len(t) == 1 and t.skipped == {"bad row": 1}


@pytest.mark.parametrize(("row", "expected"), [
    ("nan,1,60", "t:3: submit: is not a finite number (got nan"),
    ("-5,1,60", "t:3: submit: is not a number in range (got -5"),
    ("10,1,inf", "t:3: runtime: is not a finite number (got inf"),
    ("10,nan,60", "t:3: gpus: is not a finite number (got nan"),
    ("10,1,60,inf", "t:3: requested: is not a finite number (got inf"),
])
def test_generic_csv_nan_inf_and_negative_are_errors(row: str, expected: str) -> None:
    out = problems(f"submit,gpus,runtime,requested\n0,1,60,\n{row}\n", TraceFormat.CSV)
    assert out and out[0].startswith(expected), out


def test_generic_csv_mixing_iso_and_numeric_submit_times_is_an_error() -> None:
    out = problems("submit,gpus,runtime\n2020-01-01T00:00:00Z,1,60\n3600,1,60\n", TraceFormat.CSV)
    assert out == ["t:3: submit: is a number where line 2 has an ISO time (got 3600, allowed ISO times "
                   "throughout the file)"]


def test_swf_status_ran_replays_failed_and_cancelled_and_says_so() -> None:
    text = swf(SWF_OK, "2 10 0 60 4 -1 -1 4 600 -1 0 1 1 -1 1 1 -1 -1",
               "3 20 0 30 4 -1 -1 4 600 -1 5 1 1 -1 1 1 -1 -1",
               "4 30 0 30 4 -1 -1 4 600 -1 3 1 1 -1 1 1 -1 -1")
    t = parse_trace(text, "t", TraceFormat.SWF)
    assert len(t) == 3
    assert t.skipped == {"partial execution record (its job's summary record is replayed)": 1}
    assert any("1 completed, 1 failed, 1 cancelled job(s) replayed" in n for n in t.notes), t.notes


def test_swf_status_completed_skips_failed_and_cancelled() -> None:
    text = swf(SWF_OK, "2 10 0 60 4 -1 -1 4 600 -1 0 1 1 -1 1 1 -1 -1",
               "3 20 0 30 4 -1 -1 4 600 -1 5 1 1 -1 1 1 -1 -1")
    t = parse_trace(text, "t", TraceFormat.SWF, options=TraceOptions(status=SwfStatus.COMPLETED))
    assert len(t) == 1
    assert t.skipped == {"failed (status 0; --swf-status completed)": 1,
                         "cancelled (status 5; --swf-status completed)": 1}


def test_swf_queue_and_partition_filters() -> None:
    text = swf(SWF_OK, "2 10 0 60 4 -1 -1 4 600 -1 1 1 1 -1 2 1 -1 -1",
               "3 20 0 30 4 -1 -1 4 600 -1 1 1 1 -1 2 7 -1 -1")
    assert len(parse_trace(text, "t", TraceFormat.SWF, options=TraceOptions(queues=frozenset({2})))) == 2
    t = parse_trace(text, "t", TraceFormat.SWF, options=TraceOptions(queues=frozenset({2}),
                                                                     partitions=frozenset({7})))
    assert len(t) == 1 and t.skipped == {"in another queue (--queue)": 1,
                                         "in another partition (--partition)": 1}


def test_swf_unix_start_time_header_gives_the_origin() -> None:
    text = swf("1 100 0 60 4 -1 -1 4 600 -1 1 1 1 -1 1 1 -1 -1",
               header="; Version: 2.2\n; UnixStartTime: 1262304000\n")
    t = parse_trace(text, "t", TraceFormat.SWF)
    assert t.origin_s == 1262304000 + 100
    assert parse_trace(swf(SWF_OK), "t", TraceFormat.SWF).origin_s is None
    bad = problems(swf(SWF_OK, header="; UnixStartTime: soon\n"), TraceFormat.SWF)
    assert bad[0].startswith("t:1: UnixStartTime: is not a number in range (got soon")


def test_swf_unknown_users_are_no_group() -> None:
    t = parse_trace(swf("1 0 0 60 4 -1 -1 4 600 -1 1 -1 1 -1 1 1 -1 -1"), "t", TraceFormat.SWF)
    assert t.groups == ("",) and not t.has_groups


def test_swf_processors_per_gpu_option() -> None:
    t = parse_trace(swf(SWF_OK), "t", TraceFormat.SWF, options=TraceOptions(procs_per_gpu=4))
    assert t.gpus.tolist() == [2]


def test_generic_csv_column_mapping_and_hours() -> None:
    text = "arrival_time,length,cpus\n0,1.5,8\n0.5,2,16\n"
    opts = TraceOptions(columns=(("submit", "arrival_time"), ("runtime", "length"), ("gpus", "cpus")),
                        time_unit=TimeUnit.HOURS, procs_per_gpu=8)
    t = parse_trace(text, "t", TraceFormat.CSV, options=opts)
    assert t.submit_s.tolist() == [0, 1800] and t.runtime_s.tolist() == [5400, 7200]
    assert t.gpus.tolist() == [1, 2]
    out = problems(text, TraceFormat.CSV, TraceOptions(columns=(("arrival", "arrival_time"),)))
    assert out[0].startswith("t: columns: names no column of the format (got arrival")


def test_a_trace_without_groups_spreads_homes_by_default() -> None:
    t = parse_trace("submit,gpus,runtime\n" + "".join(f"{i},1,60\n" for i in range(50)), "t", TraceFormat.CSV)
    assert not t.has_groups and home_rule(t, HomeRule.AUTO) is HomeRule.JOB
    homes, _ = assign_homes(t, {"uk": 1, "fr": 1}, HomeRule.AUTO, 1, ["uk", "fr"])
    assert len(set(homes.tolist())) == 2
    one, _ = assign_homes(t, {"uk": 1, "fr": 1}, HomeRule.GROUP, 1, ["uk", "fr"])
    assert len(set(one.tolist())) == 1


POD_HEADER = "name,cpu_milli,memory_mib,gpu_request,gpu_milli,gpu_spec,qos,pod_phase,creation_time," \
             "deletion_time,scheduled_time\n"


def test_gpu_request_traces_and_pods_that_predate_or_outlive_it() -> None:
    text = POD_HEADER + ("a,1,1,2,1000,,LS,Running,10,500,20\n"
                         "b,1,1,1,1000,,LS,Running,,500,20\n"
                         "c,1,1,1,1000,,LS,Running,10,,20\n"
                         "d,1,1,1,1000,,LS,Pending,10,,\n")
    assert sniff_trace(text) is TraceFormat.ALIBABA
    t = parse_trace(text, "t", TraceFormat.ALIBABA)
    assert t.gpus.tolist() == [2] and t.runtime_s.tolist() == [480]
    assert t.skipped == {"predates the trace (no creation_time)": 1,
                         "outlives the trace (no deletion_time)": 1, "never ran": 1}


def test_pods_deleted_at_the_traces_end_are_named() -> None:
    text = POD_HEADER + ("a,1,1,1,1000,,LS,Running,10,900,20\n"
                         "b,1,1,1,1000,,LS,Running,10,900,30\n"
                         "c,1,1,1,1000,,LS,Running,10,500,20\n")
    t = parse_trace(text, "t", TraceFormat.ALIBABA)
    assert t.notes == ("2 pod(s) were deleted at the trace's last moment (900 s): they outlive it, and "
                       "their run times (to that moment) are lower bounds",)


def test_alibaba_nan_is_an_error() -> None:
    out = problems(POD_HEADER + "a,1,1,nan,1000,,LS,Running,10,500,20\n", TraceFormat.ALIBABA)
    assert out == ["t:2: num_gpu: is not a finite number (got nan, allowed a whole number >= 0)"]


def test_philly_inf_duration_is_an_error() -> None:
    out = problems("timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-01 00:00:00,inf,1,1,a\n",
                   TraceFormat.PHILLY)
    assert out[0].startswith("t:2: duration: is not a finite number (got inf")
