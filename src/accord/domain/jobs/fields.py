"""The fields of a job submission, declared once.

A job document (what ``accord submit`` builds and ``POST /api/v1/jobs`` takes) has the
fields of :data:`JOB_FIELDS`, each of a kind from a closed vocabulary (:class:`FieldKind`)
with its bounds. Everything that names the fields derives them from here:

* the parser's accepted keys and each field's bounds (:mod:`accord.domain.jobs.spec`, the
  one validation of a submission);
* the JSON Schema of the API's request body (:func:`request_schema`, in the OpenAPI
  document);
* the CLI's job options and the document it builds (:mod:`accord.cli.common`).

The stored encoding of the parsed spec derives from
:class:`~accord.domain.jobs.model.JobSpec` itself (:mod:`accord.domain.jobs.codec`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from accord.domain.federation.limits import COUNTRIES, GPU_MODEL_NAME, POOL_GPUS, THEME
from accord.domain.fieldreader import ID_PATTERN


class FieldKind(enum.Enum):
    """What a field's value is; each kind has one reader, one schema and one CLI form."""

    TEXT = "text"              # a non-empty string (not only spaces), at most max_length characters
    IDENT = "ident"            # an id: lower-case letters, digits, '-' and '_'
    SCRIPT = "script"          # the text of a batch script, at most max_length bytes in UTF-8
    ARGS = "args"              # the command and its arguments: a non-empty list of strings, the
                               # first (the program) not blank, at most max_length characters in all
    COUNT = "count"            # a whole number from minimum to maximum
    DURATION = "duration"      # seconds from minimum to maximum, or text ('30m', '2h', 'HH:MM:SS')
    INSTANT = "instant"        # an ISO 8601 time with a UTC offset
    COUNTRIES = "countries"    # a list of ISO 3166-1 alpha-2 country codes
    INPUTS = "inputs"          # files uploaded to the hub first: a list of "NAME=sha256:HEX"
    OUTPUTS = "outputs"        # files the job leaves in its directory: relative paths or patterns


#: The kinds whose value is a list (the CLI repeats their option).
LIST_KINDS = frozenset({FieldKind.ARGS, FieldKind.COUNTRIES, FieldKind.INPUTS, FieldKind.OUTPUTS})


@dataclass(frozen=True, slots=True)
class JobField:
    """One field of a job document.

    ``default`` is the value a missing field takes (None: the field is simply not given,
    and an explicit JSON ``null`` means the same); a field with a default refuses ``null``.
    ``cli`` says whether ``accord submit`` and ``accord preview`` have an option for it
    (``--gpu-model`` for ``gpu_model``), with ``cli_default`` as its default.
    """

    name: str
    kind: FieldKind
    help: str
    max_length: int | None = None    # characters of text (bytes for a script; all arguments together
                                     # for a command)
    max_items: int | None = None     # items of a list
    minimum: int | None = None       # of a whole number (seconds for a duration)
    maximum: int | None = None
    default: int | None = None
    cli: bool = True
    cli_default: int | str | None = None

    @property
    def nullable(self) -> bool:
        """Whether ``null`` is taken as "not given"."""
        return self.default is None

    @property
    def option(self) -> str:
        """The CLI's option for the field."""
        return "--" + self.name.replace("_", "-")


MAX_ARGS = 1000
MAX_COMMAND_CHARS = 100_000
MAX_SCRIPT_BYTES = 1_000_000
MAX_GPUS = POOL_GPUS.maximum          # no pool of a federation is larger
MAX_TIME_LIMIT_S = 30 * 24 * 3600
DEFAULT_TIME_LIMIT_S = 3600
NAME_LENGTH = 128
ID_LENGTH = 63
MAX_COUNTRIES = COUNTRIES.maximum
COUNTRY_PATTERN = "^[A-Z]{2}$"
MAX_INPUTS = 20
MAX_OUTPUT_PATTERNS = 20
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
INPUT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}=sha256:[0-9a-f]{64}$"
OUTPUT_PATTERN = r"^[A-Za-z0-9_.*?\[\]-][A-Za-z0-9_.*?/\[\]-]{0,199}$"
RESERVED_NAMES = frozenset({"job.json", "job.json.tmp", "job.claim", "job.sbatch", "stdout", "stderr",
                            "result.json", "runner.pid", "runner.log"})

K = FieldKind
#: Every field of a job document, in the order the CLI lists its options.
JOB_FIELDS: tuple[JobField, ...] = (
    JobField("command", K.ARGS, "the command and its arguments (accord submit: after --)",
             max_length=MAX_COMMAND_CHARS, max_items=MAX_ARGS, cli=False),
    JobField("script", K.SCRIPT, "the text of a batch script (accord submit: a SCRIPT file)",
             max_length=MAX_SCRIPT_BYTES, cli=False),
    JobField("gpus", K.COUNT, "GPUs to run on", minimum=1, maximum=MAX_GPUS, default=1, cli_default=1),
    JobField("gpu_model", K.TEXT, "a GPU model of the federation, e.g. H100",
             max_length=GPU_MODEL_NAME.maximum),
    JobField("time_limit", K.DURATION, "e.g. 3600, 30m, 2h, 01:00:00", max_length=64, minimum=1,
             maximum=MAX_TIME_LIMIT_S, default=DEFAULT_TIME_LIMIT_S, cli_default="1h"),
    JobField("project", K.IDENT, "the project to charge (one you belong to)", max_length=ID_LENGTH),
    JobField("partner", K.TEXT, "the requesting partner (the project's home partner)", max_length=ID_LENGTH),
    JobField("theme", K.TEXT, "the research theme (default: the project's)", max_length=THEME.maximum),
    JobField("site", K.TEXT, "run at this site only", max_length=ID_LENGTH),
    JobField("name", K.TEXT, "a name for the job (default: the command's)", max_length=NAME_LENGTH),
    JobField("earliest_start", K.INSTANT, "not before this time (ISO 8601 with a UTC offset)",
             max_length=64),
    JobField("deadline", K.INSTANT, "ended by this time (ISO 8601 with a UTC offset)", max_length=64),
    JobField("data_residency", K.COUNTRIES, "ISO country code (repeatable)", max_items=MAX_COUNTRIES),
    JobField("inputs", K.INPUTS, "files for the job's directory, uploaded to the hub first "
             "(accord submit --input FILE; in a document NAME=sha256:HEX)", max_items=MAX_INPUTS, cli=False),
    JobField("outputs", K.OUTPUTS, "a file or pattern in the job's directory to bring home when it ends "
             "(repeatable), e.g. results.json or logs/*.json", max_items=MAX_OUTPUT_PATTERNS),
)
FIELDS: dict[str, JobField] = {f.name: f for f in JOB_FIELDS}
JOB_KEYS: tuple[str, ...] = tuple(FIELDS)


def request_schema() -> dict[str, Any]:
    """The JSON Schema of a job document, as the API documents its request body.

    >>> s = request_schema()
    >>> s["properties"]["gpus"]["type"], s["properties"]["name"]["anyOf"][0]["maxLength"]
    ('integer', 128)
    """
    return {
        "title": "JobSubmission",
        "description": "A job as submitted: a command or a script, and what it needs. The "
                       "federation's own checks (known sites, models, partners, themes; a pool "
                       "large enough) and the access rules follow.",
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: field_schema(f) for f in JOB_FIELDS},
    }


def field_schema(f: JobField) -> dict[str, Any]:
    """The JSON Schema of one field (``null`` allowed when it means "not given")."""
    schema = _kind_schema(f)
    if f.nullable:
        return {"anyOf": [schema, {"type": "null"}], "description": f.help}
    return {**schema, "default": f.default, "description": f.help}


def _kind_schema(f: JobField) -> dict[str, Any]:
    k = f.kind
    if k is K.TEXT:
        return {"type": "string", "minLength": 1, "maxLength": f.max_length, "pattern": r"\S"}
    if k is K.IDENT:
        return {"type": "string", "maxLength": f.max_length, "pattern": ID_PATTERN.pattern}
    if k is K.SCRIPT:
        return {"type": "string", "minLength": 1, "maxLength": f.max_length, "pattern": r"\S"}
    if k is K.ARGS:   # the schema bounds each argument; the parser all of them together
        return {"type": "array", "items": {"type": "string", "maxLength": f.max_length},
                "minItems": 1, "maxItems": f.max_items}
    if k is K.COUNT:
        return {"type": "integer", "minimum": f.minimum, "maximum": f.maximum}
    if k is K.DURATION:
        return {"anyOf": [{"type": "integer", "minimum": f.minimum, "maximum": f.maximum},
                          {"type": "string", "minLength": 1, "maxLength": f.max_length}]}
    if k is K.INSTANT:
        return {"type": "string", "format": "date-time", "maxLength": f.max_length}
    if k in (K.INPUTS, K.OUTPUTS):
        pattern = INPUT_PATTERN if k is K.INPUTS else OUTPUT_PATTERN
        return {"type": "array", "items": {"type": "string", "pattern": pattern}, "maxItems": f.max_items}
    return {"type": "array", "items": {"type": "string", "pattern": COUNTRY_PATTERN},
            "maxItems": f.max_items}
