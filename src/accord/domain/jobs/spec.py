"""Validate a submitted job document against the federation.

Both the REST API and the CLI send a JSON-like mapping; this turns it into a
:class:`JobSpec` or raises :class:`InvalidInput` listing every problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.fieldreader import ID_ALLOWED, ID_PATTERN, FieldReader
from accord.domain.jobs.model import JobSpec

MAX_TIME_LIMIT_S = 30 * 24 * 3600
DEFAULT_TIME_LIMIT_S = 3600
MAX_SCRIPT_BYTES = 1_000_000
MAX_ARGS = 1000
JOB_KEYS = ("name", "command", "script", "gpus", "gpu_model", "time_limit", "project", "partner",
            "theme", "earliest_start", "deadline", "data_residency", "site")
TIME_LIMIT_ALLOWED = (
    "seconds (e.g. 3600), '90s', '30m', '2h', '1d', 'HH:MM:SS' or 'D-HH:MM:SS', up to 30 days"
)

# Bounded digit runs: int() refuses strings of more than 4300 digits with a ValueError.
_UNIT = re.compile(r"^(\d{1,20})\s*([smhd]?)$")
_CLOCK = re.compile(r"^(?:(\d{1,20})-)?(\d{1,20}):(\d{1,2}):(\d{1,2})$")
# Instants a job may name: placement does arithmetic on them, which must stay inside
# datetime's years 1..9999 whatever the UTC offset.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_limit(value: object) -> int | None:
    """Seconds for a time limit, or ``None`` if it is not one.

    >>> parse_time_limit("2h"), parse_time_limit("1-00:00:30"), parse_time_limit(90)
    (7200, 86430, 90)
    >>> parse_time_limit("soon") is None
    True
    """
    if isinstance(value, bool):
        return None
    seconds: int | None = None
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        seconds = _parse_time_text(value.strip().lower())
    if seconds is None:
        return None
    return seconds if 0 < seconds <= MAX_TIME_LIMIT_S else None


def _parse_time_text(text: str) -> int | None:
    unit = _UNIT.match(text)
    if unit:
        return int(unit.group(1)) * _SECONDS[unit.group(2)]
    clock = _CLOCK.match(text)
    if clock:
        days, hours, minutes, secs = (int(g) if g else 0 for g in clock.groups())
        if minutes < 60 and secs < 60:
            return ((days * 24 + hours) * 60 + minutes) * 60 + secs
    return None


def parse_job_spec(doc: Mapping[str, object], federation: Federation) -> JobSpec:
    """Validate a job document and build its spec.

    Raises:
        InvalidInput: every problem found, each naming its field.
    """
    r = FieldReader()
    r.unknown_keys(doc, "", JOB_KEYS)
    command, script = _command(r, doc)
    gpus = _gpus(r, doc)
    model = r.text(doc, "gpu_model", "", required=False)
    r.member(model, "gpu_model", federation.gpu_model_names, "GPU model")
    time_limit = _time_limit(r, doc)
    project = _ident(r, doc, "project") or "default"
    partner = r.text(doc, "partner", "", required=False)
    r.member(partner, "partner", [p.id for p in federation.partners], "partner")
    theme = r.text(doc, "theme", "", required=False)
    if federation.themes:
        r.member(theme, "theme", federation.themes, "theme")
    site = r.text(doc, "site", "", required=False)
    r.member(site, "site", [s.id for s in federation.sites], "site")
    earliest, deadline = _instant(r, doc, "earliest_start"), _instant(r, doc, "deadline")
    if earliest and deadline and deadline <= earliest:
        r.add("deadline", "must be after earliest_start", deadline.isoformat(),
              f"a time after {earliest.isoformat()}")
    residency = _residency(r, doc)
    if gpus is not None:
        _check_fits(r, gpus, model, federation)
    if r.problems:
        raise InvalidInput(r.problems)
    return JobSpec(
        name=_name(r, doc, command, script),
        gpus=gpus or 1,
        time_limit_s=time_limit or DEFAULT_TIME_LIMIT_S,
        command=command,
        script=script,
        gpu_model=model,
        project=project,
        partner=partner,
        theme=theme,
        earliest_start=earliest,
        deadline=deadline,
        data_residency=residency,
        site=site,
    )


def _command(r: FieldReader, doc: Mapping[str, object]) -> tuple[tuple[str, ...], str | None]:
    command = doc.get("command")
    script = doc.get("script")
    if command is None and script is None:
        r.add("command", "a job needs a command or a script",
              allowed='"command": ["python", "train.py"] or "script": "#!/bin/bash ..."')
        return (), None
    if command is not None and script is not None:
        r.add("script", "give either command or script, not both", allowed="one of them")
        return (), None
    if script is not None:
        if not isinstance(script, str) or not script.strip():
            r.add("script", "must be a non-empty string", script, "the text of a batch script")
            return (), None
        if len(script.encode()) > MAX_SCRIPT_BYTES:
            r.add("script", "is too large", f"{len(script.encode())} bytes",
                  f"at most {MAX_SCRIPT_BYTES} bytes")
            return (), None
        return (), script
    if (not isinstance(command, list) or not command
            or not all(isinstance(a, str) for a in command) or len(command) > MAX_ARGS):
        r.add("command", "must be a non-empty list of strings", command,
              f'e.g. ["python", "-c", "print(1)"], at most {MAX_ARGS} items')
        return (), None
    if any("\x00" in a for a in command):
        r.add("command", "arguments must not contain NUL characters", allowed="plain text")
        return (), None
    return tuple(command), None


def _gpus(r: FieldReader, doc: Mapping[str, object]) -> int | None:
    if "gpus" not in doc:
        return 1
    return r.integer(doc, "gpus", "", minimum=1)


def _time_limit(r: FieldReader, doc: Mapping[str, object]) -> int | None:
    value = doc.get("time_limit")
    if value is None:
        return DEFAULT_TIME_LIMIT_S
    seconds = parse_time_limit(value)
    if seconds is None:
        r.add("time_limit", "is not a valid time limit", value, TIME_LIMIT_ALLOWED)
    return seconds


def _ident(r: FieldReader, doc: Mapping[str, object], key: str) -> str | None:
    value = r.text(doc, key, "", required=False)
    if value is not None and not ID_PATTERN.match(value):
        r.add(key, "is not a valid id", value, ID_ALLOWED)
        return None
    return value


def _name(
    r: FieldReader, doc: Mapping[str, object], command: tuple[str, ...], script: str | None
) -> str:
    name = r.text(doc, "name", "", required=False)
    if name is not None:
        return name[:128]
    if command:
        return command[0].rsplit("/", 1)[-1][:128]
    return "script" if script else "job"


def _instant(r: FieldReader, doc: Mapping[str, object], key: str) -> datetime | None:
    value = doc.get(key)
    if value is None:
        return None
    allowed = "an ISO 8601 time with a UTC offset, e.g. 2026-11-22T09:00:00Z"
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        r.add(key, "is not a time with a UTC offset", value, allowed)
        return None
    try:
        in_range = EARLIEST_INSTANT <= parsed.astimezone(UTC) < LATEST_INSTANT
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        in_range = False
    if not in_range:
        r.add(key, "is out of range", value,
              f"a time from {EARLIEST_INSTANT.date()} to {LATEST_INSTANT.date()} (UTC)")
        return None
    return parsed


def _residency(r: FieldReader, doc: Mapping[str, object]) -> tuple[str, ...]:
    countries = r.strings(doc, "data_residency", "")
    for c in countries:
        if not (len(c) == 2 and c.isalpha() and c.isupper()):
            r.add("data_residency", "is not a list of ISO 3166-1 alpha-2 codes", c,
                  'e.g. ["GB", "FR"]')
    return countries


def _check_fits(r: FieldReader, gpus: int, model: str | None, federation: Federation) -> None:
    sizes = [p.gpus for s in federation.sites for p in s.pools
             if model is None or p.gpu_model == model]
    largest = max(sizes, default=0)
    if gpus > largest:
        what = f"pool of {model}" if model else "pool"
        r.add("gpus", f"more GPUs than any {what} has", gpus, f"at most {largest}")

