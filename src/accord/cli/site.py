"""``accord site``: the agent each partner runs at its own cluster (``docs/design/site-agent.md``).

::

    accord site keygen --out DIR
    accord site run --hub URL --site SITE --key FILE --work-dir DIR
                    [--backend local|slurm] [--cluster NAME] [--ca FILE]
                    [--slurm-conf FILE] [--partition P] [--account A]
                    [--identity create:PREFIX|map:TEMPLATE] [--drift repair|report] [--sync S]
    accord site status SITE [--json]

``keygen`` makes the site's Ed25519 key pair and prints the public key for the federation
file's ``[sites.agent] keys``; ``run`` dials out to the hub and runs its site's jobs with the
site's own scheduler until interrupted. Neither needs anything from the hub's host.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accord.cli.common import Api, Command, emit, positionals, segment


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
    parser.add_argument(
        "--identity",
        metavar="POLICY",
        help="enforce the agreement in Slurm (docs/design/site-enforcement.md): visitors' local users by "
        "create:PREFIX (useradd PREFIX+USER) or map:TEMPLATE ({user}, {partner}: existing users)",
    )
    parser.add_argument(
        "--drift",
        choices=("repair", "report"),
        default="repair",
        help="hand-made changes to Accord's Slurm accounts: put back (repair) or only report",
    )
    parser.add_argument(
        "--sync", type=float, default=60.0, metavar="S", help="seconds between enforcement syncs"
    )


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
            args.identity,
            args.drift,
            args.sync,
        )
    )
    return 0


def status(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord site status SITE``: what the site enforces in its Slurm, and how it stands."""
    return emit(args, api.get(f"/api/v1/sites/{segment(args.site)}/enforcement"), status_text)


def identities(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord site identities``: your local usernames at the sites."""
    found = api.get("/api/v1/me/identities")["identities"]
    return emit(args, found, lambda xs: "\n".join(_identity(x) for x in xs) or "no local identities yet")


def status_text(d: dict[str, Any]) -> str:
    """The site's enforcement state for people."""
    sync = d["last_sync"]
    lines = [f"site {d['site']}: " + ("never synced" if sync is None else
                                      f"last sync {sync['at']} {sync['state']}"
                                      + (f": {sync['error']}" if sync["error"] else ""))]
    lines.append("allocations:")
    lines += [f"  {a['allocation']}  {a['status']:<8} " + (
        f"{a['account']} {a['gpu_minutes']} GPU-min to {a['end']} {a['state']}"
        f"{' (' + a['closed_because'] + ')' if a.get('closed_because') else ''}" if "account" in a else "")
        + (f"  {a['reason']}" if a["reason"] else "") for a in d["allocations"]] or ["  none"]
    lines.append("identities:")
    lines += [_identity(x) for x in d["identities"]] or ["  none"]
    lines.append("drift:" + (f" last found {d['drift_at']}" if d["drift"] else " none found"))
    lines += [f"  {x}" for x in d["drift"]]
    return "\n".join(lines)


def _identity(x: dict[str, Any]) -> str:
    where = f" at {x['site']}" if x.get("site") else ""
    reason = f"  {x['reason']}" if x.get("reason") else ""
    return f"  {x['user']}{where} → {x['local_user'] or '?'} ({x['state']}){reason}"


COMMANDS = (
    Command(
        "site",
        "the site agent: dials out to the hub and runs its orders",
        verbs=(
            Command(
                "keygen", "make the site's Ed25519 key pair", _keygen_arguments, offline=keygen, shared=False
            ),
            Command("run", "run the agent until interrupted", _run_arguments, offline=run, shared=False),
            Command("status", "a site's Slurm accounts, visitors' local users and drift (operators)",
                    positionals("site"), run=status),
            Command("identities", "your local usernames at the sites", run=identities),
        ),
        description="The site agent: dials out to the hub and runs its orders (docs/design/site-agent.md).",
    ),
)
