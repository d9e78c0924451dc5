"""The ``accord`` command line: a thin shell over the runtime and the REST client.

Exit status: 0 success, 1 Accord or a site is unavailable, 2 bad input (usage,
invalid files or specs, unknown ids, conflicts), 130 interrupted. A reader that stops
reading early (``accord jobs --json | head -c 100``) ends any command quietly, with
status 0: it is what the reader asked for, not an error.

The commands live in one module per area (:mod:`~accord.cli.server`,
:mod:`~accord.cli.jobs`, :mod:`~accord.cli.ledger`, :mod:`~accord.cli.simulate`,
:mod:`~accord.cli.access`, :mod:`~accord.cli.campaigns`); each declares its commands
as :class:`~accord.cli.common.Command` records in its ``COMMANDS``. :data:`REGISTRY`
gathers them; :func:`build_parser` makes the parser from it and :func:`main` runs the
handler the parser chose. The areas import :mod:`accord.cli.common` and nothing else
of the command line; only this module imports the areas.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from accord.cli import access, campaigns, jobs, ledger, notify, server, simulate, site, witness
from accord.cli.common import EXIT_INPUT, EXIT_UNAVAILABLE, Command, Parser, job_document
from accord.domain.errors import AccordError, InvalidInput, Unavailable

__all__ = ["REGISTRY", "build_parser", "job_document", "main"]

#: Every command, in the order ``accord --help`` lists them.
REGISTRY: tuple[Command, ...] = (
    *server.COMMANDS,
    jobs.SUBMIT,
    *ledger.COMMANDS,
    *jobs.COMMANDS,
    *simulate.COMMANDS,
    *access.COMMANDS,
    *campaigns.COMMANDS,
    *notify.COMMANDS,
    *site.COMMANDS,
    *witness.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command of :data:`REGISTRY`."""
    parser = Parser(prog="accord", description="Broker for international reciprocal AI compute.")
    commands = parser.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    shared = _shared_options()
    for command in REGISTRY:
        _add(commands, command, shared)
    return parser


def _shared_options() -> argparse.ArgumentParser:
    """The options every command that talks to Accord takes."""
    shared = Parser(add_help=False)
    shared.add_argument("--server", help="Accord's URL (default: the one 'accord up' wrote)")
    shared.add_argument("--data-dir", type=Path, help="data directory (default ~/.accord)")
    shared.add_argument("--json", action="store_true", help="print JSON")
    shared.add_argument("--token-file", type=Path, metavar="PATH",
                        help="a file holding an API token (before $ACCORD_TOKEN and the "
                             "data directory's admin token)")
    return shared


def _add(commands: Any, command: Command, shared: argparse.ArgumentParser) -> None:
    """Add ``command`` (and its verbs) to ``commands``, an argparse subparsers action.

    A leaf's parser remembers its handlers: ``offline`` and ``access_handler`` (the one
    that runs with access to the API; the name the access commands always had).
    """
    if command.verbs:
        parser = commands.add_parser(command.name, help=command.help, description=command.description)
        verbs = parser.add_subparsers(dest=command.verbs_dest, required=True,
                                      metavar=command.verbs_metavar, parser_class=type(parser))
        for verb in command.verbs:
            _add(verbs, verb, shared)
        return
    parser = commands.add_parser(command.name, parents=[shared] if command.shared else [],
                                 help=command.help, description=command.description)
    if command.arguments is not None:
        command.arguments(parser)
    parser.set_defaults(offline=command.offline, access_handler=command.run)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``accord`` console script: runs the command and exits with its
    status (see the module's docstring); prints one line per problem, never a traceback."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, command = args_in[:cut], args_in[cut + 1:]
    try:
        args = build_parser().parse_args(args_in)   # --help and usage errors exit here
        sys.exit(_run(args, command))
    except SystemExit:
        _flush()
        raise
    except BrokenPipeError:
        _reader_gone()
    except InvalidInput as exc:
        for problem in exc.problems:
            print(problem.render(), file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except Unavailable as exc:
        print(f"accord: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    except AccordError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)


def _flush() -> None:
    """Flush standard output now: a reader that has gone shows here, not in Python's exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()


def _reader_gone() -> None:
    """Standard output's reader stopped reading (``| head``): end quietly, status 0, with
    standard output pointed at nothing so that Python's final flush cannot complain."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's captured stream): nothing to flush
        pass
    sys.exit(0)


def _run(args: argparse.Namespace, command: list[str]) -> int:
    """Run the chosen command: without a server when it can, else with an API client."""
    if args.offline is not None:
        status = args.offline(args)
        if status is not None:
            return int(status)
    from accord.client import Client, discover

    url, token = discover(args.server, args.data_dir, args.token_file)
    client = Client(url, token)
    try:
        return _remote(args, command, client)
    finally:
        client.close()


def _remote(args: argparse.Namespace, command: list[str], client: Any) -> int:
    """Run the chosen command's handler with ``client`` (a test may pass a fake)."""
    return int(args.access_handler(args, command, client))
