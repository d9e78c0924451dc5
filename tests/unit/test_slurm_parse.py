"""Slurm output parsers: real 22.05 captures, reconstructed 23.02-25.05 samples, garbage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.adapters.slurm.parse import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    SQUEUE_FORMAT_LONG,
    QueueEntry,
    SlurmRecord,
    map_state,
    parse_sacct_json,
    parse_sacct_parsable,
    parse_sbatch_parsable,
    parse_squeue_format,
    parse_squeue_json,
    parse_tres_gpus,
)
from accord.domain.errors import Unavailable
from accord.domain.jobs.site import RemoteState
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "slurm"
V2205 = FIXTURES / "22.05"
FORMATS = V2205 / "parse-formats"
NEWER = ("23.02", "23.11", "24.05", "24.11", "25.05")
# The fields of the 22.05 capture (capture.sh), as printed in the files' headers.
CAPTURE_FIELDS = [
    *("JobID", "JobName", "Comment", "State", "ExitCode", "Start", "End", "Elapsed", "ElapsedRaw"),
    *("AllocTRES", "ReqTRES", "NNodes", "NodeList", "Reason", "ConsumedEnergyRaw", "Cluster"),
    *("Partition", "Account"),
]


def read(path: Path) -> str:
    return path.read_text()


def by_id(records: list[SlurmRecord]) -> dict[str, SlurmRecord]:
    ids = [r.job_id for r in records]
    assert len(ids) == len(set(ids)), f"a job was counted twice: {ids}"
    return {r.job_id: r for r in records}


def queue_by_id(entries: list[QueueEntry]) -> dict[str, QueueEntry]:
    return {e.job_id: e for e in entries}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sacct_line(**values: str) -> str:
    """A ``sacct -P`` line in SACCT_FIELDS order: a valid RUNNING job, with ``values`` replaced."""
    row = {
        "JobID": "14",
        "Cluster": "c",
        "JobName": "j",
        "State": "RUNNING",
        "ExitCode": "0:0",
        "NNodes": "1",
        "NodeList": "n1",
        **values,
    }
    return "|".join(row.get(field, "") for field in SACCT_FIELDS)


def format_ids() -> dict[str, str]:
    """name -> id of the jobs of the parse-formats capture."""
    pairs = read(FORMATS / "job-ids.txt").split()
    return dict(pair.split("=") for pair in pairs)


# ------------------------------------------------------------------ 22.05, sacct -P


@pytest.mark.parametrize("name", ["sacct-P-X.txt", "sacct-P.txt"])
def test_sacct_parsable_22_05_allocations_and_steps(name: str) -> None:
    records = by_id(parse_sacct_parsable(read(V2205 / name)))
    assert sorted(records, key=int) == ["14", "15", "16", "17", "18", "19"]  # steps skipped

    done = records["14"]
    assert (done.name, done.comment, done.state, done.exit_code, done.signal) == (
        "accord-completed",
        "accord:run=fixture-completed",
        RemoteState.COMPLETED,
        0,
        None,
    )
    assert done.cluster == "isambard" and done.reason == ""
    assert (done.start, done.end) == (utc("2026-11-22T10:52:52"), utc("2026-11-22T10:52:58"))
    assert (done.elapsed_s, done.alloc_gpus, done.req_gpus) == (6, 2, 2)  # not 4: typed + untyped
    assert done.gpu_seconds == 12.0 and done.energy_j is None

    failed = records["15"]
    assert (failed.state, failed.raw_state, failed.exit_code) == (RemoteState.FAILED, "FAILED", 3)

    timeout = records["16"]
    assert (timeout.state, timeout.exit_code, timeout.elapsed_s) == (RemoteState.TIMEOUT, 0, 85)

    cancelled = records["17"]
    assert (cancelled.state, cancelled.raw_state) == (RemoteState.CANCELLED, "CANCELLED by 0")

    multi = records["18"]
    assert (multi.nodes, multi.node_list, multi.alloc_gpus) == (2, "isambard-n[1-2]", 4)
    assert multi.gpu_seconds == 4 * 8

    held = records["19"]
    assert (held.state, held.start, held.elapsed_s, held.alloc_gpus, held.req_gpus) == (
        RemoteState.CANCELLED,
        None,
        0,
        0,
        1,
    )
    assert held.node_list == "" and held.end == utc("2026-11-22T10:53:02")


def test_sacct_parsable_header_overrides_the_default_field_order() -> None:
    text = read(V2205 / "sacct-P-X.txt")
    headerless = "\n".join(text.splitlines()[1:])
    assert parse_sacct_parsable(text) == parse_sacct_parsable(headerless, CAPTURE_FIELDS)


def test_sacct_parsable_header_anywhere_in_the_field_order() -> None:
    text = "State|JobIDRaw|Elapsed|ElapsedRaw|JobID\nRUNNING|7|00:01:00|61|6_1\n"
    [record] = parse_sacct_parsable(text)
    assert (record.job_id, record.elapsed_s) == ("6_1", 61)  # JobID and ElapsedRaw preferred


def test_sacct_parsable_two_clusters() -> None:
    records = by_id(parse_sacct_parsable(read(V2205 / "sacct-P-X-two-clusters.txt")))
    assert {(r.job_id, r.cluster, r.alloc_gpus) for r in records.values()} == {
        ("14", "isambard", 2),
        ("100014", "jeanzay", 4),
    }


def test_sacct_parsable_jobidraw_and_noconvert() -> None:
    fields = ("JobIDRaw", "State", "ExitCode", "ElapsedRaw", "AllocTRES", "TRESUsageInTot")
    records = by_id(parse_sacct_parsable(read(V2205 / "sacct-noheader-noconvert.txt"), fields))
    assert [(r.exit_code, r.alloc_gpus) for r in records.values()] == [
        (0, 2),
        (3, 1),
        (0, 1),
        (0, 1),
        (0, 4),
        (0, 0),
    ]
    assert records["14"].cluster is None and records["14"].name == ""


# --------------------------------------------------- 22.05, the Accord formats, live


def test_sacct_fields_cover_what_the_backend_needs() -> None:
    needed = {
        "JobID",
        "JobName",
        "Comment",
        "State",
        "ExitCode",
        "Submit",
        "Start",
        "End",
        "ElapsedRaw",
        "AllocTRES",
        "ReqTRES",
        "NNodes",
        "NodeList",
        "Reason",
        "ConsumedEnergyRaw",
        "Cluster",
    }
    assert needed <= set(SACCT_FIELDS)
    assert SACCT_FIELDS[-1] == "Comment"  # the free-text field last


def test_sacct_accord_fields_final() -> None:
    ids = format_ids()
    records = by_id(parse_sacct_parsable(read(FORMATS / "sacct-final.txt")))
    with_steps = by_id(parse_sacct_parsable(read(FORMATS / "sacct-final-with-steps.txt")))
    assert records == with_steps

    pipe = records[ids["pipe_comment"]]
    assert pipe.comment == "accord:run=r1|note=a|b"  # surplus '|' fields joined back
    assert (pipe.state, pipe.alloc_gpus, pipe.elapsed_s, pipe.name) == (
        RemoteState.COMPLETED,
        2,
        15,
        "accord-pipe-comment",
    )
    assert pipe.submit is not None and pipe.start is not None and pipe.submit <= pipe.start

    assert records[ids["multinode"]].alloc_gpus == 4
    assert (records[ids["exit3"]].exit_code, records[ids["exit3"]].signal) == (3, None)
    signal = records[ids["signal"]]
    assert (signal.state, signal.exit_code, signal.signal) == (RemoteState.FAILED, 0, 9)

    held = records[ids["held"]]
    assert (held.state, held.start, held.reason, held.req_gpus) == (
        RemoteState.CANCELLED,
        None,
        "JobHeldUser",
        2,
    )
    # sacct prints Start=End=Submit for a job cancelled right after submission: not a start.
    quick = records[ids["instant_cancel"]]
    assert (quick.state, quick.start, quick.node_list, quick.alloc_gpus) == (
        RemoteState.CANCELLED,
        None,
        "",
        0,
    )


def test_sacct_accord_fields_while_running() -> None:
    ids = format_ids()
    records = by_id(parse_sacct_parsable(read(FORMATS / "sacct-running.txt")))
    running = records[ids["pipe_comment"]]
    assert (running.state, running.end) == (RemoteState.RUNNING, None)
    assert running.comment == ""  # 22.05: the comment reaches slurmdbd only at the end
    assert records[ids["held"]].state is RemoteState.PENDING
    assert records[ids["held"]].start is None


def test_squeue_format_live() -> None:
    ids = format_ids()
    entries = queue_by_id(parse_squeue_format(read(FORMATS / "squeue-o.txt")))
    pipe = entries[ids["pipe_comment"]]
    assert (pipe.state, pipe.comment, pipe.reason, pipe.cluster) == (
        RemoteState.RUNNING,
        "accord:run=r1|note=a|b",
        "",
        None,
    )
    assert pipe.start is not None
    assert pipe.gpus == 0  # %b is TRES per node: N/A for --gpus=2
    assert entries[ids["multinode"]].gpus == 4  # --gpus-per-node=2 on 2 nodes
    held = entries[ids["held"]]
    assert (held.state, held.reason, held.start, held.comment) == (
        RemoteState.PENDING,
        "JobHeldUser",
        None,
        "",
    )
    quick = entries[ids["instant_cancel"]]
    assert (quick.state, quick.start) == (RemoteState.CANCELLED, None)  # squeue shows the cancel time
    assert entries[ids["exit3"]].state is RemoteState.FAILED


def test_squeue_format_long_has_whole_job_gpus_and_cluster() -> None:
    ids = format_ids()
    entries = queue_by_id(parse_squeue_format(read(FORMATS / "squeue-O.txt"), SQUEUE_FORMAT_LONG))
    gpus = {name: entries[job_id].gpus for name, job_id in ids.items()}
    assert gpus == {
        "pipe_comment": 2,
        "multinode": 4,
        "held": 2,
        "exit3": 1,
        "signal": 1,
        "instant_cancel": 1,
    }
    assert {e.cluster for e in entries.values()} == {"isambard"}
    assert entries[ids["pipe_comment"]].comment == "accord:run=r1|note=a|b"
    assert entries[ids["held"]].start is None and entries[ids["instant_cancel"]].start is None


def test_squeue_format_with_cluster_line_and_header() -> None:
    entries = parse_squeue_format(read(FORMATS / "squeue-M-o-header.txt"))
    assert len(entries) == 6 and {e.cluster for e in entries} == {"isambard"}
    plain = parse_squeue_format(read(FORMATS / "squeue-o.txt"))
    assert [e.job_id for e in entries] == [e.job_id for e in plain]


# -------------------------------------------------------------------- 22.05, JSON


def test_sacct_json_22_05() -> None:
    records = by_id(parse_sacct_json(read(V2205 / "sacct.json")))
    assert sorted(records, key=int) == ["14", "15", "16", "17", "18", "19"]
    assert records["14"].comment == "accord:run=fixture-completed"
    assert (records["14"].alloc_gpus, records["14"].elapsed_s) == (2, 6)
    assert records["14"].start == utc("2026-11-22T10:52:52")
    assert records["16"].state is RemoteState.TIMEOUT
    assert records["17"].state is RemoteState.CANCELLED
    assert (records["18"].alloc_gpus, records["18"].nodes) == (4, 2)  # steps not added
    assert (records["19"].start, records["19"].alloc_gpus, records["19"].req_gpus) == (None, 0, 1)
    # dbv0.0.38 reports SUCCESS/0 for a job that exited 3: mapped as reported.
    assert (records["15"].state, records["15"].exit_code) == (RemoteState.FAILED, 0)


def test_sacct_json_agrees_with_sacct_parsable_on_22_05() -> None:
    from_json = by_id(parse_sacct_json(read(V2205 / "sacct.json")))
    from_text = by_id(parse_sacct_parsable(read(V2205 / "sacct-P-X.txt")))
    for job_id, text in from_text.items():
        json_record = from_json[job_id]
        assert (json_record.state, json_record.alloc_gpus, json_record.req_gpus, json_record.elapsed_s) == (
            text.state,
            text.alloc_gpus,
            text.req_gpus,
            text.elapsed_s,
        )
        assert (json_record.start, json_record.end) == (text.start, text.end)
        if text.start is not None:  # sacct -P prints the requested node count of a never-run job
            assert (json_record.nodes, json_record.node_list) == (text.nodes, text.node_list)


def test_squeue_json_22_05() -> None:
    entries = queue_by_id(parse_squeue_json(read(V2205 / "squeue.json")))
    assert len(entries) == 19  # 22.05 lists finished jobs too
    assert (entries["18"].state, entries["18"].gpus) == (RemoteState.RUNNING, 4)
    assert (entries["19"].state, entries["19"].reason, entries["19"].start, entries["19"].gpus) == (
        RemoteState.PENDING,
        "JobHeldUser",
        None,
        1,
    )
    assert entries["14"].comment == "accord:run=fixture-completed" and entries["14"].gpus == 2
    assert entries["15"].state is RemoteState.FAILED
    assert entries["16"].start == utc("2026-11-22T10:52:55") and entries["16"].cluster == "isambard"


# ------------------------------------------------------------ 23.02 .. 25.05 samples


@pytest.mark.parametrize("version", NEWER)
def test_sacct_json_newer_versions(version: str) -> None:
    records = by_id(parse_sacct_json(read(FIXTURES / version / "sacct.json")))
    assert sorted(records) == ["501", "502", "503", "504", "505"]
    done = records["501"]
    assert (done.state, done.comment, done.alloc_gpus, done.req_gpus, done.elapsed_s, done.cluster) == (
        RemoteState.COMPLETED,
        "accord:run=fixture-completed",
        2,
        2,
        6,
        "isambard",
    )
    assert (
        done.start is not None
        and done.end is not None
        and done.end - done.start == (datetime.fromtimestamp(7, UTC) - datetime.fromtimestamp(1, UTC))
    )
    assert records["503"].state is RemoteState.TIMEOUT and records["503"].elapsed_s == 85
    multi = records["504"]
    assert (multi.alloc_gpus, multi.nodes, multi.node_list, multi.gpu_seconds) == (4, 2, "gpu[1-2]", 32.0)
    held = records["505"]
    assert (held.state, held.start, held.alloc_gpus, held.req_gpus, held.reason) == (
        RemoteState.CANCELLED,
        None,
        0,
        1,
        "JobHeldUser",
    )
    assert all(r.energy_j is None for r in records.values())
    expected_exit = 0 if version == "23.02" else 3  # v0.0.39 still reports SUCCESS/0
    assert (records["502"].state, records["502"].exit_code) == (RemoteState.FAILED, expected_exit)


@pytest.mark.parametrize("version", NEWER)
def test_squeue_json_newer_versions(version: str) -> None:
    entries = queue_by_id(parse_squeue_json(read(FIXTURES / version / "squeue.json")))
    gpus = {job_id: e.gpus for job_id, e in entries.items()}
    expected = {"601": 2, "602": 2, "603": 4, "604": 4, "605": 1, "606": 1}
    if version != "23.02":
        expected["607"] = 6  # GPUs not tracked as TRES: from tres_per_job
    assert gpus == expected
    assert entries["602"].state is RemoteState.RUNNING and entries["602"].start is not None
    assert entries["602"].comment == "accord:run=r-602"
    pending = entries["604"]
    assert (pending.state, pending.reason, pending.start) == (RemoteState.PENDING, "Resources", None)
    assert (entries["605"].state, entries["605"].start) == (RemoteState.CANCELLED, None)
    assert entries["606"].state is RemoteState.FAILED and entries["606"].cluster == "isambard"


@pytest.mark.parametrize("version", NEWER)
def test_newer_samples_say_they_are_reconstructed(version: str) -> None:
    readme = read(FIXTURES / version / "README.md")
    assert "RECONSTRUCTED" in readme and "rackslab/Slurm-web" in readme
    meta = json.loads(read(FIXTURES / version / "sacct.json"))["meta"]
    assert "v0.0.4" in json.dumps(meta) or "v0.0.39" in json.dumps(meta)


def test_json_shapes_per_version() -> None:
    """The samples do differ where the parser must cope: strings vs lists, ints vs objects."""
    old = json.loads(read(FIXTURES / "23.02" / "squeue.json"))["jobs"][0]
    new = json.loads(read(FIXTURES / "25.05" / "squeue.json"))["jobs"][0]
    assert isinstance(old["job_state"], str) and isinstance(new["job_state"], list)
    assert isinstance(old["start_time"], int) and isinstance(new["start_time"], dict)


# ------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", RemoteState.PENDING),
        ("REQUEUED", RemoteState.PENDING),
        ("CONFIGURING", RemoteState.PENDING),
        ("RESIZING", RemoteState.PENDING),
        ("SUSPENDED", RemoteState.RUNNING),
        ("RUNNING", RemoteState.RUNNING),
        ("COMPLETING", RemoteState.RUNNING),
        ("STAGE_OUT", RemoteState.RUNNING),
        ("SIGNALING", RemoteState.RUNNING),
        ("COMPLETED", RemoteState.COMPLETED),
        ("FAILED", RemoteState.FAILED),
        ("OUT_OF_MEMORY", RemoteState.FAILED),
        ("BOOT_FAIL", RemoteState.FAILED),
        ("DEADLINE", RemoteState.FAILED),
        ("PREEMPTED", RemoteState.FAILED),
        ("CANCELLED", RemoteState.CANCELLED),
        ("CANCELLED by 0", RemoteState.CANCELLED),
        ("CANCELLED+", RemoteState.CANCELLED),
        ("TIMEOUT", RemoteState.TIMEOUT),
        ("NODE_FAIL", RemoteState.NODE_FAIL),
        ("  running ", RemoteState.RUNNING),
    ],
)
def test_map_state(raw: str, state: RemoteState) -> None:
    assert map_state(raw) is state


def test_unknown_state_names_the_state_and_the_known_ones() -> None:
    with pytest.raises(Unavailable, match=r"unknown job state 'EXPLODED'.*PENDING.*TIMEOUT"):
        map_state("EXPLODED")
    with pytest.raises(Unavailable, match="unknown job state ''"):
        map_state("")


def test_list_states_use_slurm_flag_priority() -> None:
    doc = json.loads(read(FIXTURES / "25.05" / "squeue.json"))
    job = doc["jobs"][1]
    for value, expected in [
        (["COMPLETED", "COMPLETING"], RemoteState.RUNNING),
        (["PENDING", "REQUEUED"], RemoteState.PENDING),
        (["RUNNING", "POWER_UP_NODE"], RemoteState.PENDING),
        (["FAILED", "LAUNCH_FAILED"], RemoteState.FAILED),  # unknown flags are ignored
    ]:
        job["job_state"] = value
        [entry] = parse_squeue_json(json.dumps({"jobs": [job]}))
        assert (entry.state, entry.raw_state) == (expected, ",".join(value))


# ---------------------------------------------------------------------- sbatch


def test_sbatch_parsable_real_outputs() -> None:
    with_cluster = read(V2205 / "sbatch-parsable-M.txt").splitlines()
    assert [parse_sbatch_parsable(line) for line in with_cluster] == ["14", "15", "16", "17", "18", "19"]
    assert parse_sbatch_parsable(read(V2205 / "sbatch-parsable.txt")) == "100014"


@pytest.mark.parametrize("out", ["", "Submitted batch job 12", "12;a;b", "12\n13", "sbatch: error: x"])
def test_sbatch_parsable_rejects_anything_else(out: str) -> None:
    with pytest.raises(Unavailable, match=r"sbatch --parsable: expected 'JOBID' or 'JOBID;CLUSTER', got"):
        parse_sbatch_parsable(out)


# ---------------------------------------------------------------------- TRES


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("cpu=2,mem=512M,node=1,billing=2,gres/gpu=2,gres/gpu:h100=2", 2),
        ("billing=1,cpu=1,gres/gpu:h100=2,gres/gpu=2,mem=512M,node=1", 2),
        ("gres/gpu:h100=2", 2),
        ("gres/gpu:h100=2,gres/gpu:a100=1", 3),
        ("gres/gpu:h100=2,gres/gpu:h100=2", 2),
        ("cpu=1,gres/gpumem=40G,gres/shard=4,gres/gpu=1", 1),
        ("cpu=1,mem=1G", 0),
        ("", 0),
        ("N/A", 0),
    ],
)
def test_parse_tres_gpus(tres: str, gpus: int) -> None:
    assert parse_tres_gpus(tres) == gpus


@pytest.mark.parametrize("tres", ["gres/gpu=two", "cpu=1,garbage", "gres/gpu=-1"])
def test_parse_tres_gpus_garbage(tres: str) -> None:
    with pytest.raises(Unavailable, match="TRES"):
        parse_tres_gpus(tres)


@settings(max_examples=300)
@given(
    total=st.integers(min_value=0, max_value=64),
    cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=4),
    others=st.lists(st.sampled_from(["cpu=8", "mem=64G", "node=2", "billing=8", "gres/shard=2"]), max_size=4),
    data=st.data(),
)
def test_parse_tres_gpus_never_double_counts(
    total: int, cuts: list[int], others: list[str], data: st.DataObject
) -> None:
    """An untyped gres/gpu=N plus typed entries summing to N, in any order, is N GPUs."""
    points = sorted({min(c, total) for c in cuts})
    parts = [b - a for a, b in zip([0, *points], [*points, total], strict=True)]
    typed = [
        f"gres/gpu:{model}={n}"
        for model, n in zip(["h100", "a100", "l40s", "mi300", "v100"], parts, strict=False)
    ]
    entries = data.draw(st.permutations([f"gres/gpu={total}", *typed, *others]))
    assert parse_tres_gpus(",".join(entries)) == total
    typed_only = [e for e in entries if e.startswith("gres/gpu:")]
    assert parse_tres_gpus(",".join(typed_only)) == total


# ---------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("14|isambard|j|COMPLETED|0:0", r"sacct -P line 1: expected 16 '\|'-separated fields, got 5"),
        (sacct_line(State="WEIRD"), r"unknown job state 'WEIRD'"),
        (
            sacct_line(ExitCode="three"),
            r"sacct -P line 1 ExitCode: expected an exit code like 3:0, got 'three'",
        ),
        (sacct_line(Submit="yesterday"), r"sacct -P line 1 Submit: expected a time .* got 'yesterday'"),
        (sacct_line(ElapsedRaw="ten"), r"sacct -P line 1 Elapsed: expected an elapsed time, got 'ten'"),
        (sacct_line(AllocTRES="cpu=1,gres/gpu=x"), r"sacct -P line 1 AllocTRES: .*'x'"),
        (sacct_line(ReqTRES="cpu=1,nonsense"), r"sacct -P line 1 ReqTRES: .*bad TRES entry 'nonsense'"),
        (sacct_line(NNodes="many"), r"sacct -P line 1 NNodes: expected a count, got 'many'"),
        (sacct_line(ConsumedEnergyRaw="lots"), r"ConsumedEnergyRaw: expected joules, got 'lots'"),
        (sacct_line(JobID=""), r"sacct -P line 1: empty JobID"),
    ],
)
def test_sacct_parsable_garbage(text: str, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        parse_sacct_parsable(text)


def test_sacct_parsable_needs_jobid_and_state() -> None:
    with pytest.raises(Unavailable, match="has no state"):
        parse_sacct_parsable("14", ["JobID"])


def test_sacct_parsable_surplus_without_a_comment_field() -> None:
    with pytest.raises(Unavailable, match=r"expected 2 '\|'-separated fields, got 3"):
        parse_sacct_parsable("14|RUNNING|x", ["JobID", "State"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>502 Bad Gateway</html>", r"sacct --json: output is not JSON"),
        ("[1, 2]", r"sacct --json: expected a JSON object"),
        ('{"meta": {}}', r"sacct --json: expected a 'jobs' list of objects, got 'None'"),
        (
            '{"jobs": [], "errors": [{"error": "Unable to connect to slurmdbd"}]}',
            r"Slurm reported errors.*slurmdbd",
        ),
        (
            '{"jobs": [{"job_id": 1, "state": {"current": 7}}]}',
            r"sacct --json jobs\[0\] state/current: job state should be a string or a list of strings, got 7",
        ),
        ('{"jobs": [{"job_id": 1, "state": {"current": ["BOGUS"]}}]}', r"unknown job state 'BOGUS'"),
        ('{"jobs": [{"state": {"current": "RUNNING"}}]}', r"sacct --json jobs\[0\]: job without a job_id"),
        (
            '{"jobs": [{"job_id": 1, "state": {"current": "RUNNING"}, "time": {"start": "noon"}}]}',
            r"sacct --json jobs\[0\] time/start: expected a number, got 'noon'",
        ),
        (
            '{"jobs": [{"job_id": 1, "state": {"current": "RUNNING"}, "tres": {"allocated": "gpu=2"}}]}',
            r"tres/allocated: expected a list of TRES, got 'gpu=2'",
        ),
    ],
)
def test_sacct_json_garbage(text: str, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        parse_sacct_json(text)


def test_squeue_json_garbage() -> None:
    with pytest.raises(Unavailable, match=r"squeue --json: output is not JSON"):
        parse_squeue_json("squeue: error: Invalid user")
    with pytest.raises(
        Unavailable, match=r"squeue --json jobs\[0\] tres_per_job: expected a count, got 'lots'"
    ):
        parse_squeue_json(
            '{"jobs": [{"job_id": 3, "job_state": "PENDING", "tres_per_job": "gres/gpu:h100:lots"}]}'
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12|name|RUNNING", r"squeue -o line 1: expected 9 '\|'-separated fields, got 3"),
        (
            "12|n|RUNNING|None|2026-01-01T00:00:00|one|N/A|node1|(null)",
            r"squeue -o line 1 nodes: expected a count",
        ),
        (
            "12|n|RUNNING|None|soon|1|N/A|node1|(null)",
            r"squeue -o line 1 start: expected a time .* got 'soon'",
        ),
        ("12|n|HAPPY|None|N/A|1|N/A||(null)", r"unknown job state 'HAPPY'"),
    ],
)
def test_squeue_format_garbage(text: str, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        parse_squeue_format(text)


def test_squeue_format_rejects_an_unknown_format() -> None:
    with pytest.raises(Unavailable, match="unknown format '%i'"):
        parse_squeue_format("1", "%i")


def test_squeue_format_long_garbage() -> None:
    line = "12|n|RUNNING|None|N/A|1|gres/gpu=oops|c|node1|(null)"
    with pytest.raises(Unavailable, match=r"squeue -O line 1 tres-alloc: .*'oops'"):
        parse_squeue_format(line, SQUEUE_FORMAT_LONG)


# ---------------------------------------------------------------------- odds and ends


def test_blank_lines_and_crlf_are_ignored() -> None:
    text = "\n" + read(V2205 / "sacct-P-X.txt").replace("\n", "\r\n") + "\n\n"
    assert len(parse_sacct_parsable(text)) == 6
    assert parse_squeue_format("\n\n") == [] and parse_sacct_parsable("") == []


def test_times_are_utc_aware_and_offsets_are_converted() -> None:
    line = "1|c|j|RUNNING|0:0|None|2026-01-01T10:00:00+02:00|2026-01-01T08:00:05|Unknown|5||||n1||"
    [record] = parse_sacct_parsable(line)
    assert record.submit == utc("2026-01-01T08:00:00") and record.start == utc("2026-01-01T08:00:05")
    assert record.end is None and record.elapsed_s == 5


def test_elapsed_text_and_energy() -> None:
    fields = ["JobID", "State", "Elapsed", "ConsumedEnergyRaw", "NodeList"]
    [a, b] = parse_sacct_parsable("7|COMPLETED|1-02:03:04|1500|n1\n8|COMPLETED|03:04|0|n1", fields)
    assert (a.elapsed_s, a.energy_j) == (93784, 1500.0)
    assert (b.elapsed_s, b.energy_j) == (184, None)


def test_array_and_het_ids_are_kept_as_text_in_both_formats() -> None:
    fields = ["JobID", "State"]
    records = parse_sacct_parsable("7_3|RUNNING\n7_3.batch|RUNNING\n9+1|PENDING\n9+1.0|PENDING", fields)
    assert [r.job_id for r in records] == ["7_3", "9+1"]
    job = json.loads(read(FIXTURES / "25.05" / "sacct.json"))["jobs"][0]
    job["array"]["job_id"], job["array"]["task_id"] = 500, {"set": True, "infinite": False, "number": 3}
    [record] = parse_sacct_json(json.dumps({"jobs": [job]}))
    assert record.job_id == "500_3"


def test_signalled_exit_in_json() -> None:
    job = json.loads(read(FIXTURES / "25.05" / "sacct.json"))["jobs"][2]
    job["exit_code"] = job["steps"][0]["exit_code"]  # SIGNALED, TERM
    [record] = parse_sacct_json(json.dumps({"jobs": [job]}))
    assert (record.exit_code, record.signal) == (None, 15)
    old = json.loads(read(FIXTURES / "23.02" / "sacct.json"))["jobs"][2]
    old["exit_code"] = old["steps"][0]["exit_code"]  # v0.0.39 spelling: signal_id
    [record] = parse_sacct_json(json.dumps({"jobs": [old]}))
    assert (record.exit_code, record.signal) == (None, 15)


def test_squeue_format_is_what_the_docs_say() -> None:
    assert SQUEUE_FORMAT.split("|")[-1] == "%k" and "%b" in SQUEUE_FORMAT
    assert SQUEUE_FORMAT_LONG.split(",")[-1] == "Comment:" and "tres-alloc:|" in SQUEUE_FORMAT_LONG
