"""``accord site``: the agent each partner runs at its own cluster (``docs/design/site-agent.md``).

::

    accord site keygen --out DIR
    accord site run --hub URL --site SITE --key FILE --work-dir DIR
                    [--backend local|slurm] [--cluster NAME] [--ca FILE]
                    [--slurm-conf FILE] [--partition P] [--account A]

``keygen`` makes the site's Ed25519 key pair and prints the public key for the federation
file's ``[sites.agent] keys``; ``run`` dials out to the hub and runs its site's jobs with the
site's own scheduler until interrupted. Neither needs anything from the hub's host.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accord.cli.common import Command


def _keygen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for site.key (0600) and site.pub")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", required=True, help="the hub's URL (https://...)")
    parser.add_argument("--site", required=True, help="this site's id in the federation file")
    parser.add_argument("--key", type=Path, required=True, help="the site's private key (from keygen)")
    parser.add_argument("--work-dir", type=Path, required=True, help="the agent's state and job directories")
    parser.add_argument(
        "--backend",
        choices=("local", "slurm"),
        default="local",
        help="the site's scheduler: local processes, or Slurm (sbatch/squeue/sacct)",
    )
    parser.add_argument("--cluster", default="", help="the Slurm cluster name (with --backend slurm)")
    parser.add_argument("--ca", type=Path, help="the CA certificate that signed the hub's (a private CA)")
    parser.add_argument("--slurm-conf", help="SLURM_CONF for the Slurm commands")
    parser.add_argument("--partition", help="the Slurm partition to submit to")
    parser.add_argument("--account", help="the Slurm account to submit under")
    parser.add_argument(
        "--heartbeat", type=float, default=10.0, metavar="S", help="seconds between heartbeats"
    )
    parser.add_argument(
        "--resync",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds between full resynchronisations with the hub (default an hour)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve the agent's Prometheus metrics at http://HOST:N/metrics",
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="text or json lines")


def keygen(args: argparse.Namespace) -> int:
    """``accord site keygen``: the key pair; the public key on stdout."""
    from accord.site_runtime import keygen as make

    public = make(args.out)
    print(f'{public}\n# add to the site in the federation file:\n#   [sites.agent]\n#   keys = ["{public}"]')
    return 0


def run(args: argparse.Namespace) -> int:
    """``accord site run``: the agent, until interrupted."""
    from accord.domain.federation.model import BackendKind
    from accord.site_runtime import AgentOptions
    from accord.site_runtime import run as run_agent

    run_agent(
        AgentOptions(
            args.hub,
            args.site,
            args.key,
            args.work_dir,
            BackendKind(args.backend),
            args.cluster,
            args.ca,
            args.slurm_conf,
            args.partition,
            args.account,
            args.heartbeat,
            args.resync,
            args.log_format,
            args.metrics_port,
            args.metrics_host,
        )
    )
    return 0


COMMANDS = (
    Command(
        "site",
        "the site agent: dials out to the hub and runs its orders",
        verbs=(
            Command(
                "keygen", "make the site's Ed25519 key pair", _keygen_arguments, offline=keygen, shared=False
            ),
            Command("run", "run the agent until interrupted", _run_arguments, offline=run, shared=False),
        ),
        description="The site agent: dials out to the hub and runs its orders (docs/design/site-agent.md).",
    ),
)
