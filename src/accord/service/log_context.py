"""What a log line is about: the request, job and site being handled, kept in context
variables so every line logged meanwhile carries them, and the two formats of
``accord up --log-format``: ``text`` (the default, for people) and ``json`` (one object
per line, for log collectors).

The API binds the request id (:func:`bound`, from :func:`request_id_from`); the broker binds
the job and its site while it drives one. A JSON line holds ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``event`` (the message), and ``request_id``, ``job_id`` and ``site``
when known (``exception`` too, with the traceback, when one was logged).
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from accord.domain.errors import InvalidInput, Problem

FIELDS = ("request_id", "job_id", "site")
LOG_FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX = 128
#: A request id a client may choose: letters, digits and ``._:-``, at most 128 of them.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Request ids need to be unique, not secret: a PRNG seeded once from the OS, not a system call
# a request (that call was 5 % of the event loop's time under load).
_IDS = random.Random(secrets.randbits(128))

_CONTEXT: dict[str, ContextVar[str | None]] = {f: ContextVar(f"accord_log_{f}", default=None)
                                               for f in FIELDS}


def request_id_from(header: str | None) -> str:
    """The client's request id if it is safe to log and echo (:data:`REQUEST_ID`), else a
    new one (32 hex digits). Raises nothing: a bad id is replaced, never refused."""
    if header is not None and REQUEST_ID.match(header):
        return header
    return f"{_IDS.getrandbits(128):032x}"


def current(field: str) -> str | None:
    """The value bound to ``field`` (one of :data:`FIELDS`) in this context, if any."""
    return _CONTEXT[field].get()


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Bind :data:`FIELDS` (``request_id``, ``job_id``, ``site``) for the block; a None
    value leaves the field as it was. Raises KeyError for another name (a programming error)."""
    tokens = [(_CONTEXT[k], _CONTEXT[k].set(v)) for k, v in values.items() if v is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        for field in FIELDS:
            value = getattr(record, field, None) or current(field)
            if value is not None:
                doc[field] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Send the process's log records to stderr in ``log_format`` (``text`` or ``json``).

    Raises:
        InvalidInput: at ``--log-format``, naming the value and the formats allowed.
    """
    if log_format not in LOG_FORMATS:
        raise InvalidInput([Problem("--log-format", "is not a log format", log_format,
                                    " or ".join(LOG_FORMATS))])
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
