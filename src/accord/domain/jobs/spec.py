"""Validate a submitted job document: the one validation of a submission.

Both the REST API and the CLI send a JSON-like mapping with the fields declared in
:mod:`accord.domain.jobs.fields`; :func:`parse_job` reads each by its kind and bounds, checks
the fields against each other and against the federation, and gives a :class:`JobSpec`, or
raises :class:`InvalidInput` listing every problem, each naming its field, the bad value and
what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.fieldreader import ID_ALLOWED, ID_PATTERN, FieldReader, is_country_code
from accord.domain.jobs.fields import (
    DEFAULT_TIME_LIMIT_S,
    FIELDS,
    INPUT_PATTERN,
    JOB_FIELDS,
    JOB_KEYS,
    MAX_ARGS,
    MAX_SCRIPT_BYTES,
    MAX_TIME_LIMIT_S,
    NAME_LENGTH,
    OUTPUT_PATTERN,
    RESERVED_NAMES,
    FieldKind,
    JobField,
)
from accord.domain.jobs.model import JobSpec

__all__ = ["DEFAULT_TIME_LIMIT_S", "JOB_KEYS", "MAX_ARGS", "MAX_SCRIPT_BYTES", "MAX_TIME_LIMIT_S",
           "ParsedJob", "parse_job", "parse_job_spec", "parse_time_limit"]

TIME_LIMIT_ALLOWED = (
    "seconds (e.g. 3600), '90s', '30m', '2h', '1d', 'HH:MM:SS' or 'D-HH:MM:SS', up to 30 days"
)
INSTANT_ALLOWED = "an ISO 8601 time with a UTC offset, e.g. 2026-11-22T09:00:00Z"
UNKNOWN_FIELD = "unknown field (Extra inputs are not permitted)"

# Bounded digit runs: int() refuses strings of more than 4300 digits with a ValueError.
_UNIT = re.compile(r"^(\d{1,20})\s*([smhd]?)$")
_CLOCK = re.compile(r"^(?:(\d{1,20})-)?(\d{1,20}):(\d{1,2}):(\d{1,2})$")
# Instants a job may name: placement does arithmetic on them, which must stay inside
# datetime's years 1..9999 whatever the UTC offset.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

Value = str | int | datetime | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """A valid job document: its spec, and which fields the document gave (not null). The
    gate tells a project left out (``spec.project`` is then ``default``) from one named."""

    spec: JobSpec
    given: frozenset[str]


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
    """The spec of a job document (:func:`parse_job`).

    Raises:
        InvalidInput: every problem found, each naming its field.
    """
    return parse_job(doc, federation).spec


def parse_job(doc: Mapping[str, object], federation: Federation, now: datetime | None = None) -> ParsedJob:
    """Validate a job document and build its spec; with ``now``, a deadline must be after it
    (a submission's; a spec read back from the store has none).

    Raises:
        InvalidInput: every problem found, each naming its field, the bad value and what
            is allowed (an unknown field, a value of the wrong kind or out of its bounds, a
            blank program, a deadline passed, a name the federation does not know, a job no
            pool is large enough for).
    """
    r = FieldReader()
    for key in doc:
        if key not in FIELDS:
            r.add(str(key), UNKNOWN_FIELD, key, ", ".join(sorted(JOB_KEYS)))
    v = read_fields(r, doc)
    _command_or_script(r, v)
    _known(r, v, federation)
    earliest, deadline = v.instant("earliest_start"), v.instant("deadline")
    _check_times(r, earliest, deadline, now)
    gpus = v.count("gpus")
    if gpus is not None:
        _check_fits(r, gpus, v.text("gpu_model"), federation)
    if r.problems:
        raise InvalidInput(r.problems)
    command, script = v.strings("command"), v.text("script")
    spec = JobSpec(
        name=v.text("name") or _default_name(command, script),
        gpus=gpus or 1,
        time_limit_s=v.count("time_limit") or DEFAULT_TIME_LIMIT_S,
        command=command,
        script=script,
        gpu_model=v.text("gpu_model"),
        project=v.text("project") or "default",
        partner=v.text("partner"),
        theme=v.text("theme"),
        earliest_start=earliest,
        deadline=deadline,
        data_residency=v.strings("data_residency"),
        site=v.text("site"),
        inputs=v.strings("inputs"),
        outputs=v.strings("outputs"),
    )
    return ParsedJob(spec, frozenset(v.given))


class Values:
    """The fields read well from a document, typed by their kind; a field not given has its
    default (if it has one), a bad one nothing."""

    def __init__(self) -> None:
        self.given: set[str] = set()
        self.got: dict[str, Value] = {}

    def text(self, name: str) -> str | None:
        x = self.got.get(name)
        return x if isinstance(x, str) else None

    def count(self, name: str) -> int | None:
        x = self.got.get(name)
        return x if isinstance(x, int) else None

    def strings(self, name: str) -> tuple[str, ...]:
        x = self.got.get(name)
        return x if isinstance(x, tuple) else ()

    def instant(self, name: str) -> datetime | None:
        x = self.got.get(name)
        return x if isinstance(x, datetime) else None


def read_fields(r: FieldReader, doc: Mapping[str, object]) -> Values:
    """Each declared field of ``doc`` read by its kind and checked against its bounds
    (problems to ``r``); ``null`` is "not given" for a field without a default."""
    v = Values()
    for f in JOB_FIELDS:
        value = doc.get(f.name)
        if value is None:
            if f.default is not None:
                if f.name in doc:
                    r.add(f.name, "must not be null", allowed=f"a value, or leave it out for {f.default}")
                v.got[f.name] = f.default
            continue
        v.given.add(f.name)
        got = READERS[f.kind](r, f, value)
        if got is not None:
            v.got[f.name] = got
    return v


# ------------------------------------------------------------ one reader per kind
def _text(r: FieldReader, f: JobField, value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        r.add(f.name, "must be a non-empty string", value, "a non-empty string")
        return None
    if _too_long(r, f, value):
        return None
    return value


def _too_long(r: FieldReader, f: JobField, value: object, allowed: str = "") -> bool:
    """Whether ``value`` is text longer than ``f`` allows (a problem to ``r`` if so)."""
    if not isinstance(value, str) or f.max_length is None or len(value) <= f.max_length:
        return False
    bound = f"at most {f.max_length} characters"
    r.add(f.name, f"is too long ({len(value)} characters)", value,
          f"{allowed}, {bound}" if allowed else bound)
    return True


def _ident(r: FieldReader, f: JobField, value: object) -> str | None:
    text = _text(r, f, value)
    if text is not None and not ID_PATTERN.match(text):
        r.add(f.name, "is not a valid id", text, ID_ALLOWED)
        return None
    return text


def _script(r: FieldReader, f: JobField, value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        r.add(f.name, "must be a non-empty string", value, "the text of a batch script")
        return None
    size = len(value.encode(errors="surrogatepass"))
    if f.max_length is not None and size > f.max_length:
        r.add(f.name, "is too large", f"{size} bytes", f"at most {f.max_length} bytes")
        return None
    return value


def _args(r: FieldReader, f: JobField, value: object) -> tuple[str, ...] | None:
    allowed = (f'a non-empty list of strings, e.g. ["python", "-c", "print(1)"], at most {f.max_items} '
               f"items and {f.max_length} characters in all")
    size = sum(len(a) for a in value if isinstance(a, str)) if isinstance(value, list) else 0
    if not isinstance(value, list):
        r.add(f.name, "must be a valid list of strings", value, allowed)
    elif not value or not all(isinstance(a, str) for a in value):
        r.add(f.name, "must be a non-empty list of strings", value, allowed)
    elif f.max_items is not None and len(value) > f.max_items:
        r.add(f.name, "has too many items", f"{len(value)} items", allowed)
    elif f.max_length is not None and size > f.max_length:
        r.add(f.name, f"is too long ({size} characters in all)", f"{len(value)} arguments", allowed)
    elif not value[0].strip():
        r.add(f.name, "names no program (its first item is blank)", value,
              "the program to run first, e.g. python, then its arguments")
    elif any("\x00" in a for a in value):
        r.add(f.name, "arguments must not contain NUL characters", allowed="plain text")
    else:
        return tuple(value)
    return None


def _count(r: FieldReader, f: JobField, value: object) -> int | None:
    low = 1 if f.minimum is None else f.minimum
    allowed = f"a whole number >= {low}" + ("" if f.maximum is None else f", at most {f.maximum}")
    if isinstance(value, bool) or not isinstance(value, int):
        r.add(f.name, "must be a whole number", value, allowed)
    elif value < low:
        r.add(f.name, f"must be greater than or equal to {low}", value, allowed)
    elif f.maximum is not None and value > f.maximum:
        r.add(f.name, f"must be less than or equal to {f.maximum}", value, allowed)
    else:
        return value
    return None


def _duration(r: FieldReader, f: JobField, value: object) -> int | None:
    if _too_long(r, f, value, TIME_LIMIT_ALLOWED):
        return None
    seconds = parse_time_limit(value)
    if seconds is None:
        r.add(f.name, "is not a valid time limit", value, TIME_LIMIT_ALLOWED)
    return seconds


def _instant(r: FieldReader, f: JobField, value: object) -> datetime | None:
    if _too_long(r, f, value, INSTANT_ALLOWED):
        return None
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        r.add(f.name, "is not a time with a UTC offset", value, INSTANT_ALLOWED)
        return None
    try:
        in_range = EARLIEST_INSTANT <= parsed.astimezone(UTC) < LATEST_INSTANT
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        in_range = False
    if not in_range:
        r.add(f.name, "is out of range", value,
              f"a time from {EARLIEST_INSTANT.date()} to {LATEST_INSTANT.date()} (UTC)")
        return None
    return parsed


def _countries(r: FieldReader, f: JobField, value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        r.add(f.name, "must be a list of strings", value, 'e.g. ["a", "b"]')
        return None
    if f.max_items is not None and len(value) > f.max_items:
        r.add(f.name, "has too many items", f"{len(value)} items", f"at most {f.max_items} country codes")
        return None
    bad = [c for c in value if not is_country_code(c)]
    for c in bad:
        r.add(f.name, "is not a list of ISO 3166-1 alpha-2 codes", c, 'e.g. ["GB", "FR"]')
    return None if bad else tuple(value)


def _inputs(r: FieldReader, f: JobField, value: object) -> tuple[str, ...] | None:
    items = _list(r, f, value, "input files")
    if items is None:
        return None
    bad = [x for x in items if not re.fullmatch(INPUT_PATTERN, x)]
    for x in bad:
        r.add(f.name, "is not NAME=sha256:HEX", x, "a file name (letters, digits, . _ -; at most 100) "
              "and the SHA-256 of a file uploaded to the hub (accord submit --input FILE)")
    names = [x.split("=", 1)[0] for x in items]
    clashes = sorted({n for n in names if names.count(n) > 1 or n in RESERVED_NAMES})
    for n in clashes:
        r.add(f.name, "names a file twice or one the job's directory keeps for itself", n,
              "distinct names other than " + ", ".join(sorted(RESERVED_NAMES)))
    return None if bad or clashes else tuple(items)


def _outputs(r: FieldReader, f: JobField, value: object) -> tuple[str, ...] | None:
    items = _list(r, f, value, "paths")
    if items is None:
        return None
    bad = [x for x in items if not re.fullmatch(OUTPUT_PATTERN, x) or ".." in x.split("/")]
    for x in bad:
        r.add(f.name, "is not a path inside the job's directory", x,
              "a relative path or pattern (letters, digits, . _ - / * ? [ ]; no '..'), e.g. logs/*.json")
    return None if bad else tuple(items)


def _list(r: FieldReader, f: JobField, value: object, what: str) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        r.add(f.name, "must be a list of strings", value, 'e.g. ["a", "b"]')
        return None
    if f.max_items is not None and len(value) > f.max_items:
        r.add(f.name, "has too many items", f"{len(value)} items", f"at most {f.max_items} {what}")
        return None
    return list(value)


READERS: dict[FieldKind, Callable[[FieldReader, JobField, object], Value | None]] = {
    FieldKind.TEXT: _text, FieldKind.IDENT: _ident, FieldKind.SCRIPT: _script, FieldKind.ARGS: _args,
    FieldKind.COUNT: _count, FieldKind.DURATION: _duration, FieldKind.INSTANT: _instant,
    FieldKind.COUNTRIES: _countries, FieldKind.INPUTS: _inputs, FieldKind.OUTPUTS: _outputs,
}


# ------------------------------------------------------------ the fields together
def _command_or_script(r: FieldReader, v: Values) -> None:
    if "command" not in v.given and "script" not in v.given:
        r.add("command", "a job needs a command or a script",
              allowed='"command": ["python", "train.py"] or "script": "#!/bin/bash ..."')
    elif "command" in v.given and "script" in v.given:
        r.add("script", "give either command or script, not both", allowed="one of them")


def _known(r: FieldReader, v: Values, federation: Federation) -> None:
    """The names the federation must know: GPU model, partner, theme (if it lists any), site."""
    r.member(v.text("gpu_model"), "gpu_model", federation.gpu_model_names, "GPU model")
    r.member(v.text("partner"), "partner", [p.id for p in federation.partners], "partner")
    if federation.themes:
        r.member(v.text("theme"), "theme", federation.themes, "theme")
    r.member(v.text("site"), "site", [s.id for s in federation.sites], "site")


def _check_times(r: FieldReader, earliest: datetime | None, deadline: datetime | None,
                 now: datetime | None) -> None:
    """A deadline after the earliest start, and (with ``now``) not already passed."""
    if earliest and deadline and deadline <= earliest:
        r.add("deadline", "must be after earliest_start", deadline.isoformat(),
              f"a time after {earliest.isoformat()}")
    elif now is not None and deadline is not None and deadline <= now:
        r.add("deadline", "is in the past", deadline.isoformat(),
              f"a time after now ({now.astimezone(UTC).isoformat(timespec='seconds')}), or none")


def _default_name(command: tuple[str, ...], script: str | None) -> str:
    if command:
        return command[0].rsplit("/", 1)[-1][:NAME_LENGTH]
    return "script" if script else "job"


def _check_fits(r: FieldReader, gpus: int, model: str | None, federation: Federation) -> None:
    sizes = [p.gpus for s in federation.sites for p in s.pools
             if model is None or p.gpu_model == model]
    largest = max(sizes, default=0)
    if gpus > largest:
        what = f"pool of {model}" if model else "pool"
        r.add("gpus", f"more GPUs than any {what} has", gpus, f"at most {largest}")
