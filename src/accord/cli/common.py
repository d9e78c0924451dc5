"""What every area of the command line shares: exit statuses, the parser class, the
:class:`Command` record the registry is made of, the client handle, printing, and the
job's own arguments (``submit`` and ``preview`` take the same).

Areas import this module; it imports no area.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from accord.domain.errors import InvalidInput, Problem
from accord.domain.jobs.fields import FIELDS, JOB_FIELDS, LIST_KINDS, FieldKind, JobField
from accord.domain.jobs.files import FILE_BYTES

if TYPE_CHECKING:
    from accord.client import Client

EXIT_UNAVAILABLE = 1
EXIT_INPUT = 2
FINAL = {"completed", "failed", "cancelled", "timed_out"}

Doc = dict[str, Any]


class Api(Protocol):
    """What the access and campaign commands need of :class:`accord.client.Client`
    (tests pass a fake)."""

    def get(self, path: str, **params: Any) -> Any:
        """GET, with the query parameters that are not None."""

    def post(self, path: str, body: Doc | None = None) -> Any:
        """POST a JSON body (None values left out)."""

    def delete(self, path: str) -> Any:
        """DELETE."""


#: A command that talks to the server: the arguments, the command after ``--`` and the
#: API client (a handler may ask for less, e.g. :class:`Api`); its exit status.
Handler = Callable[[argparse.Namespace, list[str], "Client"], int]
#: A command that runs without a server: its exit status, or None when this use of the
#: command needs the server after all (``accord ledger verify`` runs here,
#: ``accord ledger balances`` does not).
Offline = Callable[[argparse.Namespace], "int | None"]
#: Adds a command's own arguments to its parser.
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """One command of ``accord``, as its area declares it for the registry.

    A command has either ``verbs`` (``accord token create``, ``accord token list``...)
    or at least one handler: ``offline``, tried first, and ``run``, with the API client.
    A leaf takes the shared options (``--server``, ``--data-dir``, ``--json``,
    ``--token-file``) unless ``shared`` is False; a command with verbs takes none itself.
    ``verbs_dest`` and ``verbs_metavar`` name the verb in usage and errors.
    """

    name: str
    help: str
    arguments: Arguments | None = None
    run: Handler | None = None
    offline: Offline | None = None
    verbs: tuple[Command, ...] = ()
    description: str | None = None
    shared: bool = True
    verbs_dest: str = "verb"
    verbs_metavar: str | None = "ACTION"

    def __post_init__(self) -> None:
        if not self.verbs and self.run is None and self.offline is None:
            raise ValueError(f"command {self.name!r} has neither verbs nor a handler")


class Parser(argparse.ArgumentParser):
    """argparse's parser, printing usage errors as ``accord: error: ...`` with status 2."""

    def error(self, message: str) -> Any:  # argparse prints usage; keep exit status 2
        self.print_usage(sys.stderr)
        print(f"accord: error: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT)


def positionals(*names: str) -> Arguments:
    """Arguments that are just these positionals (``accord show JOB``)."""

    def add(parser: argparse.ArgumentParser) -> None:
        for name in names:
            parser.add_argument(name)

    return add


def leaf(name: str, text: str, run: Handler, arguments: Arguments | None = None) -> Command:
    """A command that runs ``run`` with the API client; its help is its description too."""
    return Command(name, text, arguments, run=run, description=text)


def group(name: str, text: str, *verbs: Command) -> Command:
    """A command with verbs (``accord token create``...); its help is its description too."""
    return Command(name, text, verbs=verbs, description=text)


# ---------------------------------------------------------------------------- output
def output(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> int:
    """Print ``data`` as indented JSON (``--json``) or as ``human`` renders it; status 0."""
    print(json.dumps(data, indent=2) if args.json else human(data))
    return 0


def emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> int:
    """As :func:`output`, flushed at once; a reader that stops early (``| head``) is not
    an error."""
    try:
        print(json.dumps(data, indent=2) if args.json else human(data), flush=True)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def segment(value: str) -> str:
    """``value`` quoted as one segment of a URL path (:func:`accord.client.segment`)."""
    from accord.client import segment as quoted

    return quoted(value)


# ---------------------------------------------------------------------------- a job's arguments
def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's own arguments, shared by ``submit`` and ``preview``: a script file (or
    ``-- COMMAND...``) and an option per declared field that is one
    (:data:`~accord.domain.jobs.fields.JOB_FIELDS`)."""
    parser.add_argument("script", nargs="?", type=Path, help="a batch script file")
    for f in JOB_FIELDS:
        if not f.cli:
            continue
        extra: dict[str, Any] = {}
        if f.kind is FieldKind.COUNT:
            extra["type"] = whole_number(f)
        if f.kind in LIST_KINDS:
            extra["action"] = "append"
        text = f.help
        if f.cli_default is not None:
            extra["default"] = f.cli_default
            text += f" (default {f.cli_default})"
        parser.add_argument(f.option, dest=f.name, help=text, **extra)
    parser.add_argument("--input", dest="input_files", action="append", type=Path, metavar="FILE",
                        help="a file for the job's directory, uploaded to the hub (repeatable; at most "
                             f"{FIELDS['inputs'].max_items}, {FILE_BYTES // 2**20} MiB each)")


def whole_number(f: JobField) -> Callable[[str], int]:
    """argparse's type for a count option: a usage error naming the option (argparse adds
    it), the value and what is allowed; the server checks the bounds (the same words as
    the API's)."""
    allowed = f"a whole number from {f.minimum or 1}" + (f" to {f.maximum}" if f.maximum else "")

    def convert(text: str) -> int:
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number (got {text!r}, allowed {allowed})") from None

    return convert


def job_document(args: argparse.Namespace, command: list[str]) -> Doc:
    """The job body for the API from the arguments of :func:`add_job_arguments` (the
    options given, or with a default; the server validates it).

    Raises:
        InvalidInput: nothing to run, both a script and a command, an unreadable script.
    """
    doc: Doc = {}
    if command and args.script:
        raise InvalidInput([Problem("command", "give a script file or -- COMMAND..., not both")])
    if command:
        doc["command"] = command
    elif args.script:
        try:
            doc["script"] = args.script.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput([Problem("script", f"cannot read: {exc}", str(args.script))]) from None
    else:
        raise InvalidInput([Problem("command", "nothing to run",
                                    allowed=f"accord {args.cmd} [options] -- COMMAND... or SCRIPT")])
    for f in JOB_FIELDS:
        value = getattr(args, f.name) if f.cli else None
        if value is not None:
            doc[f.name] = value
    if getattr(args, "input_files", None):
        doc["inputs"] = [f"{path.name}=sha256:{hashlib.sha256(input_bytes(path)).hexdigest()}"
                         for path in args.input_files]
    return doc


def input_bytes(path: Path) -> bytes:
    """An input file's bytes.

    Raises:
        InvalidInput: unreadable, empty or over the hub's bound, naming ``--input``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput([Problem("--input", f"cannot read: {exc.strerror}", str(path))]) from None
    if not data or len(data) > FILE_BYTES:
        raise InvalidInput([Problem("--input", "is empty" if not data else "is too large",
                                    f"{path} ({len(data):,} bytes)", f"1 to {FILE_BYTES:,} bytes")])
    return data
