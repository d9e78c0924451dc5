"""``accord witness``: the cosigner a partner runs to witness the ledger (``docs/design/witnesses.md``).

::

    accord witness keygen --out DIR [--name NAME]
    accord witness serve --key FILE --log ORIGIN=PUBKEY [--log ...] --state DB --port N [--host H]

``keygen`` makes the witness's Ed25519 key and prints its cosignature verifier key (what the
hub and every verifier are given); ``serve`` answers C2SP ``tlog-witness`` ``add-checkpoint``
requests until interrupted, remembering per log the size and root it last cosigned in
``--state`` (a SQLite file path, or a ``postgresql://`` URL). Neither needs the hub.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from accord.cli.common import Command


def _keygen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for witness.key (0600) and witness.pub")
    parser.add_argument("--name", help="the witness's key name, a schema-less URL "
                                       "(default: witness.<host name>/accord)")


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, required=True, help="the witness key (from keygen)")
    parser.add_argument("--log", action="append", required=True, metavar="ORIGIN=PUBKEY",
                        help="a log to witness: its checkpoint origin and public key (a vkey, "
                             "ed25519:BASE64, or a PEM file such as ledger-signing.pub.pem); repeat")
    parser.add_argument("--state", required=True, metavar="DB",
                        help="the witness's state: a SQLite file path, or a postgresql:// URL")
    parser.add_argument("--port", type=int, required=True, help="the TCP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")


def keygen(args: argparse.Namespace) -> int:
    """``accord witness keygen``: the key; its verifier key on stdout."""
    from accord.witness_runtime import keygen as make

    name = args.name or f"witness.{socket.gethostname()}/accord"
    vkey = make(args.out, name)
    print(f"{vkey}\n# give this verifier key to the hub and to everyone who checks cosignatures")
    return 0


def serve(args: argparse.Namespace) -> int:
    """``accord witness serve``: the witness, until interrupted."""
    from accord.witness_runtime import WitnessOptions
    from accord.witness_runtime import serve as run

    run(WitnessOptions(args.key, tuple(args.log), args.state, args.port, args.host))
    return 0


COMMANDS = (
    Command(
        "witness",
        "a partner's witness: cosigns the ledger's checkpoints (C2SP tlog-witness)",
        verbs=(
            Command("keygen", "make the witness's Ed25519 key", _keygen_arguments, offline=keygen,
                    shared=False),
            Command("serve", "answer add-checkpoint requests until interrupted", _serve_arguments,
                    offline=serve, shared=False),
        ),
        description="A partner's witness: checks each checkpoint of the ledger is consistent with "
                    "the last it cosigned, then cosigns it (docs/design/witnesses.md).",
    ),
)
