"""``accord up`` (run the API, dispatcher and status page) and ``accord validate``
(check a federation file); neither needs a running server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accord.cli.common import Command


def _up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--federation", type=Path, help="federation TOML (default: the demo)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-dispatcher", action="store_true",
                        help="serve the API only; jobs are stored but not run (benchmarks)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text (default) or json: one JSON object a line with time, level, "
                             "event, request_id, job_id and site when known")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM",
                        help="serve HTTPS with this certificate chain (site agents need it; "
                             "with --tls-key)")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    parser.add_argument("--adopt-identity", action="store_true",
                        help="record this replica's signing key, admin token and job directories "
                             "as the hub's (after rotating a secret; every replica must then use "
                             "the same; docs/design/replicas.md)")


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path)


def up(args: argparse.Namespace) -> int:
    """``accord up``: serve until interrupted."""
    from accord.domain.errors import InvalidInput, Problem
    from accord.runtime import Settings, serve

    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidInput([Problem("--tls-key" if args.tls_cert else "--tls-cert",
                                    "is required with the other", None,
                                    "both --tls-cert and --tls-key, or neither")])
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    serve(Settings.resolve(args.data_dir, args.federation, args.port, args.host,
                           dispatch=not args.no_dispatcher, adopt_identity=args.adopt_identity,
                           log_format=args.log_format, tls=tls))
    return 0


def validate(args: argparse.Namespace) -> int:
    """``accord validate FILE``: a federation file's summary, or its problems (status 2)."""
    from accord.adapters.federation_file import load_federation

    fed = load_federation(args.file)
    gpus = sum(s.total_gpus for s in fed.sites)
    summary = {"file": str(args.file), "partners": len(fed.partners), "sites": len(fed.sites),
               "gpus": gpus, "agreements": len(fed.agreements)}
    if args.json:
        print(json.dumps({"valid": True, **summary}))
    else:
        print(f"{args.file}: valid — {len(fed.partners)} partners, {len(fed.sites)} sites, "
              f"{gpus:,} GPUs, {len(fed.agreements)} agreements")
    return 0


COMMANDS = (
    Command("up", "run the API, dispatcher and status page", _up_arguments, offline=up),
    Command("validate", "check a federation file", _validate_arguments, offline=validate),
)
