"""The job's fields are declared once (``accord.domain.jobs.fields``): the parser, the API's
schema and the CLI all derive from the declaration, so they agree; and every bound is refused
with a problem naming the field, the bad value and what is allowed."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from accord import cli
from accord.domain.errors import InvalidInput, Problem
from accord.domain.federation.model import Federation
from accord.domain.jobs.fields import (
    FIELDS,
    JOB_FIELDS,
    JOB_KEYS,
    LIST_KINDS,
    FieldKind,
    JobField,
    request_schema,
)
from accord.domain.jobs.spec import parse_job, parse_job_spec

# A value of every declared field the small federation takes (``script`` goes without
# ``command``): a field added to the declaration must be added here.
EVERY: dict[str, object] = {
    "command": ["python", "train.py"], "gpus": 2, "gpu_model": "H100", "time_limit": "2h",
    "project": "clim", "partner": "uk", "theme": "climate", "site": "bristol", "name": "train",
    "earliest_start": "2026-11-22T09:00:00Z", "deadline": "2026-11-23T09:00:00+01:00",
    "data_residency": ["GB", "FR"], "inputs": ["data.csv=sha256:" + "ab" * 32],
    "outputs": ["results.json", "logs/*.json"],
}


def problems(doc: dict[str, object], fed: Federation) -> list[Problem]:
    with pytest.raises(InvalidInput) as info:
        parse_job_spec(doc, fed)
    return list(info.value.problems)


def test_every_declared_field_is_accepted_by_the_parser(small_federation: Federation) -> None:
    assert set(EVERY) | {"script"} == set(JOB_KEYS)
    parsed = parse_job(EVERY, small_federation)
    assert parsed.given == frozenset(EVERY)
    spec = parsed.spec
    assert (spec.command, spec.gpus, spec.gpu_model, spec.time_limit_s, spec.project, spec.partner,
            spec.theme, spec.site, spec.name, spec.data_residency) == (
        ("python", "train.py"), 2, "H100", 7200, "clim", "uk", "climate", "bristol", "train", ("GB", "FR"))
    assert spec.earliest_start is not None and spec.deadline is not None
    assert spec.inputs == ("data.csv=sha256:" + "ab" * 32,)
    assert spec.outputs == ("results.json", "logs/*.json")
    script = parse_job_spec({"script": "#!/bin/bash\ntrue\n"}, small_federation)
    assert script.script == "#!/bin/bash\ntrue\n" and script.name == "script"


def test_the_schema_has_every_field_and_nothing_else() -> None:
    schema = request_schema()
    assert tuple(schema["properties"]) == JOB_KEYS
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    for f in JOB_FIELDS:
        prop = schema["properties"][f.name]
        assert prop["description"] == f.help
        if f.nullable:
            assert prop["anyOf"][1] == {"type": "null"}
        else:
            assert prop["default"] == f.default


def _kind(f: JobField) -> dict[str, Any]:
    prop: dict[str, Any] = request_schema()["properties"][f.name]
    kind: dict[str, Any] = prop["anyOf"][0] if f.nullable else prop
    return kind


@pytest.mark.parametrize("f", [f for f in JOB_FIELDS if f.max_length is not None], ids=lambda f: f.name)
def test_the_schema_and_the_parser_agree_on_lengths(small_federation: Federation, f: JobField) -> None:
    kind = _kind(f)
    text = kind["anyOf"][1] if f.kind is FieldKind.DURATION else kind["items"] if f.kind is FieldKind.ARGS \
        else kind
    assert text["maxLength"] == f.max_length     # a command's: of each argument, and of all together
    doc = {"command": ["x"]} if f.name not in ("script", "command") else {}
    over = "a" * ((f.max_length or 0) + 1)
    found = problems({**doc, f.name: [over] if f.kind is FieldKind.ARGS else over}, small_federation)
    assert [p.where for p in found] == [f.name]
    assert found[0].message.startswith(("is too long", "is too large")), found
    assert found[0].got is not None and found[0].allowed and str(f.max_length) in found[0].allowed


@pytest.mark.parametrize("f", [f for f in JOB_FIELDS if f.max_items is not None], ids=lambda f: f.name)
def test_the_schema_and_the_parser_agree_on_items(small_federation: Federation, f: JobField) -> None:
    most = f.max_items or 0
    assert _kind(f)["maxItems"] == most
    def items(n: int) -> list[str]:
        if f.kind is FieldKind.INPUTS:   # names must differ
            return [f"f{i}=sha256:" + "0" * 64 for i in range(n)]
        return ["GB" if f.kind is FieldKind.COUNTRIES else "x"] * n

    at_most: dict[str, object] = {"command": ["x"], f.name: items(most)}
    assert parse_job_spec(at_most, small_federation)
    found = problems({**at_most, f.name: items(most + 1)}, small_federation)
    assert [(p.where, p.message, p.got) for p in found] == [
        (f.name, "has too many items", f"'{most + 1} items'")]
    assert found[0].allowed and str(most) in found[0].allowed


def test_the_schema_and_the_parser_agree_on_numbers(small_federation: Federation) -> None:
    gpus = FIELDS["gpus"]
    assert (_kind(gpus)["minimum"], _kind(gpus)["maximum"]) == (gpus.minimum, gpus.maximum)
    assert gpus.maximum is not None
    found = problems({"command": ["x"], "gpus": gpus.maximum + 1}, small_federation)
    assert [(p.where, p.message) for p in found] == [
        ("gpus", f"must be less than or equal to {gpus.maximum}")]
    limit = FIELDS["time_limit"]
    assert _kind(limit)["anyOf"][0]["maximum"] == limit.maximum
    assert parse_job_spec({"command": ["x"], "time_limit": limit.maximum}, small_federation)
    assert [p.where for p in problems({"command": ["x"], "time_limit": (limit.maximum or 0) + 1},
                                      small_federation)] == ["time_limit"]


@pytest.mark.parametrize(("doc", "where", "message", "got", "allowed"), [
    ({"name": "n" * 129}, "name", "is too long (129 characters)", "'" + "n" * 56, "at most 128 characters"),
    ({"name": ""}, "name", "must be a non-empty string", "''", "a non-empty string"),
    ({"name": 5}, "name", "must be a non-empty string", "5", "a non-empty string"),
    ({"gpus": None}, "gpus", "must not be null", None, "a value, or leave it out for 1"),
    ({"time_limit": None}, "time_limit", "must not be null", None, "a value, or leave it out for 3600"),
    ({"gpus": 2.0}, "gpus", "must be a whole number", "2.0", "a whole number >= 1, at most 1000000"),
    ({"data_residency": ["ÉÉ"]}, "data_residency", "is not a list of ISO 3166-1 alpha-2 codes", "'ÉÉ'",
     'e.g. ["GB", "FR"]'),
    ({"command": ["x"] * 1001}, "command", "has too many items", "'1001 items'",
     'a non-empty list of strings, e.g. ["python", "-c", "print(1)"], at most 1000 items'),
    ({"time_limit": "1" * 65}, "time_limit", "is too long (65 characters)", "'" + "1" * 56, "seconds"),
    ({"deadline": "2026-11-22T09:00:00Z" + " " * 50}, "deadline", "is too long (70 characters)",
     "'2026-11-22T09:00:00Z", "an ISO 8601 time"),
])
def test_bounds_are_refused_naming_the_field_value_and_what_is_allowed(
    small_federation: Federation, doc: dict[str, object], where: str, message: str, got: str | None,
    allowed: str,
) -> None:
    found = problems({"command": ["x"], **doc}, small_federation)
    assert [(p.where, p.message) for p in found] == [(where, message)]
    assert (found[0].got or "").startswith(got or "") and (got is not None) == (found[0].got is not None)
    assert (found[0].allowed or "").startswith(allowed)


def test_a_script_over_its_bytes_is_refused(small_federation: Federation) -> None:
    found = problems({"script": "é" * 500_001}, small_federation)   # 500 001 characters, 1 000 002 bytes
    assert [(p.where, p.message, p.got, p.allowed) for p in found] == [
        ("script", "is too large", "'1000002 bytes'", "at most 1000000 bytes")]


def test_null_is_not_given_for_a_field_without_a_default(small_federation: Federation) -> None:
    nulls = {f.name: None for f in JOB_FIELDS if f.nullable and f.name != "command"}
    parsed = parse_job({"command": ["x"], **nulls}, small_federation)
    assert parsed.given == {"command"} and parsed.spec.name == "x" and parsed.spec.project == "default"


def test_every_problem_is_listed_at_once(small_federation: Federation) -> None:
    found = problems({"command": "ls", "name": "n" * 200, "gpus": 0, "colour": "red",
                      "data_residency": ["GB"] * 301}, small_federation)
    assert sorted(p.where for p in found) == ["colour", "command", "data_residency", "gpus", "name"]


# ---------------------------------------------------------------- the CLI
def _parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", ["submit", "preview"])
def test_every_cli_field_is_an_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([command, "--help"])
    shown = capsys.readouterr().out
    for f in JOB_FIELDS:
        assert (f.option in shown) == f.cli, f.name
        if f.cli:
            assert f.help.split("(")[0].strip() in " ".join(shown.split()), f.name


def test_the_cli_document_has_every_option_given(small_federation: Federation) -> None:
    argv = ["submit"]
    for f in JOB_FIELDS:
        if f.cli:
            value = EVERY[f.name]
            for v in value if f.kind in LIST_KINDS and isinstance(value, list) else [value]:
                argv += [f.option, str(v)]
    doc = cli.job_document(_parse(*argv), ["python", "train.py"])
    assert doc == {k: v for k, v in EVERY.items() if k == "command" or FIELDS[k].cli}
    assert parse_job_spec(doc, small_federation).data_residency == ("GB", "FR")


def test_the_cli_sends_the_defaults_it_shows() -> None:
    doc = cli.job_document(_parse("submit"), ["true"])
    assert doc == {"command": ["true"], **{f.name: f.cli_default for f in JOB_FIELDS
                                           if f.cli_default is not None}}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("inputs", ["data.csv"], "is not NAME=sha256:HEX"),
    ("inputs", ["../x=sha256:" + "0" * 64], "is not NAME=sha256:HEX"),
    ("inputs", ["stdout=sha256:" + "0" * 64], "keeps for itself"),
    ("inputs", ["a=sha256:" + "0" * 64, "a=sha256:" + "1" * 64], "names a file twice"),
    ("inputs", [f"f{i}=sha256:" + "0" * 64 for i in range(21)], "has too many items"),
    ("outputs", ["../secret"], "is not a path inside the job's directory"),
    ("outputs", ["/etc/passwd"], "is not a path inside the job's directory"),
    ("outputs", ["a b"], "is not a path inside the job's directory"),
    ("outputs", "results.json", "must be a list of strings"),
    ("outputs", [f"f{i}" for i in range(21)], "has too many items"),
])
def test_files_in_and_out_are_refused_naming_what_is_wrong(small_federation: Federation, field: str,
                                                           value: object, message: str) -> None:
    found = problems({"command": ["x"], field: value}, small_federation)
    assert [p.where for p in found] and all(p.where == field for p in found)
    assert any(message in p.message for p in found), found
    assert all(p.allowed for p in found)
